"""The capability contract: every target renders the same Policy; what it cannot
express exactly is a warning on stderr and a comment in the output, or an error
with --strict. Nothing is dropped silently."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from fwgen.errors import RenderError
from fwgen.policy.resolve import resolve_profile
from fwgen.targets import TARGETS, RenderOptions
from fwgen.targets.render import render_with_warnings
from tests.conftest import BUILTIN, EVERY_FEATURE, placeholder_sets

EXPECTS_WARNINGS = {
    "nftables": True,
    "iptables": False,
    "ufw": False,
    "windows": True,
    "firewalld": True,
}


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

    from fwgen.cli.app import app

    result = CliRunner().invoke(app, ["targets"])
    assert result.exit_code == 0
    for name, spec in TARGETS.items():
        assert f"{name}: " in result.stdout
        for feature in spec.capabilities:
            assert feature in result.stdout
    assert "rate limits" in result.stdout and "approximated" in result.stdout


def test_base_with_ping_off_is_exact_on_every_linux_target(tmp_path: Path) -> None:
    """`--strict` passes: ufw says what its command line cannot in before.rules."""
    from typer.testing import CliRunner

    from fwgen.cli.app import app

    profile = tmp_path / "quiet.yaml"
    profile.write_text("description: quiet\nextends: base\noptions: {ping: false}\n")
    for target in ("nftables", "iptables", "ufw"):
        result = CliRunner().invoke(app, ["render", str(profile), "-t", target, "--strict"])
        assert (result.exit_code, result.stderr) == (0, ""), target


@pytest.mark.parametrize("forward", ["drop", "accept"])
def test_drop_logs_are_spelled_alike_and_cover_forward(tmp_path: Path, forward: str) -> None:
    """One log prefix per chain on nftables and iptables; forwarded packets the policy
    drops are logged too (rate limited), and with forward: accept nothing is."""
    profile = tmp_path / "logged.yaml"
    profile.write_text(
        "description: logged\nextends: base\noutbound: [{service: https}]\n"
        f"options: {{log_drops: true, forward: {forward}}}\n"
    )
    policy = resolve_profile(str(profile))
    chains = ["input", "output"] + (["forward"] if forward == "drop" else [])
    want = {f"fwgen {chain} drop: " for chain in chains}
    nft = render_with_warnings(policy, "nftables")[0]["fwgen.nft"]
    assert set(re.findall(r'log prefix "(fwgen \w+ drop: )"', nft)) == want
    files = render_with_warnings(policy, "iptables")[0]
    for name in ("rules.v4", "rules.v6"):
        assert set(re.findall(r'-j LOG --log-prefix "(fwgen \w+ drop: )"', files[name])) == want
        assert all("-m limit" in line for line in files[name].splitlines() if " drop: " in line)


@pytest.mark.parametrize("profile", BUILTIN)
def test_builtin_profiles_render_strict_on_linux_targets(profile: str) -> None:
    """Exact on nftables, iptables and ufw; iptables cannot leave forwarding alone
    (iptables-restore owns the filter table), which only kubernetes-node asks for."""
    from typer.testing import CliRunner

    from fwgen.cli.app import app

    sets = placeholder_sets(profile, "10.1.0.0/16")
    for target in ("nftables", "iptables", "ufw"):
        result = CliRunner().invoke(app, ["render", profile, "-t", target, "--strict", *sets])
        if (profile, target) == ("kubernetes-node", "iptables"):
            assert result.exit_code == 2 and "forward: ignore cannot be expressed" in result.stderr
        else:
            assert (result.exit_code, result.stderr) == (0, ""), target
