"""The ``fwgen`` command: a thin shell over the library.

Exit codes: 0 success; 1 a check found something (stale output, findings, a diff);
2 a user mistake (bad profile, unknown name, bad option), reported as one line;
130 stopped by Ctrl-C (fwgen.stopping).
Anything else with a traceback is a bug in fwgen.
"""

from __future__ import annotations

import gc
import os
import sys
from typing import Annotated

import typer

from fwgen import __version__, stopping
from fwgen.cli import catalogue, hits, host, query, render, review, shell
from fwgen.cli.common import GLOBAL_FLAGS, App, RootGroup, user_errors
from fwgen.cli.shadow import shadow_app
from fwgen.cli.verify import verify


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fwgen {__version__}")
        raise typer.Exit()


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
    query.query,
    render.build,
    host.audit,
    host.discover,
    host.apply,
    hits.hits,
    verify,
    catalogue.schema,
    catalogue.targets,
    shell.init,
    shell.completion,
)
GROUPS = {"shadow": shadow_app}
NAMES = {*(c.__name__.replace("_", "-") for c in COMMANDS), *GROUPS}


def make_app(only: str | None = None) -> App:
    """The ``fwgen`` app: every command, or only the command called *only*. typer builds
    each command it holds before parsing a word, so a process that runs one command
    builds that one alone; ``fwgen --help`` and an unknown name get them all."""
    made = App(
        cls=RootGroup,
        help="Render declarative host profiles into default-deny firewall rulesets.",
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
    )
    made.callback()(main_options)
    for command in COMMANDS:
        if only in (None, command.__name__.replace("_", "-")):
            made.command()(user_errors(command))
    for name, group in GROUPS.items():
        if only in (None, name):
            made.add_typer(group, name=name)
    return made


app = make_app()


def command_named(args: list[str]) -> str | None:
    """The command *args* run, when they name one after no option but the global flags
    (any other option of the app's own may ask for the whole list)."""
    for arg in args:
        if arg not in GLOBAL_FLAGS:
            return arg if arg in NAMES else None
    return None


def main() -> None:
    # pydantic runs every plugin an installed package declares (an entry point) on each
    # validation, seeing the profile's every value; fwgen uses none, often runs as root,
    # and would otherwise pay for searching every installed package's metadata for them.
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"
    if "_FWGEN_COMPLETE" in os.environ:  # a shell asks what completes its line
        from fwgen.cli.completion import complete_from_environment

        sys.exit(complete_from_environment(typer.main.get_command(app)))
    stopping.ends_process()  # a stop signal after the command's outcome changes nothing
    try:
        make_app(command_named(sys.argv[1:]))(prog_name="fwgen")
    finally:
        # The process ends here. Left to itself, the interpreter would walk every object
        # it holds once more on the way out, looking for cycles to free: nothing that
        # memory is needed for any more, and a sixth of a small render's time.
        gc.freeze()
