"""`fwgen query`: what a profile does with a packet, and which rule decides it.

The library decides (`fwgen.review.query`); this module reads the packets, takes what
each target lacks from the registry (`fwgen.targets.Target.lacks`), and prints."""

from __future__ import annotations

from typing import Annotated

import typer

from fwgen.cli.common import (
    AllowOutside,
    PortsFiles,
    ProfileArgument,
    SetOption,
    check_format,
    format_option,
    load_policies,
    site_ports,
)
from fwgen.errors import FwgenError
from fwgen.targets import TARGETS

MAX_TABLE = 16 * 1024 * 1024  # bytes of a packet file or table


def query(
    profile: ProfileArgument,
    packets: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="PACKET...",
            help="Packets, each one quoted argument: 'tcp 203.0.113.5 -> 443'.",
            show_default=False,
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            "-t",
            metavar="TARGET",
            help=f"Answer as this target decides ({', '.join(TARGETS)}); it must render "
            "the profile.",
        ),
    ] = None,
    file: Annotated[
        str | None,
        typer.Option(
            "--file", metavar="FILE", help="Packets, one a line (# comments); - for stdin."
        ),
    ] = None,
    expect: Annotated[
        str | None,
        typer.Option(
            "--expect",
            metavar="FILE",
            help="A table of verdicts and packets ('drop tcp 198.51.100.9 -> 22'); exit 1 "
            "naming each line that disagrees; - for stdin.",
        ),
    ] = None,
    format_: Annotated[str, format_option("text or json")] = "text",
    set_: SetOption = None,
    ports_files: PortsFiles = None,
    allow_outside: AllowOutside = None,
) -> None:
    """Ask what a profile does with a packet: accepted, dropped or rejected, and by which
    rule (profile file:line) or default; and where a target decides otherwise.

    Quote each packet (a bare -> is a shell redirection). Exit 0; with --expect, 1 when
    a packet gets another verdict than its line says.

    Example: fwgen query webserver 'tcp 203.0.113.5 -> 443' 'udp [2001:db8::5] -> 53'
    """
    import json

    from fwgen.review.packettable import packets_of, read_packets
    from fwgen.review.query import query as query_packet
    from fwgen.review.queryreport import as_json, as_text, disagreements
    from fwgen.targets.render import render_with_warnings
    from fwgen.targets.render import target as find_target

    check_format(format_, ("text", "json"))
    given = [
        what
        for what, value in (("PACKET", packets), ("--file", file), ("--expect", expect))
        if value
    ]
    if len(given) != 1:
        raise FwgenError(
            "give packets one way: as arguments, --file FILE or --expect FILE"
            + (f" (not {' and '.join(given)})" if given else "")
        )
    if target is not None:
        find_target(target)
    cat = site_ports(ports_files)
    (policy,) = load_policies([profile], set_, cat, allow_outside)
    if target is not None:
        render_with_warnings(policy, target)  # a target that refuses the profile: exit 2
    if packets:
        rows = packets_of(packets)
    else:
        text, shown_name = _read(expect or file or "-", "--expect" if expect else "--file")
        rows = read_packets(text, shown_name, expect=expect is not None)
        if not rows:  # an emptied table would pass a CI step while checking nothing
            raise FwgenError(f"{shown_name}: no packet in it; write one a line")
    lacking = {t.name: t.lacks for t in TARGETS.values() if t.lacks}
    if target is not None:
        lacking = {target: lacking[target]} if target in lacking else {}
    results = [query_packet(policy, row.packet, lacking) for row in rows]
    wrong = disagreements(results, rows, target)
    if format_ == "json":
        typer.echo(json.dumps(as_json(results, rows, target), indent=2))
    elif expect is None:
        typer.echo(as_text(results, target), nl=False)
    else:
        for line in wrong:
            typer.echo(line)
        typer.echo(
            f"{len(wrong)} of {len(rows)} packets disagree with {shown_name}"
            if wrong
            else f"{len(rows)} packets, each as {shown_name} expects"
        )
    if wrong:
        raise typer.Exit(1)


def _read(name: str, option: str) -> tuple[str, str]:
    """The text of FILE (a regular file, at most `MAX_TABLE`), or of stdin for '-'."""
    import sys
    from pathlib import Path

    from fwgen.read.links import refuse_link
    from fwgen.read.yamlsource import read_stream, read_text

    if name == "-":
        return read_stream(sys.stdin.buffer, "<stdin>", "packet", MAX_TABLE), "<stdin>"
    refuse_link(Path(name), name, option)
    return read_text(Path(name), name, what="packet", limit=MAX_TABLE), name
