"""The package's layout holds by construction: each pipeline stage imports only the
stages below it (the import-linter contracts in pyproject.toml), and no module outgrows
a reader."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "fwgen"
PYPROJECT = PACKAGE.parents[1] / "pyproject.toml"
LINT_IMPORTS = "from importlinter.cli import lint_imports_command; lint_imports_command()"
MAX_LINES = 450  # the ~400-line guide, with room for a docstring


def test_every_stage_imports_only_the_stages_below_it() -> None:
    """`lint-imports` on the contracts: it names each import that breaks one."""
    run = subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--config", str(PYPROJECT), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=PYPROJECT.parent,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Contracts: 2 kept, 0 broken." in run.stdout


@pytest.mark.parametrize(
    "path",
    sorted(p for p in PACKAGE.rglob("*.py") if "compiled" not in p.parts),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_modules_stay_small(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{path.name}: {lines} lines; split it at a seam"
