"""The ``fwgen`` command: a thin shell over the library.

Exit codes: 0 success; 1 a check found something (stale output, findings, a diff);
2 a user mistake (bad profile, unknown name, bad option), reported as one line.
Anything else with a traceback is a bug in fwgen.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from fwgen import __version__
from fwgen.errors import FwgenError

if TYPE_CHECKING:
    from fwgen.build import Output
    from fwgen.policy import Policy
    from fwgen.portdb import Catalogue
    from fwgen.targets import RenderOptions

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    help="Render declarative host profiles into default-deny firewall rulesets.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}


def user_errors(command: F) -> F:
    """Report FwgenError as one line on stderr and exit 2 (a traceback only with --debug)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except FwgenError as error:
            if _state["debug"]:
                raise
            for line in str(error).splitlines():
                typer.echo(f"error: {line}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fwgen {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show a traceback for errors too.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _state["debug"] = debug


def parse_sets(values: list[str]) -> dict[str, list[str]]:
    """``NAME=CIDR[,CIDR...]`` options → {name: [cidr, ...]}."""
    out: dict[str, list[str]] = {}
    for value in values:
        name, sep, cidrs = value.partition("=")
        if not sep or not name.strip():
            raise FwgenError(
                f"--set {value!r}: write NAME=CIDR[,CIDR...], e.g. admins=192.0.2.0/24"
            )
        out.setdefault(name.strip(), []).extend(c.strip() for c in cidrs.split(",") if c.strip())
    return out


SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Replace a network's addresses: NAME=CIDR[,CIDR...]. Repeatable."),
]
PortsFiles = Annotated[
    list[str] | None,
    typer.Option("--ports", help="A site port database file (YAML list of services). Repeatable."),
]
FlushRuleset = Annotated[
    bool,
    typer.Option(
        "--flush-ruleset",
        help="Take over the host firewall: nftables flushes the ruleset; ufw and windows "
        "remove or disable rules of others.",
    ),
]
Strict = Annotated[bool, typer.Option("--strict", help="Fail instead of approximating.")]
AllowOutside = Annotated[
    list[Path] | None,
    typer.Option(
        "--allow-outside",
        metavar="DIR",
        help="Trust files in DIR too: extends, address lists, and a manifest's profiles, ports "
        "and outputs; by default they must stay in the folder tree of the file given. Repeatable.",
    ),
]


@app.command()
@user_errors
def render(
    profile: Annotated[str, typer.Argument(help="A built-in profile name or a profile file.")],
    target: Annotated[str, typer.Option("--target", "-t", help="nftables (see `fwgen targets`).")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write here (atomically) instead of stdout."),
    ] = None,
    set_: SetOption = None,
    flush_ruleset: FlushRuleset = False,
    strict: Strict = False,
    ports_files: PortsFiles = None,
    allow_outside: AllowOutside = None,
    family: Annotated[
        str | None,
        typer.Option("--family", help="iptables: print only the ipv4 or ipv6 file."),
    ] = None,
    check_only: Annotated[
        bool,
        typer.Option(
            "--check", help="With -o: exit 1 and show a diff when the file is stale; write nothing."
        ),
    ] = False,
) -> None:
    """Render a profile for one firewall.

    Example: fwgen render webserver --target nftables --set admins=192.0.2.0/24
    """
    from fwgen.output import to_stdout, write_outputs
    from fwgen.render import target as find_target
    from fwgen.targets import RenderOptions

    spec = find_target(target)
    if family is not None and not spec.family_files:
        raise FwgenError(f"--family: {target} writes one file for both families")
    if family is not None and family not in spec.family_files:
        raise FwgenError(f"--family {family!r}: choose {' or '.join(spec.family_files)}")
    _, files = _render_profile(
        profile, target, set_, ports_files, allow_outside, RenderOptions(flush_ruleset, strict)
    )
    if family is not None:
        files = {spec.family_files[family]: files[spec.family_files[family]]}
    if check_only:
        if output is None:
            raise FwgenError("--check needs -o FILE (the file to compare with)")
        _check_current(files, output)
    elif output is None:
        sys.stdout.write(to_stdout(files))
    else:
        write_outputs(files, output)


