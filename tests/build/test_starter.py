"""`fwgen init`: a built-in profile copied into a site with its placeholders marked, that
resolves to the built-in's rules; and every DEST that could lose or expose a file refused in
one line, with nothing written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.policy.resolve import resolve_profile
from fwgen.profile.load import builtin_profiles
from tests.conftest import INTERFACES_TO_SET, NETWORKS_TO_SET

runner = CliRunner()


def _without_origins(value: Any) -> Any:
    """A Policy's dump without what names its files: origins, profile name, file list."""
    if isinstance(value, dict):
        return {
            k: _without_origins(v)
            for k, v in value.items()
            if k not in ("origin", "profile", "files")
        }
    if isinstance(value, list | tuple):
        return [_without_origins(v) for v in value]
    return value


def _marked(text: str) -> dict[str, str]:
    """The name on the line below each `fwgen init:` mark → the mark."""
    rows = text.split("\n")
    return {
        rows[i + 1].strip().split(":")[0]: row.strip()
        for i, row in enumerate(rows)
        if row.strip().startswith("# fwgen init:")
    }


@pytest.mark.parametrize("name", sorted(builtin_profiles()))
def test_the_copy_resolves_to_the_builtin_and_marks_its_placeholders(
    name: str, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["init", name, f"{tmp_path / 'site'}/"])
    assert result.exit_code == 0, result.output
    copy = tmp_path / "site" / f"{name}.yaml"
    assert result.stdout == f"wrote {copy}\n"
    text = copy.read_text()
    original = builtin_profiles()[name].read_text()
    # the built-in, line for line, with comment lines added
    assert [r for r in text.split("\n") if not r.lstrip().startswith("#")] == [
        r for r in original.split("\n") if not r.lstrip().startswith("#")
    ]
    assert yaml.safe_load(text) == yaml.safe_load(original)
    site = resolve_profile(str(copy))
    assert _without_origins(site.plain()) == _without_origins(resolve_profile(name).plain())
    expected = sorted(NETWORKS_TO_SET.get(name, []) + INTERFACES_TO_SET.get(name, []))
    assert sorted(_marked(text)) == expected
    assert text.startswith(f"# A site profile, started from fwgen's built-in profile {name} ")
    if expected:
        assert "# Set them here, or per host" in text
    assert oct(copy.stat().st_mode & 0o777) == "0o644"


def test_the_marks_say_what_to_set() -> None:
    text = runner.invoke(app, ["init", "database", "-"]).stdout
    marks = _marked(text)
    assert marks["admins"] == (
        "# fwgen init: set admins to your own addresses "
        "(documentation placeholders now, they match no host)"
    )
    assert marks["private"].startswith("# fwgen init: set private to this host's interfaces")
    assert text.split("\n")[2] == "#   networks: admins, app; interface groups: private"


def test_dest_a_yaml_file_and_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["init", "minimal"]).exit_code == 0
    assert (tmp_path / "minimal.yaml").is_file()
    assert runner.invoke(app, ["init", "webserver", "edge.yml"]).exit_code == 0
    assert (tmp_path / "edge.yml").read_text().startswith("# A site profile")
    # a new folder is made when DEST ends in / (its parent must exist)
    assert runner.invoke(app, ["init", "bastion", "site/"]).exit_code == 0
    assert (tmp_path / "site" / "bastion.yaml").is_file()
    # and an existing folder is one without the /
    assert runner.invoke(app, ["init", "minimal", "site"]).exit_code == 0
    assert (tmp_path / "site" / "minimal.yaml").is_file()


@pytest.mark.parametrize("dest", ["web1", "web1.YAML", "web1.json", "web1.yaml.bak"])
def test_a_missing_dest_that_is_not_a_yaml_file_nor_ends_in_a_slash(
    tmp_path: Path, dest: str
) -> None:
    """A name that is neither: a file meant, mistyped, would have become a folder."""
    stem = dest.split(".")[0]
    fixes = f"give {tmp_path / dest}/ to make the folder, or {tmp_path / stem}"
    _refused(["webserver", str(tmp_path / dest)], f"no such folder, and not a .yaml file; {fixes}")
    assert list(tmp_path.iterdir()) == []


def _refused(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["init", *args])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert message in result.stderr, result.stderr


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "webserver.yaml"
    target.write_text("mine\n")
    _refused(["webserver", str(tmp_path)], "already exists; fwgen init never overwrites")
    _refused(["webserver", str(target)], "already exists")
    assert target.read_text() == "mine\n"
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "webserver.yaml").mkdir()  # a folder where the file would go
    _refused(["webserver", str(tmp_path / "sub")], "already exists")


def test_symbolic_links_are_refused_dangling_or_not(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    (tmp_path / "link.yaml").symlink_to(victim)
    _refused(["minimal", str(tmp_path / "link.yaml")], "is a symbolic link")
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "nowhere.yaml")
    _refused(["minimal", str(tmp_path / "dangling.yaml")], "is a symbolic link")
    assert not (tmp_path / "nowhere.yaml").exists()
    (tmp_path / "real").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "real")
    _refused(["minimal", str(tmp_path / "linked")], "is a symbolic link")
    # inside a folder, the file's name is a dangling link: link(2) refuses it too
    (tmp_path / "real" / "minimal.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    _refused(["minimal", str(tmp_path / "real")], "already exists")
    assert victim.read_text() == "keep\n" and not (tmp_path / "elsewhere.yaml").exists()
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["minimal.yaml"]


@pytest.mark.parametrize(
    "name", ["a\nb", "line\u2028sep.yaml", "bell\x07", "rtl\u202eylm.yaml", " ", "esc\x1b[31m"]
)
def test_odd_names_are_one_line(tmp_path: Path, name: str) -> None:
    _refused(["minimal", str(tmp_path / name) if name.strip() else name], "not printable")
    assert list(tmp_path.iterdir()) == []


def test_a_file_where_the_folder_would_be_and_a_missing_parent(tmp_path: Path) -> None:
    (tmp_path / "notes").write_text("")
    _refused(["minimal", str(tmp_path / "notes")], "exists and is not a folder")
    _refused(["minimal", str(tmp_path / "a" / "b") + "/"], "its folder does not exist")
    _refused(["minimal", str(tmp_path / "a" / "b" / "c.yaml")], "its folder does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]
    # one missing folder is made, for a folder DEST and a file DEST alike
    assert runner.invoke(app, ["init", "minimal", str(tmp_path / "a" / "b.yaml")]).exit_code == 0
    assert (tmp_path / "a" / "b.yaml").is_file()


def test_an_unknown_profile_names_the_built_ins(tmp_path: Path) -> None:
    _refused(["webservr", str(tmp_path)], "(did you mean 'webserver'?)")
    _refused(["./profiles/webserver.yaml", str(tmp_path)], "unknown built-in profile")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(source: str, target: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "link", full)
    _refused(["minimal", str(tmp_path)], "cannot write: No space left on device")
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


def test_quiet_init_says_nothing(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", "-q", "webserver", str(tmp_path)])
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""
    assert (tmp_path / "webserver.yaml").is_file()
