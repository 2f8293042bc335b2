"""The manual page: generated from the CLI (a stale page fails), rendered by man itself
without a warning, and naming every command and option."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import typer

from fwgen.cli import manpage
from fwgen.cli.app import app

STALE = "data/fwgen.1 differs from the CLI: run `python -m fwgen.cli.manpage`"


def test_the_shipped_page_is_the_cli_s() -> None:
    assert manpage.PAGE.read_text(encoding="utf-8") == manpage.page(app), STALE


def _man() -> str:
    found = shutil.which("man")
    if found is None:
        if os.environ.get("FWGEN_REQUIRE_KERNEL") == "1":
            pytest.fail("man is not installed (.ci/run installs man-db)")
        pytest.skip("man is not installed")
    return found


def test_man_renders_the_page_without_a_warning() -> None:
    result = subprocess.run(
        [_man(), "--warnings", "-P", "cat", "-l", str(manpage.PAGE)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MANWIDTH": "100", "LC_ALL": "C.UTF-8", "MANPAGER": "cat"},
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    text = result.stdout
    assert text.startswith("FWGEN(1)")
    for heading in ("NAME", "SYNOPSIS", "COMMANDS", "EXIT STATUS", "ENVIRONMENT", "SEE ALSO"):
        assert f"\n{heading}\n" in text, heading
    cli = typer.main.get_command(app)
    ctx = cli.context_class(cli, info_name="fwgen")
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        subcommands = getattr(command, "commands", {name: command})
        for sub_name, sub in subcommands.items():
            shown = f"fwgen {name}" if sub is command else f"fwgen {name} {sub_name}"
            assert f"   {shown} [OPTIONS]" in text, shown
            for param in sub.params:
                for opt in param.opts if param.param_type_name == "option" else ():
                    assert opt in text, (shown, opt)
    # roff escapes kept the text: hyphens, backslashes and a line starting with a dot
    assert "fwgen render webserver --target nftables --set admins=10.20.0.0/16" in text
    assert "--set NAME=CIDR[,CIDR...]" in text


def test_escape_keeps_roff_requests_out() -> None:
    assert manpage.escape(".TH x\n'y\n-a \\b") == "\\&.TH x\n\\&'y\n\\-a \\eb"
