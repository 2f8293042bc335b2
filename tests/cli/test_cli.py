from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion
from typer.testing import CliRunner

from fwgen.cli.app import app
from tests.conftest import NETWORKS_TO_SET, REPO

runner = CliRunner()
BAD = REPO / "tests" / "data" / "bad"


def test_render_prints_the_ruleset() -> None:
    result = runner.invoke(app, ["render", "webserver", "--target", "nftables"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("#!/usr/sbin/nft -f\n")
    assert "tcp dport 443 counter accept" in result.stdout


def test_render_with_set_uses_the_given_addresses() -> None:
    result = runner.invoke(
        app,
        ["render", "webserver", "-t", "nftables", "--set", "admins=192.0.2.0/24,2001:db8:5::/48"],
    )
    assert result.exit_code == 0, result.output
    assert "elements = { 192.0.2.0/24 }" in result.stdout
    assert "elements = { 2001:db8:5::/48 }" in result.stdout
    assert "198.51.100.0/24" not in result.stdout


def test_render_writes_output_file_atomically_keeping_its_mode(tmp_path: Path) -> None:
    out = tmp_path / "fwgen.nft"
    out.write_text("old")
    out.chmod(0o600)
    result = runner.invoke(app, ["render", "webserver", "-t", "nftables", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert out.read_text().startswith("#!/usr/sbin/nft -f")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["fwgen.nft"]  # no temporary file left behind


def test_failed_render_leaves_the_previous_output_untouched(tmp_path: Path) -> None:
    out = tmp_path / "fwgen.nft"
    out.write_text("previous")
    result = runner.invoke(
        app, ["render", str(BAD / "unknown-service.yaml"), "-t", "nftables", "-o", str(out)]
    )
    assert result.exit_code == 2
    assert out.read_text() == "previous"


def test_unknown_profile_is_one_line_and_exit_2() -> None:
    result = runner.invoke(app, ["render", "nosuch", "--target", "nftables"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: unknown profile 'nosuch'; built-in profiles are base, bastion, database, "
        "dns-authoritative, dns-resolver, docker-host, fileserver, kubernetes-node, mailserver, minimal, "
        "monitoring, vpn-gateway, webserver, workstation, or give the path of a .yaml file"
    ]


def test_unknown_target_suggests() -> None:
    result = runner.invoke(app, ["render", "webserver", "--target", "nftable"])
    assert result.exit_code == 2
    assert "unknown target 'nftable' (did you mean 'nftables'?)" in result.stderr


def test_bad_set_option_is_a_user_error() -> None:
    result = runner.invoke(app, ["render", "webserver", "-t", "nftables", "--set", "admins"])
    assert result.exit_code == 2
    assert "write NAME=CIDR" in result.stderr
    result = runner.invoke(
        app, ["render", "webserver", "-t", "nftables", "--set", "admins=10.0.0.300"]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --set admins: invalid address or CIDR '10.0.0.300'"


def test_profiles_lists_builtins_with_descriptions() -> None:
    result = runner.invoke(app, ["profiles"])
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == list(NETWORKS_TO_SET)  # hand-written, in order
    assert "Public web server" in result.stdout
    web = next(line for line in result.stdout.splitlines() if line.startswith("webserver "))
    assert web.endswith("with SSH for administrators (set: admins)")
    assert "(set:" not in next(x for x in result.stdout.splitlines() if x.startswith("base "))


def test_targets_lists_capabilities() -> None:
    result = runner.invoke(app, ["targets"])
    assert result.exit_code == 0
    assert "nftables" in result.stdout and "rate limits" in result.stdout


def test_debug_shows_the_traceback() -> None:
    result = runner.invoke(app, ["--debug", "render", "nosuch", "-t", "nftables"])
    assert result.exit_code != 2
    assert result.exception is not None


@pytest.mark.parametrize("name", sorted(p.name for p in BAD.iterdir()))
def test_bad_profiles_give_located_one_line_errors(
    name: str, snapshot: SnapshotAssertion, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(BAD)
    out = tmp_path / "out.nft"
    result = runner.invoke(app, ["render", name, "-t", "nftables", "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.startswith(f"error: tests/data/bad/{name}:") or result.stderr.startswith(
        "error: tests/data/bad/cycle-"
    )
    assert "Traceback" not in result.output
    assert not out.exists()
    assert result.stderr == snapshot


def test_unreadable_profile(
    write_profile: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_profile("description: x\n")
    real_open = os.open

    def deny(name: object, *args: int) -> int:
        if Path(str(name)) == path:
            raise PermissionError(13, "Permission denied")
        return real_open(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", deny)
    result = runner.invoke(app, ["render", str(path), "-t", "nftables"])
    assert result.exit_code == 2
    assert result.stderr == f"error: {path}: profile file is not readable (permission denied)\n"


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("/dev/null", "profile path is a character device, not a file"),
        ("sub/missing.yaml", "profile file not found"),
        ("sub/dir.yaml", "profile path is a directory, not a file"),
    ],
)
def test_a_profile_that_cannot_be_read_is_named_as_given(
    given: str, why: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not by its last part alone (`null`, `missing.yaml`): the path the user typed."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub" / "dir.yaml").mkdir(parents=True)
    for command in (
        ["render", given, "-t", "nftables"],
        ["check", given],
        ["diff", given, "minimal"],
    ):
        result = runner.invoke(app, command)
        assert (result.exit_code, result.stderr) == (2, f"error: {given}: {why}\n"), command


def test_a_directory_is_not_a_profile(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    result = runner.invoke(app, ["render", str(tmp_path / "dir.yaml"), "-t", "nftables"])
    assert result.exit_code == 2
    assert "is a directory" in result.stderr
