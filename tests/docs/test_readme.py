"""The README is a short start, its install instructions use the distribution name, and
the version means something. Its quickstart runs word for word in
tests/kernel/test_readme_quickstart.py."""

from __future__ import annotations

import re
from pathlib import Path

import fwgen
from tests.docs.examples import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
PYPROJECT = (REPO / "pyproject.toml").read_text(encoding="utf-8")
NAME = re.search(r'^name = "([^"]+)"', PYPROJECT, re.M)[1]  # type: ignore[index]
VERSION = re.search(r'^version = "([^"]+)"', PYPROJECT, re.M)[1]  # type: ignore[index]


def section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def test_the_readme_is_at_most_200_lines() -> None:
    assert len(README.splitlines()) <= 200


def test_install_names_the_systems_and_pep_668() -> None:
    install = section(README, "Install")
    for needed in ("Debian 12", "RHEL 9", "PEP 668", "pipx", "venv", "clone", NAME):
        assert needed in install, needed


def test_every_install_instruction_uses_the_distribution_name_or_a_path() -> None:
    """`pip install fwgen` would install an unrelated project: nothing says it but to warn."""
    assert NAME == "fwgen-firewall"
    texts = [REPO / "README.md", *(REPO / "docs").rglob("*.md"), *(REPO / "examples").rglob("*")]
    install = re.compile(r"pipx? install +(?:-\S+ +)*[\"']?([^\s\"'`]+)")
    for path in (p for p in texts if p.is_file() and p.suffix in (".md", ".yml", ".yaml")):
        text = path.read_text(encoding="utf-8")
        for match in install.finditer(text):
            what = match[1]
            around = text[max(0, match.start() - 40) : match.end() + 40]
            if what == "fwgen" or what.startswith("fwgen @"):
                assert re.search(r"\bnot\b|unrelated", around), f"{path}: {match[0]}"
                continue
            assert (
                what.startswith((NAME, ".", "/", "$", "-", "'.[", "ansible", "aerleon"))
                or "fwgen" not in what
            ), f"{path}: {match[0]}"


def test_the_version_is_the_changelogs_latest() -> None:
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    entries = re.findall(r"^## (\d+\.\d+\.\d+) — (\d{4}-\d{2}-\d{2})$", changelog, re.M)
    assert entries, "no dated entries"
    assert entries[0][0] == VERSION == fwgen.__version__
    assert all(v.startswith("0.") for v, _ in entries)
    versions = [tuple(int(n) for n in v.split(".")) for v, _ in entries]
    dates = [d for _, d in entries]
    assert versions == sorted(versions, reverse=True) and dates == sorted(dates, reverse=True)


def test_the_readme_links_to_pages_that_exist() -> None:
    for link in re.findall(r"\]\(((?:docs/)[^)#]+)", README):
        assert (REPO / link).is_file(), link
    assert (REPO / "CHANGELOG.md").is_file()


def test_ci_runs_the_readmes_test_command_and_builds_the_docs() -> None:
    command = "pip install -e '.[test]' && pytest"
    assert command in section(README, "Development")
    ci = (REPO / ".ci/run").read_text(encoding="utf-8")
    assert command in ci and "mkdocs build --strict" in ci


def test_docs_extra_installs_mkdocs() -> None:
    docs = PYPROJECT[PYPROJECT.index("\ndocs = [") :].split("]")[0]
    assert '"mkdocs>=' in docs and '"mkdocs-material>=' in docs
    assert Path(REPO / "mkdocs.yml").is_file()
