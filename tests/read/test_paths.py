"""Where files live, and the folders that files named inside other files must stay in."""

from __future__ import annotations

from pathlib import Path

import pytest

from fwgen.errors import FwgenError
from fwgen.read.paths import Boundary


def test_boundary_refuses_git_folders_in_any_case(tmp_path: Path) -> None:
    boundary = Boundary.around(tmp_path / "fwgen.yaml")
    for name in (".git/x", ".GIT/hooks/x", "a/.Git/x"):
        with pytest.raises(FwgenError, match=r"\.git folder"):
            boundary.check(tmp_path / name, "output", name)
    assert boundary.check(tmp_path / ".github/x", "output", "x") == tmp_path / ".github/x"


def test_boundary_is_the_folder_a_symlinked_file_is_named_in(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "fwgen.yaml").write_text("hosts: {}\n")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "fwgen.yaml").symlink_to(tmp_path / "elsewhere" / "fwgen.yaml")
    boundary = Boundary.around(tmp_path / "site" / "fwgen.yaml")
    assert boundary.home == tmp_path / "site"
    with pytest.raises(FwgenError, match="is outside"):
        boundary.check(tmp_path / "site" / "../elsewhere/x", "output", "../elsewhere/x")


def test_folder_of_names_the_boundary_folder_that_holds_a_path(tmp_path: Path) -> None:
    boundary = Boundary(tmp_path / "site", (tmp_path / "out",))
    assert boundary.folder_of(tmp_path / "site" / "a" / "b") == tmp_path / "site"
    assert boundary.folder_of(tmp_path / "out") == tmp_path / "out"
    assert boundary.folder_of(tmp_path / "other") is None
