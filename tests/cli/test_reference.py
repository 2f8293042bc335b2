"""The documentation's generated parts match what generates them (the schemas, the
target registry, the command line, CHANGELOG.md): run `python -m fwgen.cli.reference`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from fwgen.cli import reference
from fwgen.cli.schema import shipped
from fwgen.targets import TARGETS

REPO = Path(__file__).resolve().parents[2]
EXPECTED = reference.expected(REPO / "docs")


@pytest.mark.parametrize("path", sorted(EXPECTED), ids=lambda p: p.relative_to(REPO).as_posix())
def test_generated_docs_are_current(path: Path) -> None:
    assert path.exists() and path.read_text(encoding="utf-8") == EXPECTED[path], (
        f"{path.relative_to(REPO)} is stale: run `python -m fwgen.cli.reference`"
    )


def test_every_key_of_every_schema_has_a_row() -> None:
    """Every property of every object in the schemas is a row of its reference page."""
    for kind in ("profile", "manifest", "ports"):
        page = (REPO / "docs/reference" / f"{kind}.md").read_text(encoding="utf-8")

        def keys(node: object) -> set[str]:
            found: set[str] = set()
            if isinstance(node, dict):
                found |= set(node.get("properties", {}))
                for value in node.values():
                    found |= keys(value)
            elif isinstance(node, list):
                for value in node:
                    found |= keys(value)
            return found

        every = keys(json.loads(shipped(kind)))
        assert every and all(f"\n| `{key}` | " in page for key in every), kind


def test_every_target_has_its_page_with_its_capabilities() -> None:
    for name, spec in TARGETS.items():
        page = (REPO / "docs/targets" / f"{name}.md").read_text(encoding="utf-8")
        assert "<!-- generated: capabilities -->" in page, name
        for feature in spec.capabilities:
            assert f"\n| {feature} | " in page, (name, feature)


def test_a_changed_capability_makes_the_page_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    page = REPO / "docs/targets/nftables.md"
    spec = TARGETS["nftables"]
    changed = replace(spec, capabilities={**spec.capabilities, "logging": "no"})
    monkeypatch.setitem(TARGETS, "nftables", changed)
    assert reference.regenerated(page, page.read_text(encoding="utf-8")) != EXPECTED[page]
