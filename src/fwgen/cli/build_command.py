"""What `fwgen build` and `fwgen render --check` print and write: warnings, diffs of stale
files, and the files that changed."""

from __future__ import annotations

import json as json_module
from collections.abc import Sequence
from pathlib import Path

import typer

from fwgen.build.manifest import Output, as_json, plan, stale, unified
from fwgen.build.output import check_folder, destinations, is_stdout, write_files
from fwgen.cli.common import say, warn
from fwgen.errors import FwgenError, raise_collected


def run_build(
    manifest: Path,
    allow_outside: Sequence[Path],
    *,
    check: bool,
    strict: bool,
    json: bool,
    jobs: int | None = None,
) -> None:
    """Render every host of *manifest*; write what changed (or, with *check*, show it and
    exit 1). Every warning goes to stderr with its host; with *strict* an approximation
    is an error and nothing is written. The hosts are rendered in up to *jobs* processes
    (None: as many as pay)."""
    site = plan(manifest, allow_outside, jobs)
    refused = site.refused() if strict else []
    for warning in site.warnings:
        if warning not in refused:
            warn(warning)
    approximations = len(site.approximations()) if strict else 0
    if refused or approximations:
        plural = "s" if approximations != 1 else ""
        above = f"{approximations} approximation{plural} (above); " if approximations else ""
        errors = [FwgenError(f"{notice} (--strict)") for notice in refused]
        raise_collected([*errors, FwgenError(f"--strict: {above}nothing written")])
    items = site.outputs
    changed = stale(items)
    if not check:
        write_files({item.path: item.text for item in changed}, boundary=site.boundary)
    if json:
        typer.echo(json_module.dumps(as_json(site, changed, check), indent=2))
        if check and changed:
            raise typer.Exit(1)
    elif check:
        fail_when_stale(
            changed, f"stale: {len(changed)} of {len(items)} generated files; run `fwgen build`"
        )
        typer.echo(f"all {len(items)} generated files are current")
    else:
        for item in changed:
            say(f"wrote {item.path}")
        say(f"{len(changed)} written, {len(items) - len(changed)} unchanged")


def check_current(files: dict[str, str], output: Path | None) -> None:
    """`render --check`: exit 1 with a diff when the files at *output* are not *files*."""
    if output is None:
        raise FwgenError("--check needs -o FILE (the file to compare with)")
    if is_stdout(output):
        raise FwgenError("--check compares with files; -o - is standard output")
    if len(files) > 1:
        check_folder(output, files)
    items = [Output("", path, text) for path, text in destinations(files, output).items()]
    old = stale(items)
    fail_when_stale(old, f"stale: {', '.join(str(o.path) for o in old)}")


def fail_when_stale(changed: list[Output], message: str) -> None:
    """Show how each stale file would change, then exit 1 with *message*; nothing when none is."""
    for item in changed:
        typer.echo(unified(item), nl=False)
    if changed:
        typer.echo(message, err=True)
        raise typer.Exit(1)
