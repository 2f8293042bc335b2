"""The commands that review a profile: `check` for risks, `explain` for what it
admits, `diff` for what a change would change.

Each command imports what it works with when it runs, so that `fwgen --version`
and `fwgen --help` load none of it."""

from __future__ import annotations

from typing import Annotated

import typer

from fwgen import __version__
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

    from fwgen.review.check import as_json, as_sarif, as_text, check_policy

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

    from fwgen.review.explain import TABLE_HEADERS, settings_lines, table_rows
    from fwgen.review.explain import explain as explain_policy
    from fwgen.table import format_table

    check_format(format_, ("text", "json"))
    cat = site_ports(ports_files)
    (policy,) = load_policies([profile], set_, cat, allow_outside)
    shown = explain_policy(policy, cat)
    if format_ == "json":
        typer.echo(json.dumps(shown, indent=2))
    else:
        typer.echo("\n".join(settings_lines(policy)) + "\n\n", nl=False)
        if "denies" in shown:
            typer.echo("Blocked first, before every rule below (deny and reject rules):")
            typer.echo(format_table(TABLE_HEADERS, table_rows(shown["denies"])) + "\n", nl=False)
        typer.echo(format_table(TABLE_HEADERS, table_rows(shown["rules"])), nl=False)


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

    from fwgen.cli.diff_command import diff_sides
    from fwgen.review.diff import as_text, changes, diff_policies

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
