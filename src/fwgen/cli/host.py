"""The commands that work on a live host: `audit` a scan, `discover` a draft from
its sockets, `apply` with the lock-out guard.

Each command imports what it works with when it runs, so that `fwgen --version`
and `fwgen --help` load none of it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fwgen.cli.common import (
    SS_HELP,
    AllowOutside,
    FlushRuleset,
    PortsFiles,
    SetOption,
    Strict,
    check_format,
    format_option,
    load_policies,
    output_option,
    read_input,
    site_ports,
)
from fwgen.errors import FwgenError


def audit(
    profile: Annotated[
        str, typer.Argument(metavar="PROFILE", help="The profile the host should be running.")
    ],
    scan: Annotated[
        Path | None,
        typer.Option(
            "--scan",
            metavar="FILE",
            help="An nmap XML report (nmap -oX) of the host; open|filtered (no answer) is not open.",
        ),
    ] = None,
    listening: Annotated[
        str | None,
        typer.Option(
            "--listening",
            metavar="FILE",
            help=SS_HELP,
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--from", metavar="ADDRESS", help="The address the scan was taken from."),
    ] = None,
    format_: Annotated[str, format_option("text or json")] = "text",
    set_: SetOption = None,
    ports_files: PortsFiles = None,
    allow_outside: AllowOutside = None,
) -> None:
    """Compare what a host really exposes with its profile. Exit 1 on drift.

    Example: fwgen audit webserver --scan web1.xml --from 198.51.100.7
    """
    import ipaddress
    import json

    from fwgen.host import audit as auditing
    from fwgen.host.observed import read_nmap, read_ss

    check_format(format_, ("text", "json"))
    if scan is None and listening is None:
        raise FwgenError("give one of --scan FILE or --listening FILE")
    if scan is not None and listening is not None:
        raise FwgenError("give only one of --scan FILE or --listening FILE")
    if source is not None:
        try:
            ipaddress.ip_address(source)
        except ValueError:
            raise FwgenError(f"--from {source!r}: not an IP address") from None
    cat = site_ports(ports_files)
    (policy,) = load_policies([profile], set_, cat, allow_outside)
    if scan is not None:
        seen, scanned = read_nmap(scan)
        items = auditing.audit_scan(policy, cat, seen, scanned, source)
    else:
        text, shown = read_input(listening or "-")
        items = auditing.audit_listening(policy, cat, read_ss(text, shown))
    drift = any(i.kind == "drift" for i in items)
    if format_ == "json":
        typer.echo(json.dumps({"drift": drift, "items": [i.as_dict() for i in items]}, indent=2))
    else:
        typer.echo(auditing.as_text(items), nl=False)
    if drift:
        raise typer.Exit(1)


def discover(
    listening: Annotated[
        str,
        typer.Option("--listening", metavar="FILE", help=SS_HELP),
    ],
    output: Annotated[str | None, output_option("the draft")] = None,  # str: keeps a final /
    format_: Annotated[
        str, format_option("yaml (the draft profile) or json (the listeners and the draft)")
    ] = "yaml",
    ports_files: PortsFiles = None,
) -> None:
    """Draft a profile from the services listening on a host.

    Example: ss -tulpnH | fwgen discover --listening - -o draft.yaml
    """
    import dataclasses
    import json

    from fwgen.build.output import emit, needs_file_name
    from fwgen.host.discover import discover as draft
    from fwgen.host.observed import read_ss
    from fwgen.read.yamlsource import parse

    check_format(format_, ("yaml", "json"))
    writes = output is not None and output != "-"
    folder = needs_file_name(output, "draft.yaml", "discover") if writes and output else None
    if folder is not None:
        raise FwgenError(folder, path=output)
    text, shown = read_input(listening)
    listeners = read_ss(text, shown)
    profile = draft(listeners, site_ports(ports_files))
    if format_ == "json":
        data = {
            "listeners": [dataclasses.asdict(listener) for listener in listeners],
            "profile": parse(profile, "draft").data,
        }
        profile = json.dumps(data, indent=2) + "\n"
    emit({"draft": profile}, None if output is None else Path(output))


def apply(
    profile: Annotated[
        str | None,
        typer.Argument(metavar="PROFILE", help="A built-in profile name or a profile file."),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--target", "-t", metavar="TARGET", help="nftables, iptables or ufw."),
    ] = None,
    set_: SetOption = None,
    flush_ruleset: FlushRuleset = False,
    strict: Strict = False,
    ports_files: PortsFiles = None,
    allow_outside: AllowOutside = None,
    confirm: Annotated[
        float,
        typer.Option(
            "--confirm",
            metavar="SECONDS",
            help="Restore the old rules unless confirmed within this time.",
        ),
    ] = 30,
    yes: Annotated[
        bool, typer.Option("--yes", help="Keep the new rules without waiting (config management).")
    ] = False,
    keep: Annotated[
        list[str] | None,
        typer.Option(
            "--keep",
            metavar="ADDR[:PORT]",
            help="Refuse rules that would not admit a new TCP connection from ADDR to PORT (22). Repeatable.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Load even when the guard finds a lock-out.")
    ] = False,
    no_admin_connection: Annotated[
        bool,
        typer.Option(
            "--no-admin-connection",
            help="Load on a host where sshd listens though no admin connection is found.",
        ),
    ] = False,
    confirm_pending: Annotated[
        bool, typer.Option("--confirm-pending", help="Keep the rules of the apply that waits.")
    ] = False,
    rollback_pending: Annotated[
        bool, typer.Option("--rollback-pending", help="Restore the rules the waiting apply saved.")
    ] = False,
) -> None:
    """Load a profile's rules into this host, with a lock-out guard and automatic rollback.

    Exit 0 applied, 1 rolled back, 2 refused before anything was touched.
    Example: fwgen apply webserver --target nftables --set admins=10.20.0.0/16
    """
    from fwgen.cli.apply_command import run_apply

    raise typer.Exit(
        run_apply(
            profile,
            target,
            set_,
            ports_files,
            allow_outside,
            flush_ruleset=flush_ruleset,
            strict=strict,
            confirm=None if yes else confirm,
            keep=keep or [],
            force=force,
            no_admin_connection=no_admin_connection,
            pending="confirm" if confirm_pending else "rollback" if rollback_pending else None,
        )
    )
