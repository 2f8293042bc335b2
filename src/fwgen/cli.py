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
from typing import Annotated, Any, TypeVar

import typer

from fwgen import __version__
from fwgen.errors import FwgenError

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


PortsFiles = Annotated[
    list[str] | None,
    typer.Option("--ports", help="A site port database file (YAML list of services). Repeatable."),
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
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Replace a network's addresses: NAME=CIDR[,CIDR...]. Repeatable."
        ),
    ] = None,
    flush_ruleset: Annotated[
        bool,
        typer.Option(
            "--flush-ruleset",
            help="Take over the host firewall: nftables flushes the ruleset; ufw and windows remove or disable rules of others.",
        ),
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail instead of approximating.")
    ] = False,
    ports_files: PortsFiles = None,
    family: Annotated[
        str | None,
        typer.Option("--family", help="iptables: print only the ipv4 or ipv6 file."),
    ] = None,
) -> None:
    """Render a profile for one firewall.

    Example: fwgen render webserver --target nftables --set admins=192.0.2.0/24
    """
    from fwgen.output import to_stdout, write_outputs
    from fwgen.render import render_with_warnings
    from fwgen.render import target as find_target
    from fwgen.resolve import resolve_profile
    from fwgen.targets import RenderOptions

    spec = find_target(target)
    if family is not None and not spec.family_files:
        raise FwgenError(f"--family: {target} writes one file for both families")
    if family is not None and family not in spec.family_files:
        raise FwgenError(f"--family {family!r}: choose {' or '.join(spec.family_files)}")
    from fwgen.portdb import catalogue

    policy = resolve_profile(profile, parse_sets(set_ or []), catalogue(tuple(ports_files or ())))
    files, warnings = render_with_warnings(
        policy, target, RenderOptions(flush_ruleset=flush_ruleset, strict=strict)
    )
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    if family is not None:
        files = {spec.family_files[family]: files[spec.family_files[family]]}
    if output is None:
        sys.stdout.write(to_stdout(files))
    else:
        write_outputs(files, output)


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

    from fwgen.portdb import catalogue
    from fwgen.portdb import query as run_query
    from fwgen.table import format_table

    if format_ not in ("text", "json"):
        raise FwgenError(f"--format {format_!r}: choose text or json")
    found = run_query(catalogue(tuple(ports_files or ())), query)
    if format_ == "json":
        typer.echo(json.dumps(found, indent=2, ensure_ascii=False))
    elif found:
        rows = [
            (
                e["name"],
                ", ".join(_port_text(p) for p in e["ports"]),
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


def _port_text(port: dict[str, Any]) -> str:
    span = str(port["start"]) if port["start"] == port["end"] else f"{port['start']}-{port['end']}"
    return f"{span}/{port['proto']}"


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