def _render_profile(
    profile: str,
    target: str,
    sets: list[str] | None,
    ports_files: list[str] | None,
    allow_outside: list[Path] | None,
    options: RenderOptions,
) -> tuple[Policy, dict[str, str]]:
    """Resolve one profile and render it, warnings on stderr: the Policy and the files."""
    from fwgen.render import render_with_warnings

    (policy,) = _load_policies([profile], sets, _ports(ports_files), allow_outside)
    files, warnings = render_with_warnings(policy, target, options)
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    return policy, files


def _check_current(files: dict[str, str], output: Path) -> None:
    from fwgen.build import Output, stale
    from fwgen.output import check_folder, destinations

    if len(files) > 1:
        check_folder(output)
    items = [Output("", path, text) for path, text in destinations(files, output).items()]
    old = stale(items)
    _fail_when_stale(old, f"stale: {', '.join(str(o.path) for o in old)}")


def _fail_when_stale(changed: list[Output], message: str) -> None:
    """Show how each stale file would change, then exit 1 with *message*; nothing when none is."""
    from fwgen.build import unified

    for item in changed:
        typer.echo(unified(item), nl=False)
    if changed:
        typer.echo(message, err=True)
        raise typer.Exit(1)


@app.command()
@user_errors
def profiles() -> None:
    """List the built-in profiles.

    Example: fwgen profiles
    """
    from fwgen.load import builtin_profiles, read_profile

    rows = []
    for name, path in builtin_profiles().items():
        profile, _, _ = read_profile(path, f"profiles/{path.name}")
        rows.append((name, profile.description))
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        typer.echo(f"{name:<{width}}  {description}")


@app.command()
@user_errors
def ports(
    query: Annotated[
        str | None,
        typer.Argument(help="3306, 514/udp, 6000-6010, a name or alias, or words; none lists all."),
    ] = None,
    format_: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    ports_files: PortsFiles = None,
) -> None:
    """Look up services in the port database.

    Example: fwgen ports 3306 --format json
    """
    import json

    from fwgen.portdb import ServicePort
    from fwgen.portdb import query as run_query
    from fwgen.table import format_table

    _formats(format_, ("text", "json"))
    found = run_query(_ports(ports_files), query)
    if format_ == "json":
        typer.echo(json.dumps(found, indent=2, ensure_ascii=False))
    elif found:
        rows = [
            (
                e["name"],
                ", ".join(str(ServicePort(**p)) for p in e["ports"]),
                e["risk"] or "-",
                e["exposure"] or "-",
                e["category"] or "-",
                e["title"] + (f" (aliases: {', '.join(e['aliases'])})" if e["aliases"] else ""),
            )
            for e in found
        ]
        typer.echo(
            format_table(("NAME", "PORTS", "RISK", "EXPOSURE", "CATEGORY", "TITLE"), rows), nl=False
        )
    if not found:
        typer.echo(f"no service matches {query!r}", err=True)
        raise typer.Exit(1)


def _ports(ports_files: list[str] | None) -> Catalogue:
    """The port database with the site files given by --ports (and $FWGEN_PORTS)."""
    from fwgen.portdb import catalogue

    return catalogue(tuple(ports_files or ()))


def _load_policies(
    profiles: list[str],
    sets: list[str] | None,
    ports: Catalogue,
    allow_outside: list[Path] | None = None,
) -> list[Policy]:
    from fwgen.resolve import resolve_profile

    overrides = parse_sets(sets or [])
    allowed = tuple(allow_outside or ())
    return [resolve_profile(p, overrides, ports, allow_outside=allowed) for p in profiles]


@app.command()
@user_errors
def check(
    profiles: Annotated[list[str], typer.Argument(help="Profile names or files.")],
    format_: Annotated[str, typer.Option("--format", help="text, json or sarif.")] = "text",
    strict: Annotated[bool, typer.Option("--strict", help="Warnings fail too (exit 1).")] = False,
    set_: SetOption = None,
    ports_files: PortsFiles = None,
    allow_outside: AllowOutside = None,
) -> None:
    """Report what a profile opens that deserves a second look.

    Exit 0 when there are no errors, 1 when there are (or warnings with --strict).
    Example: fwgen check webserver --format sarif > fwgen.sarif
    """
    import json

    from fwgen.check import as_json, as_sarif, as_text, check_policy

    _formats(format_, ("text", "json", "sarif"))
    cat = _ports(ports_files)
    findings = [
        f
        for policy in _load_policies(profiles, set_, cat, allow_outside)
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
    profile: Annotated[str, typer.Argument(help="A profile name or file.")],
    format_: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    set_: SetOption = None,
    ports_files: PortsFiles = None,
    allow_outside: AllowOutside = None,
) -> None:
    """Show what a profile allows, rule by rule, with where each rule comes from.

    Example: fwgen explain webserver
    """
    import json

    from fwgen.explain import TABLE_HEADERS, table_rows
    from fwgen.explain import explain as explain_policy
    from fwgen.table import format_table

    _formats(format_, ("text", "json"))
    cat = _ports(ports_files)
    (policy,) = _load_policies([profile], set_, cat, allow_outside)
    rows = explain_policy(policy, cat)
    if format_ == "json":
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(format_table(TABLE_HEADERS, table_rows(rows)), nl=False)


