"""Templates load from their precompiled modules, and only while those match the source."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest

from fwgen.read.paths import templates_dir
from fwgen.targets import render

STALE = "run `python -m fwgen.targets.render` after editing templates/"


def test_compiled_templates_are_in_sync_with_the_templates() -> None:
    names = render.environment().list_templates()
    assert (
        len(names) == 16
    )  # the rulesets, the blocklists alone (--sets-only), the shadows, firewalld
    for name in names:
        compiled = render.compiled_path(name).read_text(encoding="utf-8")
        fresh = render.compile_template(name)
        digest = re.compile(r'^SOURCE_SHA256 = "([0-9a-f]{64})"$', re.M)
        assert digest.findall(compiled) == digest.findall(fresh), STALE
        if f'JINJA_VERSION = "{jinja2.__version__}"' in compiled:
            assert compiled == fresh, STALE
    generated = {p for p in render.COMPILED.glob("*.py") if p.name != "__init__.py"}
    assert generated == {render.compiled_path(name) for name in names}


def test_shipped_templates_load_from_their_compiled_modules() -> None:
    template = render.environment().get_template("nftables/ruleset.nft.j2")
    assert template.filename == str(render.compiled_path("nftables/ruleset.nft.j2"))


def loader_env(folder: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=render.TemplateLoader(str(folder)), undefined=jinja2.StrictUndefined
    )


def test_a_template_that_differs_from_its_compiled_module_is_compiled_from_source(
    tmp_path: Path,
) -> None:
    (tmp_path / "nftables").mkdir()
    (tmp_path / "nftables" / "ruleset.nft.j2").write_text("edited {{ x }}\n")
    template = loader_env(tmp_path).get_template("nftables/ruleset.nft.j2")
    assert template.render(x=1) == "edited 1"
    assert template.filename == str(tmp_path / "nftables" / "ruleset.nft.j2")


def test_a_module_compiled_by_another_jinja_version_is_not_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jinja2, "__version__", "0.0.1")
    env = loader_env(templates_dir())
    template = env.get_template("nftables/ruleset.nft.j2")
    assert template.filename == str(templates_dir() / "nftables" / "ruleset.nft.j2")


def test_a_module_that_does_not_import_is_not_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(render, "COMPILED", tmp_path)
    render.compiled_path("nftables/ruleset.nft.j2").write_text(
        "from jinja2.runtime import gone_in_this_version\n"
    )
    template = loader_env(templates_dir()).get_template("nftables/ruleset.nft.j2")
    assert template.filename == str(templates_dir() / "nftables" / "ruleset.nft.j2")


def test_a_template_without_a_compiled_module_is_compiled_from_source(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "extra.j2").write_text("{{ x }} extra\n")
    assert loader_env(tmp_path).get_template("site/extra.j2").render(x=2) == "2 extra"
