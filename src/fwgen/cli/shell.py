"""The commands that fit fwgen into a shell and a site: `completion` and `init`.

Each command imports what it works with when it runs (see `fwgen.cli.render`)."""

from __future__ import annotations

from typing import Annotated

import typer

from fwgen.cli.common import say
from fwgen.errors import FwgenError


def completion(
    shell: Annotated[str, typer.Argument(metavar="SHELL", help="bash, zsh or fish.")],
) -> None:
    """Print the script that makes SHELL complete fwgen's commands, options, profiles,
    targets and --set network names.

    Example: fwgen completion bash > ~/.local/share/bash-completion/completions/fwgen
    """
    from fwgen.cli.completion_scripts import SCRIPTS

    if shell not in SCRIPTS:
        raise FwgenError(f"completion {shell!r}: choose {', '.join(SCRIPTS)}")
    typer.echo(SCRIPTS[shell], nl=False)


def init(
    profile: Annotated[
        str, typer.Argument(metavar="PROFILE", help="The built-in profile to start from.")
    ],
    dest: Annotated[
        str,
        typer.Argument(
            metavar="DEST",
            help="A folder (PROFILE.yaml is written in it, the folder made if missing), a new "
            ".yaml file, or - for stdout. Default: the working directory.",
            show_default=False,
        ),
    ] = ".",
) -> None:
    """Start a site profile from a built-in one: a copy with its placeholders marked, the
    networks and interfaces to set; never over an existing file.

    Example: fwgen init webserver site/
    """
    from pathlib import Path

    from fwgen.build.starter import destination, starter_text, write_new

    text = starter_text(profile)
    if dest == "-":
        typer.echo(text, nl=False)
        return
    path = destination(Path(dest), profile)
    write_new(path, text)
    say(f"wrote {path}")
