"""`fwgen verify`: prove a ruleset in a real kernel, in a throw-away lab on this machine.

It imports what it works with when it runs, so that `fwgen --help` loads none of it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fwgen import stopping
from fwgen.cli.common import (
    STATE,
    AllowOutside,
    PortsFiles,
    ProfileArgument,
    SetOption,
    check_format,
    format_option,
)
from fwgen.errors import FwgenError

if TYPE_CHECKING:
    from fwgen.lab.verify import Report

TARGETS = ("nftables", "iptables", "ufw", "firewalld")


def verify(
    profile: ProfileArgument,
    target: Annotated[
        str, typer.Option("--target", "-t", metavar="TARGET", help=" | ".join(TARGETS) + ".")
    ],
    ruleset: Annotated[
        list[Path] | None,
        typer.Option(
            "--ruleset",
            metavar="FILE",
            help="Load FILE instead of the rendered file of its name (a target of one file: "
            "any name), e.g. the file committed for the host. Repeatable.",
        ),
    ] = None,
    set_: SetOption = None,
    ports_files: PortsFiles = None,
    allow_outside: AllowOutside = None,
    format_: Annotated[str, format_option("text or json")] = "text",
) -> None:
    """Load a ruleset into a throw-away network-namespace lab and probe every cell the
    profile implies. Needs root and the firewall's tools; never touches this machine's
    own namespace, firewall or files.

    Exit 0 when the kernel agrees on every cell, 1 naming each cell where it does not,
    2 on a mistake or when root or a tool is missing, 130 when stopped (Ctrl-C, SIGTERM,
    SIGHUP; the lab is removed).

    Example: fwgen verify webserver -t nftables --ruleset hosts/web1/fwgen.nft
    """
    from fwgen.cli.common import render_profile
    from fwgen.lab import ruleset as given
    from fwgen.lab.netns import LabError
    from fwgen.lab.verify import missing
    from fwgen.lab.verify import verify as run
    from fwgen.targets import RenderOptions

    if target not in TARGETS:
        raise FwgenError(f"--target {target!r}: verify runs {', '.join(TARGETS)}")
    check_format(format_, ("text", "json"))
    policy, files = render_profile(
        profile, target, set_, ports_files, allow_outside, RenderOptions(False, False, False)
    )
    files = given.given(target, files, list(ruleset or ()))
    reason = missing(target)
    if reason:
        raise FwgenError(reason)
    quiet = format_ == "json" or STATE["quiet"]

    def progress(line: str) -> None:
        if not quiet:
            typer.echo(f"verify: {line}", err=True)

    try:
        report = run(policy, target, files, progress)
    except KeyboardInterrupt as stop:
        raise stopping.Stopped.of(stop, "verify: interrupted; the lab is removed") from None
    except LabError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "failed"
        raise FwgenError(f"the lab failed: {first}") from None
    if format_ == "json":
        typer.echo(json.dumps(as_json(report), indent=2, sort_keys=True))
    else:
        show(report)
    if report.failed:
        raise typer.Exit(1)


# SIGTERM and SIGHUP stop it as Ctrl-C does: the lab is removed, exit 130.
verify.stop_signals = stopping.STOP_SIGNALS  # type: ignore[attr-defined]


def show(report: Report) -> None:
    for result in report.failed:
        cell = result.cell
        typer.echo(
            f"MISMATCH {cell.words()}: the profile says {cell.expected} ({cell.why}), "
            f"the kernel: {result.got}"
        )
    for line in report.skipped:
        typer.echo(f"not probed: {line}")
    passed = len(report.results) - len(report.failed)
    verdict = "all agree" if not report.failed else f"{len(report.failed)} mismatch(es)"
    typer.echo(
        f"{report.profile} on {report.target}: {len(report.results)} cells probed, "
        f"{passed} passed, and {report.scanned} more TCP ports scanned; {verdict}"
    )
    sys.stdout.flush()


def as_json(report: Report) -> dict[str, object]:
    return {
        "profile": report.profile,
        "target": report.target,
        "cells": len(report.results),
        "passed": len(report.results) - len(report.failed),
        "scanned_tcp_ports": report.scanned,
        "ok": not report.failed,
        "mismatches": [
            {
                "cell": r.cell.words(),
                "kind": r.cell.kind,
                "interface": r.cell.interface,
                "family": r.cell.family,
                "source": r.cell.source,
                "probe": r.cell.spec,
                "expected": r.cell.expected,
                "got": r.got,
                "rule": r.cell.why,
            }
            for r in report.failed
        ],
        "not_probed": report.skipped,
    }
