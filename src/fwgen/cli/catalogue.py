"""The commands that list what fwgen knows: built-in profiles, the port database,
the schemas of the files users write, and the targets.

Each command imports what it works with when it runs, so that `fwgen --version`
and `fwgen --help` load none of it."""

from __future__ import annotations

from typing import Annotated

import typer

from fwgen.cli.common import (
    PortsFiles,
    check_format,
    format_option,
    site_ports,
)
from fwgen.targets import TARGETS


def profiles(
    format_: Annotated[str, format_option("text or json")] = "text",
) -> None:
    """List the built-in profiles: what each is for, what it extends, what you must set.

    Example: fwgen profiles --format json
    """
    import json

    from fwgen.cli.listing import as_text, builtin_rows

    check_format(format_, ("text", "json"))
    rows = builtin_rows()
    if format_ == "json":
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(as_text(rows), nl=False)


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

    from fwgen.profile.portquery import as_text
    from fwgen.profile.portquery import query as run_query

    check_format(format_, ("text", "json"))
    found = run_query(site_ports(ports_files), query)
    if format_ == "json":
        typer.echo(json.dumps(found, indent=2, ensure_ascii=False))
    elif found:
        typer.echo(as_text(found, sources=source), nl=False)
    if not found:
        typer.echo(f"no service matches {query!r}", err=True)
        raise typer.Exit(1)


def schema(
    kind: Annotated[
        str,
        typer.Argument(metavar="KIND", help="profile, manifest or ports (a site port file)."),
    ],
) -> None:
    """Print the JSON Schema of a file you write, for your editor.

    Example: fwgen schema profile > .fwgen/profile.schema.json
    """
    from fwgen.cli.schema import shipped

    typer.echo(shipped(kind), nl=False)


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
