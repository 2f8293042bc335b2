"""The ``fwgen`` command: a thin shell over the library.

Exit codes: 0 success; 1 a check found something (stale output, findings, a diff);
2 a user mistake (bad profile, unknown name, bad option), reported as one line.
Anything else with a traceback is a bug in fwgen.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from fwgen import __version__
from fwgen.cli import catalogue, hits, host, render, review, shell
from fwgen.cli.common import App, RootGroup, user_errors
from fwgen.cli.shadow import shadow_app

app = App(
    cls=RootGroup,
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
        typer.Option("--debug", help="Show a traceback for errors too (anywhere on the line)."),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="No warnings and no progress lines; errors and exit codes stay the same "
            "(anywhere on the line).",
        ),
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """--debug and -q are taken from the whole line by `RootGroup`, before this runs."""


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
    catalogue.schema,
    catalogue.targets,
    shell.init,
    shell.completion,
)
for command in COMMANDS:
    app.command()(user_errors(command))
app.add_typer(shadow_app, name="shadow")


def main() -> None:
    if "_FWGEN_COMPLETE" in os.environ:  # a shell asks what completes its line
        from fwgen.cli.completion import complete_from_environment

        sys.exit(complete_from_environment(typer.main.get_command(app)))
    app(prog_name="fwgen")