@app.command()
@user_errors
def diff(
    old: Annotated[str, typer.Argument(help="Old profile: a name, a file, or REV:path from git.")],
    new: Annotated[str, typer.Argument(help="New profile: a name, a file, or REV:path from git.")],
    format_: Annotated[str, typer.Option("--format", help="text, markdown or json.")] = "text",
    set_: SetOption = None,
    ports_files: PortsFiles = None,
    allow_outside: AllowOutside = None,
) -> None:
    """Show what changes in what is allowed between two profiles. Exit 1 when anything does.

    Example: fwgen diff origin/main:site/web.yaml site/web.yaml --format markdown
    """
    import json

    from fwgen.diff import as_text, diff_policies
    from fwgen.gitref import checkout_profile, is_git_ref, temporary_dir

    _formats(format_, ("text", "markdown", "json"))
    cat = _ports(ports_files)
    with temporary_dir() as tmp:
        refs = [
            checkout_profile(ref, Path(tmp) / str(i)) if is_git_ref(ref) else ref
            for i, ref in enumerate((old, new))
        ]
        before, after = _load_policies(refs, set_, cat, allow_outside)
    result = diff_policies(before, after, cat)
    if format_ == "json":
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(as_text(result, markdown=format_ == "markdown"), nl=False)
    if any(result.values()):
        raise typer.Exit(1)


@app.command()
@user_errors
def build(
    manifest: Annotated[
        Path, typer.Argument(help="The manifest: hosts, their profiles and outputs.")
    ] = Path("fwgen.yaml"),
    check_only: Annotated[
        bool,
        typer.Option("--check", help="Exit 1 and show diffs when a file is stale; write nothing."),
    ] = False,
    allow_outside: AllowOutside = None,
) -> None:
    """Render every host of a manifest, writing only the files that changed (all or none).

    Example: fwgen build site/fwgen.yaml --check
    """
    from fwgen.build import plan, stale
    from fwgen.output import write_files

    site = plan(manifest, allow_outside or ())
    items = site.outputs
    changed = stale(items)
    if check_only:
        _fail_when_stale(
            changed, f"stale: {len(changed)} of {len(items)} generated files; run `fwgen build`"
        )
        typer.echo(f"all {len(items)} generated files are current")
        return
    write_files({item.path: item.text for item in changed}, boundary=site.boundary)
    for item in changed:
        typer.echo(f"wrote {item.path}")
    typer.echo(f"{len(changed)} written, {len(items) - len(changed)} unchanged")


def _read_input(name: str) -> tuple[str, str]:
    """The text of FILE, or of standard input for '-'; and the name to show."""
    from fwgen.audit import MAX_INPUT
    from fwgen.yamlsource import read_stream, read_text

    if name == "-":
        return read_stream(sys.stdin.buffer, "<stdin>", "input", MAX_INPUT), "<stdin>"
    return read_text(Path(name), name, what="input", limit=MAX_INPUT), name


