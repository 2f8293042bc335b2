"""Origins are repository paths: the same profile gives the same bytes from any working
directory and any spelling of its path, inside a git work tree or not, and no output
names a folder of the machine it ran on."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app

runner = CliRunner()

WEB1 = """\
description: site web server
extends: [base, common]
networks:
  admins: [{file: lists/admins.txt}, "2001:db8:5::/48"]
inbound:
  - {service: https}
  - {service: ssh, from: admins}
  - {service: telnet, from: [10.0.0.0/8]}
"""
COMMON = "description: common\ninbound:\n  - {service: http}\n  - {service: http}\n"
MANIFEST = """\
hosts:
  web1:
    profile: web1.yaml
    targets: {nftables: out/web1.nft, iptables: out/web1/}
"""


def make_site(top: Path, git: bool) -> Path:
    """*top*/site with a profile that extends a sibling and reads an address list."""
    site = top / "site"
    (site / "lists").mkdir(parents=True)
    if git:
        (top / ".git").mkdir()
    (site / "web1.yaml").write_text(WEB1)
    (site / "common.yaml").write_text(COMMON)
    (site / "lists" / "admins.txt").write_text("# admins\n10.1.2.0/24\n")
    (site / "fwgen.yaml").write_text(MANIFEST)
    return site


def spellings(tmp_path: Path, site: Path) -> list[tuple[Path, str]]:
    """(working directory, how the profile is named there)."""
    top = site.parent
    (tmp_path / "link").symlink_to(top, target_is_directory=True)
    return [
        (site, "web1.yaml"),
        (site, "./web1.yaml"),
        (site, str(site / "web1.yaml")),
        (top, "site/web1.yaml"),
        (top, "./site/../site/web1.yaml"),
        (tmp_path, "link/site/web1.yaml"),
        (Path("/"), str(tmp_path / "link" / "site" / "web1.yaml")),
    ]


def invoke(monkeypatch: pytest.MonkeyPatch, cwd: Path, args: list[str]) -> tuple[int, str]:
    monkeypatch.chdir(cwd)
    result = runner.invoke(app, args)
    return result.exit_code, result.stdout + result.stderr


COMMANDS = {
    "render nftables": ["render", "{}", "-t", "nftables"],
    "render iptables": ["render", "{}", "-t", "iptables"],
    "check": ["check", "{}"],
    "check sarif": ["check", "{}", "--format", "sarif"],
    "explain": ["explain", "{}", "--format", "json"],
}


@pytest.mark.parametrize("git", [True, False], ids=["in a git work tree", "outside git"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_same_bytes_from_any_directory_and_spelling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, git: bool, command: str
) -> None:
    site = make_site(tmp_path / "repo", git)
    seen = {}
    for cwd, spelled in spellings(tmp_path, site):
        args = [a.format(spelled) for a in COMMANDS[command]]
        seen[(str(cwd), spelled)] = invoke(monkeypatch, cwd, args)
    assert len(set(seen.values())) == 1, seen
    code, text = next(iter(seen.values()))
    assert code in (0, 1), text
    assert str(tmp_path) not in text and "/link/" not in text
    prefix = "site/" if git else ""
    assert re.search(rf'(^|[\s"(]){prefix}web1\.yaml[:"]', text, re.MULTILINE), text
    if command.startswith("render"):
        assert (
            f"# Profile files: profiles/base.yaml, {prefix}common.yaml, {prefix}web1.yaml\n" in text
        )


def test_the_policy_digest_does_not_depend_on_the_spelling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fwgen.policy.resolve import resolve_profile

    site = make_site(tmp_path / "repo", git=True)
    digests = set()
    for cwd, spelled in spellings(tmp_path, site):
        monkeypatch.chdir(cwd)
        digests.add(resolve_profile(spelled).digest())
    assert len(digests) == 1


def test_errors_name_files_as_origins_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = make_site(tmp_path / "repo", git=True)
    (site / "lists" / "admins.txt").write_text("# admins\n10.1.2.3/24\n")
    seen = set()
    for cwd, spelled in spellings(tmp_path, site):
        seen.add(invoke(monkeypatch, cwd, ["render", spelled, "-t", "nftables"]))
    assert seen == {
        (
            2,
            "error: site/lists/admins.txt:2: '10.1.2.3/24': host bits set; "
            "did you mean 10.1.2.0/24 or 10.1.2.3/32?\n",
        )
    }


def test_render_check_and_build_check_agree_however_invoked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = make_site(tmp_path / "repo", git=True)
    top = site.parent
    code, text = invoke(monkeypatch, site, ["render", "web1.yaml", "-t", "nftables", "-o", "a.nft"])
    assert code == 0, text
    for cwd, spelled in spellings(tmp_path, site):
        out = str(site / "a.nft")
        code, text = invoke(
            monkeypatch, cwd, ["render", spelled, "-t", "nftables", "-o", out, "--check"]
        )
        assert code == 0, (cwd, spelled, text)
    code, text = invoke(monkeypatch, top, ["build", "site/fwgen.yaml"])
    assert code == 0, text
    for cwd, manifest in [
        (site, "fwgen.yaml"),
        (top, "./site/fwgen.yaml"),
        (Path("/"), str(tmp_path / "link" / "site" / "fwgen.yaml")),
    ]:
        code, text = invoke(monkeypatch, cwd, ["build", manifest, "--check"])
        assert code == 0, (cwd, manifest, text)
    written = (site / "out" / "web1.nft").read_text()
    assert written == (site / "a.nft").read_text()
    assert str(tmp_path) not in written


def test_a_fresh_process_gives_the_same_bytes(tmp_path: Path) -> None:
    """The same check as a user's shell would run it, without the test runner's state."""
    site = make_site(tmp_path / "repo", git=True)
    outputs = set()
    for cwd, spelled in [(site, "./web1.yaml"), (Path("/"), str(site / "web1.yaml"))]:
        result = subprocess.run(
            [sys.executable, "-m", "fwgen", "render", spelled, "-t", "nftables"],
            cwd=cwd,
            env={**os.environ, "PYTHONHASHSEED": "random"},
            capture_output=True,
            check=True,
        )
        outputs.add(result.stdout)
    assert len(outputs) == 1
    assert b"# Profile files: profiles/base.yaml, site/common.yaml, site/web1.yaml\n" in (
        outputs.pop()
    )


def test_a_git_work_tree_whose_dot_git_is_a_file(tmp_path: Path) -> None:
    """A worktree or a submodule has a `.git` file, not a folder: still the work tree."""
    from fwgen.policy.resolve import resolve_profile

    site = make_site(tmp_path / "repo", git=False)
    (site.parent / ".git").write_text("gitdir: /elsewhere\n")
    assert resolve_profile(str(site / "web1.yaml")).files == (
        "profiles/base.yaml",
        "site/common.yaml",
        "site/web1.yaml",
    )


def test_a_profile_from_git_is_named_by_its_path_in_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`diff REV:path` reads the old profile from a temporary checkout: its messages name it
    by its path in the repository, from the top or from a folder inside."""
    site = make_site(tmp_path / "repo", git=False)
    top = site.parent
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-C", str(top)]
    subprocess.run([*git, "init", "-q"], check=True)
    (site / "web1.yaml").write_text(WEB1.replace("{service: https}", "{service: htps}"))
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    (site / "web1.yaml").write_text(WEB1)
    expected = "error: site/web1.yaml:6: inbound[0].service: unknown service 'htps' (did you mean 'https'?)\n"
    for cwd, old, new in [
        (top, "HEAD:site/web1.yaml", "site/web1.yaml"),
        (site, "HEAD:web1.yaml", "web1.yaml"),
    ]:
        code, text = invoke(monkeypatch, cwd, ["diff", old, new])
        assert (code, text) == (2, expected)
