"""The ``fwgen`` command: a thin shell over the library.

Exit codes: 0 success; 1 a check found something (stale output, findings, a diff);
2 a user mistake (bad profile, unknown name, bad option), reported as one line.
Anything else with a traceback is a bug in fwgen.
"""

from __future__ import annotations

from typing import Annotated

import typer

from fwgen import __version__
from fwgen.cli import catalogue, hits, host, render, review
from fwgen.cli.common import STATE, App, user_errors
from fwgen.cli.shadow import shadow_app
from fwgen.cli.verify import verify

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


# The commands, in the order `fwgen --help` lists them.
COMMANDS = (
    render.render,
    catalogue.profiles,
    catalogue.ports,
    review.check,
    review.explain,
    review.diff,
    render.build,
    host.audit,
    host.discover,
    host.apply,
    hits.hits,
    verify,
    catalogue.schema,
    catalogue.targets,
)
for command in COMMANDS:
    app.command()(user_errors(command))
app.add_typer(shadow_app, name="shadow")


def main() -> None:
    app(prog_name="fwgen")
