"""The ``fwgen`` command: a thin shell over the library.

Exit codes: 0 success; 1 a check found something (stale output, findings, a diff);
2 a user mistake (bad profile, unknown name, bad option), reported as one line.
Anything else with a traceback is a bug in fwgen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fwgen import __version__
from fwgen.cliparts import (
    SS_HELP,
    STATE,
    AllowOutside,
    App,
    FlushRuleset,
    PortsFiles,
    ProfileArgument,
    SetOption,
    Strict,
    check_format,
    format_option,
    load_policies,
    output_option,
    read_input,
    render_profile,
    site_ports,
    user_errors,
)
from fwgen.errors import FwgenError
from fwgen.targets import TARGETS

TARGET_NAMES = ", ".join(TARGETS)

app = App(
    help="Render declarative host profiles into default-deny firewall rulesets.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fwgen {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show a traceback for errors too (also after the command)."),
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    STATE["debug"] = debug


@app.command()
@user_errors
def render(
    profile: ProfileArgument,
    target: Annotated[
        str,
        typer.Option(
            "--target", "-t", metavar="TARGET", help=f"{TARGET_NAMES} (see `fwgen targets`)."
        ),
    ],
    output: Annotated[
        Path | None, output_option("the ruleset (a folder for several files)")
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
) -> None:
    """Render a profile for one firewall.

    Exit 1 with --check when the file is stale; 2 on a mistake, or with --strict on an
    approximation, an empty network or a host cut off its own networking.

    Example: fwgen render webserver --target nftables --set admins=10.20.0.0/16
    """
    from fwgen.output import emit
    from fwgen.render import target as find_target
    from fwgen.targets import RenderOptions

    spec = find_target(target)
    if family is not None and not spec.family_files:
        raise FwgenError(f"--family: {target} writes one file for both families")
    if family is not None and family not in spec.family_files:
        raise FwgenError(f"--family {family!r}: choose {' or '.join(spec.family_files)}")
    _, files = render_profile(
        profile, target, set_, ports_files, allow_outside, RenderOptions(flush_ruleset, strict)
    )
    if family is not None:
        files = {spec.family_files[family]: files[spec.family_files[family]]}
    if check_only:
        from fwgen.build_command import check_current

        check_current(files, output)
    else:
        emit(files, output)


@app.command()
@user_errors
def profiles(
    format_: Annotated[str, format_option("text or json")] = "text",
) -> None:
    """List the built-in profiles: what each is for, what it extends, what you must set.

    Example: fwgen profiles --format json
    """
    import json

    from fwgen.listing import as_text, builtin_rows

    check_format(format_, ("text", "json"))
    rows = builtin_rows()
    if format_ == "json":
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(as_text(rows), nl=False)


@app.command()
@user_errors
def ports(
    query: Annotated[
        str | None,
        typer.Argument(
            metavar="QUERY",
            help="3306, 514/udp, 6000-6010, a name or alias, or words; none lists all.",
        ),
    ] = None,
    format_: Annotated[str, format_option("text or json")] = "text",
    source: Annotated[
        bool, typer.Option("--source", help="Show the reference documents each entry came from.")
    ] = False,
    ports_files: PortsFiles = None,
) -> None:
    """Look up services in the port database.

    Example: fwgen ports 3306 --source
    """
    import json

    from fwgen.portquery import as_text
    from fwgen.portquery import query as run_query

    check_format(format_, ("text", "json"))
    found = run_query(site_ports(ports_files), query)
    if format_ == "json":
        typer.echo(json.dumps(found, indent=2, ensure_ascii=False))
    elif found:
        typer.echo(as_text(found, sources=source), nl=False)
    if not found:
        typer.echo(f"no service matches {query!r}", err=True)
        raise typer.Exit(1)


@app.command()
@user_errors
def check(
    profiles: Annotated[
        list[str], typer.Argument(metavar="PROFILE...", help="Profile names or files.")
    ],
    format_: Annotated[str, format_option("text, json or sarif")] = "text",
    strict: Annotated[bool, typer.Option("--strict", help="Warnings fail too (exit 1).")] = False,
    set_: SetOption = None,
    ports_files: PortsFiles = None,
    allow_outside: AllowOutside = None,
) -> None:
    """Report what a profile opens that deserves a second look.

    Exit 0 when there are no errors, 1 when there are (or warnings with --strict), 2 when
    a profile cannot be read.

    Example: fwgen check webserver --format sarif > fwgen.sarif
    """
    import json

    from fwgen.check import as_json, as_sarif, as_text, check_policy

    check_format(format_, ("text", "json", "sarif"))
    cat = site_ports(ports_files)
    findings = [
        f
        for policy in load_policies(profiles, set_, cat, allow_outside)
        for f in check_policy(policy, cat)
    ]
    if format_ == "text":
        typer.echo(as_text(findings), nl=False)
    elif format_ == "json":
        typer.echo(json.dumps(as_json(findings), indent=2))
    else:
        typer.echo(json.dumps(as_sarif(findings, __version__), indent=2))
    failing = {"error", "warning"} if strict else {"error"}
    if any(f.level in failing for f in findings):
        raise typer.Exit(1)


@app.command()
@user_errors
def explain(
    profile: ProfileArgument,
    format_: Annotated[str, format_option("text or json")] = "text",
    set_: SetOption = None,
    ports_files: PortsFiles = None,
    allow_outside: AllowOutside = None,
) -> None:
    """Show what a profile allows: the settings that change it, then rule by rule, with the
    addresses each admits and where each rule comes from.

    Example: fwgen explain webserver
    """
    import json

    from fwgen.explain import TABLE_HEADERS, settings_lines, table_rows
    from fwgen.explain import explain as explain_policy
    from fwgen.table import format_table

    check_format(format_, ("text", "json"))
    cat = site_ports(ports_files)
    (policy,) = load_policies([profile], set_, cat, allow_outside)
    shown = explain_policy(policy, cat)
    if format_ == "json":
        typer.echo(json.dumps(shown, indent=2))
    else:
        typer.echo("\n".join(settings_lines(policy)) + "\n\n", nl=False)
        typer.echo(format_table(TABLE_HEADERS, table_rows(shown["rules"])), nl=False)


@app.command()
@user_errors
def diff(
    old: Annotated[
        str,
        typer.Argument(metavar="OLD", help="Old profile: a name, a file, or REV:path from git."),
    ],
    new: Annotated[
        str,
        typer.Argument(metavar="NEW", help="New profile: a name, a file, or REV:path from git."),
    ],
    format_: Annotated[str, format_option("text, markdown or json")] = "text",
    set_: SetOption = None,
    ports_files: PortsFiles = None,
    allow_outside: AllowOutside = None,
) -> None:
    """Show what changes in what is allowed between two profiles. Exit 1 when anything does.

    Every setting that changes what is admitted is compared, as well as every rule. Each
    side is resolved with its own port files: for a REV:path side, the --ports files (and
    $FWGEN_PORTS) are read as they were at REV.

    Example: fwgen diff origin/main:site/web.yaml site/web.yaml --format markdown
    """
    import json

    from fwgen.diff import as_text, changes, diff_policies
    from fwgen.diff_command import diff_sides

    check_format(format_, ("text", "markdown", "json"))
    before, after, old_ports, new_ports = diff_sides(
        old, new, set_, ports_files or [], allow_outside
    )
    result = diff_policies(before, after, old_ports, new_ports)
    if format_ == "json":
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(as_text(result, markdown=format_ == "markdown"), nl=False)
    if changes(result):
        raise typer.Exit(1)


@app.command()
@user_errors
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
) -> None:
    """Render every host of a manifest, writing only the files that changed (all or none).

    Exit 1 with --check when a file is stale; 2 on a mistake (nothing written), or with
    --strict on an approximation, an empty network or a host cut off its own networking.

    Example: fwgen build site/fwgen.yaml --check
    """
    from fwgen.build_command import run_build

    check_format(format_, ("text", "json"))
    run_build(
        manifest,
        tuple(allow_outside or ()),
        check=check_only,
        strict=strict,
        json=format_ == "json",
    )


@app.command()
@user_errors
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

    from fwgen import audit as auditing
    from fwgen.observed import read_nmap, read_ss

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


@app.command()
@user_errors
def discover(
    listening: Annotated[
        str,
        typer.Option("--listening", metavar="FILE", help=SS_HELP),
    ],
    output: Annotated[Path | None, output_option("the draft")] = None,
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

    from fwgen.discover import discover as draft
    from fwgen.observed import read_ss
    from fwgen.output import emit
    from fwgen.yamlsource import parse

    check_format(format_, ("yaml", "json"))
    text, shown = read_input(listening)
    listeners = read_ss(text, shown)
    profile = draft(listeners, site_ports(ports_files))
    if format_ == "json":
        data = {
            "listeners": [dataclasses.asdict(listener) for listener in listeners],
            "profile": parse(profile, "draft").data,
        }
        profile = json.dumps(data, indent=2) + "\n"
    emit({"draft": profile}, output)


@app.command()
@user_errors
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
    from fwgen.apply_command import run_apply

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


@app.command()
@user_errors
def schema(
    kind: Annotated[
        str,
        typer.Argument(metavar="KIND", help="profile, manifest or ports (a site port file)."),
    ],
) -> None:
    """Print the JSON Schema of a file you write, for your editor.

    Example: fwgen schema profile > .fwgen/profile.schema.json
    """
    from fwgen.schema import shipped

    typer.echo(shipped(kind), nl=False)


@app.command()
@user_errors
def targets(format_: Annotated[str, format_option("text or json")] = "text") -> None:
    """List the targets and what each can express.

    Example: fwgen targets --format json
    """
    import json

    check_format(format_, ("text", "json"))
    if format_ == "json":
        keys = ("name", "title", "files", "capabilities")
        rows = [{k: getattr(spec, k) for k in keys} for spec in TARGETS.values()]
        typer.echo(json.dumps(rows, indent=2))
        return
    for spec in TARGETS.values():
        typer.echo(f"{spec.name}: {spec.title}; writes {', '.join(spec.files)}")
        width = max(len(k) for k in spec.capabilities)
        for feature, support in spec.capabilities.items():
            typer.echo(f"  {feature:<{width}}  {support}")


def main() -> None:
    app(prog_name="fwgen")
