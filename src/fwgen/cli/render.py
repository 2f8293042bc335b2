"""The commands that write rulesets: `render` for one host, `build` for a site.

Each command imports what it works with when it runs, so that `fwgen --version`
and `fwgen --help` load none of it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fwgen.cli.common import (
    AllowOutside,
    FlushRuleset,
    PortsFiles,
    ProfileArgument,
    SetOption,
    Strict,
    check_format,
    format_option,
    output_option,
    render_profile,
)
from fwgen.errors import FwgenError
from fwgen.targets import TARGETS

TARGET_NAMES = ", ".join(TARGETS)


def render(
    profile: ProfileArgument,
    target: Annotated[
        str,
        typer.Option(
            "--target", "-t", metavar="TARGET", help=f"{TARGET_NAMES} (see `fwgen targets`)."
        ),
    ],
    output: Annotated[  # a string: a final / (a folder) is lost in a Path
        str | None, output_option("the ruleset (a folder for several files)")
    ] = None,
    set_: SetOption = None,
    flush_ruleset: FlushRuleset = False,
    strict: Strict = False,
    ports_files: PortsFiles = None,
    allow_outside: AllowOutside = None,
    family: Annotated[
        str | None,
        typer.Option(
            "--family", metavar="ipv4|ipv6", help="iptables: print only the ipv4 or ipv6 file."
        ),
    ] = None,
    check_only: Annotated[
        bool,
        typer.Option(
            "--check", help="With -o: exit 1 and show a diff when the file is stale; write nothing."
        ),
    ] = False,
    sets_only: Annotated[
        bool,
        typer.Option(
            "--sets-only",
            help="nftables, iptables: only the blocklists' contents (networks only deny and "
            "reject rules use), to load without touching the rules.",
        ),
    ] = False,
) -> None:
    """Render a profile for one firewall.

    Exit 1 with --check when the file is stale; 2 on a mistake, or with --strict on an
    approximation, an empty network or a host cut off its own networking.

    Example: fwgen render webserver --target nftables --set admins=10.20.0.0/16
    """
    from fwgen.build.output import emit, needs_file_name
    from fwgen.targets import RenderOptions
    from fwgen.targets.render import target as find_target

    spec = find_target(target)
    if family is not None and not spec.family_files:
        raise FwgenError(f"--family: {target} writes one file for both families")
    if family is not None and sets_only:
        raise FwgenError("--family: --sets-only writes one file for both families")
    if family is not None and family not in spec.family_files:
        raise FwgenError(f"--family {family!r}: choose {' or '.join(spec.family_files)}")
    _, files = render_profile(
        profile,
        target,
        set_,
        ports_files,
        allow_outside,
        RenderOptions(flush_ruleset, strict, sets_only),
    )
    if family is not None:
        files = {spec.family_files[family]: files[spec.family_files[family]]}
    one = output not in (None, "-") and len(files) == 1
    folder = needs_file_name(output, next(iter(files)), target) if one and output else None
    if folder is not None:
        raise FwgenError(folder, path=output)
    path = None if output is None else Path(output)
    if check_only:
        from fwgen.cli.build_command import check_current

        check_current(files, path)
    else:
        emit(files, path)


def build(
    manifest: Annotated[
        Path,
        typer.Argument(metavar="MANIFEST", help="The manifest: hosts, their profiles and outputs."),
    ] = Path("fwgen.yaml"),
    check_only: Annotated[
        bool,
        typer.Option("--check", help="Exit 1 and show diffs when a file is stale; write nothing."),
    ] = False,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Fail (exit 2, nothing written) when a target approximates."),
    ] = False,
    format_: Annotated[str, format_option("text or json")] = "text",
    allow_outside: AllowOutside = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            metavar="N",
            min=1,
            envvar="FWGEN_JOBS",
            show_envvar=False,
            help="Render in at most N processes (default: one per CPU, for 8 hosts or more "
            "each; 1: all in this one). Also FWGEN_JOBS.",
        ),
    ] = None,
) -> None:
    """Render every host of a manifest, writing only the files that changed (all or none).

    Exit 1 with --check when a file is stale; 2 on a mistake (nothing written), or with
    --strict on an approximation, an empty network or a host cut off its own networking.

    Example: fwgen build site/fwgen.yaml --check
    """
    from fwgen.cli.build_command import run_build

    check_format(format_, ("text", "json"))
    run_build(
        manifest,
        tuple(allow_outside or ()),
        check=check_only,
        strict=strict,
        json=format_ == "json",
        jobs=jobs,
    )
