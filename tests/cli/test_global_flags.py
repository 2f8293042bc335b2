"""-q/--quiet and --debug, taken anywhere on the line: before the command, after it, in a
command group's subcommand; and `--` still ends them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app

runner = CliRunner()
DATABASE = ["render", "database", "-t", "nftables"]


@pytest.mark.parametrize(
    "args",
    [
        ["-q", *DATABASE],
        [*DATABASE, "-q"],
        ["--quiet", *DATABASE],
        [*DATABASE[:2], "-q", "-t", "nftables"],
    ],
)
def test_quiet_leaves_out_the_warnings_and_nothing_else(args: list[str]) -> None:
    loud = runner.invoke(app, DATABASE)
    assert loud.exit_code == 0 and loud.stderr.count("warning: ") == 2, loud.stderr
    quiet = runner.invoke(app, args)
    assert quiet.exit_code == 0
    assert quiet.stderr == ""
    assert quiet.stdout == loud.stdout


def test_quiet_keeps_an_error_one_line_and_its_exit_code() -> None:
    result = runner.invoke(app, ["-q", "render", "no-such-profile", "-t", "nftables"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: unknown profile")
    strict = runner.invoke(app, ["render", "database", "-t", "windows", "--strict", "--quiet"])
    assert strict.exit_code == 2 and strict.stdout == ""
    assert strict.stderr.startswith("error: windows: ping") and "warning" not in strict.stderr


def test_quiet_build_writes_and_says_nothing(tmp_path: Path) -> None:
    (tmp_path / "fwgen.yaml").write_text(
        "hosts:\n  db:\n    profile: database\n    targets: {nftables: out/db.nft}\n"
    )
    manifest = str(tmp_path / "fwgen.yaml")
    result = runner.invoke(app, ["build", "-q", manifest])
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""
    assert (tmp_path / "out" / "db.nft").read_text().startswith("#")
    # a stale file is still shown, and still exit 1
    (tmp_path / "out" / "db.nft").write_text("old\n")
    stale = runner.invoke(app, ["build", manifest, "--check", "-q"])
    assert stale.exit_code == 1 and "-old" in stale.stdout and "stale: 1 of 1" in stale.stderr


def test_debug_is_taken_before_the_command_after_it_and_inside_a_group() -> None:
    for args in (
        ["--debug", "shadow", "report", "no-such-profile"],
        ["shadow", "--debug", "report", "no-such-profile"],
        ["shadow", "report", "no-such-profile", "--debug"],
    ):
        result = runner.invoke(app, args)
        assert "unknown profile" in str(result.exception), (args, result.output)
    one_line = runner.invoke(app, ["shadow", "report", "no-such-profile"])
    assert one_line.exit_code == 2 and one_line.stderr.startswith("error: unknown profile")


def test_flags_after_double_dash_are_arguments() -> None:
    result = runner.invoke(app, ["render", "-t", "nftables", "--", "-q"])
    assert result.exit_code == 2 and "unknown profile '-q'" in result.stderr


def test_flags_do_not_stick_from_one_run_to_the_next() -> None:
    assert runner.invoke(app, ["-q", *DATABASE]).stderr == ""
    assert "warning: " in runner.invoke(app, DATABASE).stderr
