"""`fwgen shadow start|report|stop`: a profile beside the live firewall, deciding nothing.

Each command imports what it works with when it runs (see `fwgen.cli.host`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from fwgen.cli.common import (
    AllowOutside,
    App,
    PortsFiles,
    ProfileArgument,
    SetOption,
    check_format,
    format_option,
    load_policies,
    site_ports,
    user_errors,
    warn,
)
from fwgen.errors import FwgenError

shadow_app = App(
    help="Count what a profile would drop on this host, beside the live firewall.",
    no_args_is_help=True,
)
TargetOption = Annotated[
    str, typer.Option("--target", "-t", metavar="TARGET", help="nftables or iptables.")
]


def _target(target: str) -> None:
    if target not in ("nftables", "iptables"):
        hint = (
            " (Windows Firewall has no shadow mode: not applicable)" if target == "windows" else ""
        )
        raise FwgenError(f"--target {target!r}: a shadow runs on nftables or iptables{hint}")


def start(
    profile: ProfileArgument,
    target: TargetOption = "nftables",
    size: Annotated[
        int, typer.Option("--size", metavar="N", help="Keys each set of the shadow holds.")
    ] = 16384,
    prefix_v4: Annotated[
        int,
        typer.Option("--prefix-v4", metavar="BITS", help="IPv4 sources recorded by this prefix."),
    ] = 32,
    prefix_v6: Annotated[
        int,
        typer.Option("--prefix-v6", metavar="BITS", help="IPv6 sources recorded by this prefix."),
    ] = 64,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be loaded; load nothing.")
    ] = False,
    set_: SetOption = None,
    ports_files: PortsFiles = None,
    allow_outside: AllowOutside = None,
) -> None:
    """Load PROFILE as a shadow beside the live firewall: it changes no verdict, it counts.

    Example: fwgen shadow start webserver -t nftables --set admins=192.0.2.0/24
    """
    from fwgen.targets.shadow import ShadowOptions, render_shadow

    _target(target)
    options = ShadowOptions(prefix_v4, prefix_v6, size)
    (policy,) = load_policies([profile], set_, site_ports(ports_files), allow_outside)
    files = render_shadow(policy, target, options)
    if dry_run:
        for text in files.values():
            typer.echo(text, nl=False)
        return
    from fwgen.host import shadow

    replaced = shadow.start(target, files)
    typer.echo(
        f"fwgen: shadow of '{policy.profile}' {'replaced' if replaced else 'loaded'} on {target}; "
        f"`fwgen shadow report {profile} -t {target}` shows what it would have cut"
    )


def report(
    profile: ProfileArgument,
    target: TargetOption = "nftables",
    format_: Annotated[str, format_option("text or json")] = "text",
    input_: Annotated[
        Path | None,
        typer.Option(
            "--input",
            metavar="FILE",
            help="Read the shadow from FILE (`nft -j list table inet fwgen_shadow`), not the kernel.",
        ),
    ] = None,
    set_: SetOption = None,
    ports_files: PortsFiles = None,
    allow_outside: AllowOutside = None,
) -> None:
    """What PROFILE would have cut since its shadow was loaded, by service, with the
    profile lines that would admit it and what `fwgen check` says of them.

    Example: fwgen shadow report webserver --format json
    """
    from fwgen.host import shadow
    from fwgen.review.shadowreport import as_json, as_text
    from fwgen.review.shadowreport import report as grouped

    _target(target)
    check_format(format_, ("text", "json"))
    cat = site_ports(ports_files)
    (policy,) = load_policies([profile], set_, cat, allow_outside)
    if input_ is not None:
        from fwgen.read.yamlsource import read_text

        text = read_text(input_, str(input_), "shadow", limit=shadow.MAX_OUTPUT)
        found = shadow.parse_file(target, text, time.time())
    else:
        found = shadow.read(target)
    if found is None:
        raise FwgenError(f"no shadow is loaded on {target}; start one with `fwgen shadow start`")
    recorded = found.recorded
    if recorded.profile != policy.profile:
        warn(f"the shadow was loaded from profile '{recorded.profile}', not '{policy.profile}'")
    groups = grouped(policy, recorded, cat)
    if format_ == "json":
        typer.echo(json.dumps(as_json(groups, recorded), indent=2))
    else:
        typer.echo(as_text(groups, recorded), nl=False)


def stop(target: TargetOption = "nftables") -> None:
    """Remove the shadow, and only it; the live firewall is left as it is.

    Example: fwgen shadow stop -t nftables
    """
    from fwgen.host import shadow

    _target(target)
    recorded = shadow.stop(target)
    if recorded is None:
        typer.echo(f"fwgen: no shadow was loaded on {target}")
    else:
        typer.echo(f"fwgen: shadow of '{recorded.profile}' removed from {target}")


for command in (start, report, stop):
    shadow_app.command()(user_errors(command))