@app.command()
@user_errors
def audit(
    profile: Annotated[str, typer.Argument(help="The profile the host should be running.")],
    scan: Annotated[
        Path | None, typer.Option("--scan", help="An nmap XML report (nmap -oX) of the host.")
    ] = None,
    listening: Annotated[
        str | None,
        typer.Option("--listening", help="`ss -tulnH` output taken on the host; - for stdin."),
    ] = None,
    source: Annotated[
        str | None, typer.Option("--from", help="The address the scan was taken from.")
    ] = None,
    format_: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
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

    _formats(format_, ("text", "json"))
    if (scan is None) == (listening is None):
        raise FwgenError("give one of --scan FILE or --listening FILE")
    if source is not None:
        try:
            ipaddress.ip_address(source)
        except ValueError:
            raise FwgenError(f"--from {source!r}: not an IP address") from None
    cat = _ports(ports_files)
    (policy,) = _load_policies([profile], set_, cat, allow_outside)
    if scan is not None:
        seen, scanned = auditing.read_nmap(scan)
        items = auditing.audit_scan(policy, cat, seen, scanned, source)
    else:
        text, shown = _read_input(listening or "-")
        items = auditing.audit_listening(policy, cat, auditing.read_ss(text, shown))
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
        str, typer.Option("--listening", help="`ss -tulnH` (or -tulpnH) output; - for stdin.")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the draft here.")
    ] = None,
    ports_files: PortsFiles = None,
) -> None:
    """Draft a profile from the services listening on a host.

    Example: ss -tulpnH | fwgen discover --listening - -o draft.yaml
    """
    from fwgen.audit import discover as draft
    from fwgen.audit import read_ss
    from fwgen.output import write_atomic

    text, shown = _read_input(listening)
    profile = draft(read_ss(text, shown), _ports(ports_files))
    if output is None:
        typer.echo(profile, nl=False)
    else:
        write_atomic(output, profile)


@app.command()
@user_errors
def apply(
    profile: Annotated[
        str | None, typer.Argument(help="A built-in profile name or a profile file.")
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", "-t", help="nftables, iptables or ufw.")
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
    confirm_pending: Annotated[
        bool, typer.Option("--confirm-pending", help="Keep the rules of the apply that waits.")
    ] = False,
    rollback_pending: Annotated[
        bool, typer.Option("--rollback-pending", help="Restore the rules the waiting apply saved.")
    ] = False,
) -> None:
    """Load a profile's rules into this host, with a lock-out guard and automatic rollback.

    Exit 0 applied, 1 rolled back, 2 refused before anything was touched.
    Example: fwgen apply webserver --target nftables --set admins=192.0.2.0/24
    """
    import os

    from fwgen import apply as applying
    from fwgen.apply_targets import BACKENDS

    def say(line: str) -> None:
        typer.echo(f"fwgen: {line}")

    if confirm_pending or rollback_pending:
        outcome = applying.CONFIRMED if confirm_pending else applying.ROLLBACK
        raise typer.Exit(applying.settle_pending(outcome, say))
    if profile is None or target is None:
        raise FwgenError("give a PROFILE and --target (or --confirm-pending)")
    if confirm <= 0:
        raise FwgenError(f"--confirm {confirm}: give a number of seconds above 0, or --yes")
    from fwgen.guard import connections, lockouts
    from fwgen.targets import RenderOptions

    policy, files = _render_profile(
        profile, target, set_, ports_files, allow_outside, RenderOptions(flush_ruleset, strict)
    )
    if target not in BACKENDS:
        _cannot_load_here(target, files)
    found = connections(os.environ, keep or [])
    request = applying.Request(
        target=target,
        files=files,
        profile=profile,
        flush_ruleset=flush_ruleset,
        confirm=None if yes else confirm,
        connections=tuple(found),
        lockouts=tuple(lockouts(policy, found)),
        force=force,
    )
    raise typer.Exit(applying.apply(request, say, applying.stdin_answer))


def _cannot_load_here(target: str, files: dict[str, str]) -> None:
    from fwgen.output import to_stdout

    sys.stdout.write(to_stdout(files))
    name = next(iter(files))
    raise FwgenError(
        f"fwgen cannot load {target} rules here; save the script above as {name} and run it "
        f"on the host: powershell -NoProfile -ExecutionPolicy Bypass -File .\\{name}"
    )


def _formats(value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise FwgenError(f"--format {value!r}: choose {', '.join(choices)}")


@app.command()
def targets() -> None:
    """List the targets and what each can express.

    Example: fwgen targets
    """
    from fwgen.targets import TARGETS

    for spec in TARGETS.values():
        typer.echo(f"{spec.name}: {spec.title}; writes {', '.join(spec.files)}")
        width = max(len(k) for k in spec.capabilities)
        for feature, support in spec.capabilities.items():
            typer.echo(f"  {feature:<{width}}  {support}")


def main() -> None:
    app(prog_name="fwgen")
