"""The commands that fit fwgen into a shell and a site: `completion` and `init`.

Each command imports what it works with when it runs (see `fwgen.cli.render`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from fwgen.cli.common import say
from fwgen.errors import FwgenError, printable


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
            help="A folder (PROFILE.yaml is written in it; a missing one, written with a "
            "final /, is made), a new .yaml file, or - for stdout. Default: the working "
            "directory.",
            show_default=False,
        ),
    ] = ".",
) -> None:
    """Start a site profile from a built-in one: a copy with its placeholders marked, the
    networks and interfaces to set; never over an existing file.

    Example: fwgen init webserver site/
    """
    from fwgen.build.starter import destination, starter_text, write_new

    text = starter_text(profile)
    if dest == "-":
        typer.echo(text, nl=False)
        return
    path = destination(new_folder_or_file(dest), profile)
    write_new(path, text)
    say(f"wrote {path}")


def new_folder_or_file(dest: str) -> Path:
    """DEST as `fwgen init` takes it: a name that is not there is a new .yaml file, or a
    new folder when it ends in /; anything else is refused (a typo such as ``web1`` or
    ``web1.YAML`` would otherwise become a folder)."""
    from fwgen.build.starter import SUFFIXES

    path = Path(dest)
    if (
        not dest.isprintable()  # `destination` says why
        or not dest.strip()
        or dest.endswith(("/", os.sep))
        or path.name.endswith(SUFFIXES)
        or os.path.lexists(path)
    ):
        return path
    shown = printable(dest)
    file = printable(str(path.with_name((path.name.split(".")[0] or path.name) + ".yaml")))
    raise FwgenError(
        f"DEST {shown!r}: no such folder, and not a .yaml file; give {shown}/ to make the "
        f"folder, or {file} for a file"
    )
