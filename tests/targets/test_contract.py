"""The capability contract: every target renders the same Policy; what it cannot
express exactly is a warning on stderr and a comment in the output, or an error
with --strict. Nothing is dropped silently."""

from __future__ import annotations

import pytest
from syrupy.assertion import SnapshotAssertion

from fwgen.errors import RenderError
from fwgen.render import render_with_warnings
from fwgen.resolve import resolve_profile
from fwgen.targets import TARGETS, RenderOptions
from tests.conftest import EVERY_FEATURE

EXPECTS_WARNINGS = {"nftables": False, "iptables": False, "ufw": True, "windows": True}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_feature_contract(target: str, snapshot: SnapshotAssertion) -> None:
    policy = resolve_profile(str(EVERY_FEATURE))
    files, warnings = render_with_warnings(policy, target)
    assert bool(warnings) == EXPECTS_WARNINGS[target]
    text = "\n".join(files.values())
    for warning in warnings:
        assert f"APPROXIMATED: {warning}" in text
    for rule in policy.rules:
        assert f"{rule.name} ({rule.origin})" in text, f"{target} lost {rule.name}"
    assert warnings == snapshot
    if warnings:
        with pytest.raises(RenderError, match="--strict"):
            render_with_warnings(policy, target, RenderOptions(strict=True))


def test_targets_command_lists_the_matrix() -> None:
    from typer.testing import CliRunner

    from fwgen.cli import app

    result = CliRunner().invoke(app, ["targets"])
    assert result.exit_code == 0
    for name, spec in TARGETS.items():
        assert f"{name}: " in result.stdout
        for feature in spec.capabilities:
            assert feature in result.stdout
    assert "rate limits" in result.stdout and "approximated" in result.stdout
