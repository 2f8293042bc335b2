"""The shadow's text: pinned for two profiles on both targets, checked by nft, and
never able to decide a verdict (no accept, drop or reject anywhere in it)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.errors import FwgenError
from fwgen.policy.resolve import resolve_profile
from fwgen.targets.shadow import ShadowOptions, render_shadow
from tests.conftest import BUILTIN, EVERY_FEATURE, nft_check


@pytest.mark.parametrize("target", ["nftables", "iptables"])
@pytest.mark.parametrize("profile", ["webserver", EVERY_FEATURE])
def test_shadow_snapshot(profile: str, target: str, snapshot: SnapshotAssertion) -> None:
    assert render_shadow(resolve_profile(profile), target) == snapshot


@pytest.mark.parametrize("profile", [*BUILTIN, EVERY_FEATURE])
def test_shadow_decides_nothing_and_loads(profile: str) -> None:
    policy = resolve_profile(profile)
    nft = render_shadow(policy, "nftables")["fwgen-shadow.nft"]
    result = nft_check(nft)
    assert result.returncode == 0, result.stderr
    rules = [line for line in nft.splitlines() if not line.lstrip().startswith("#")]
    assert not [
        r
        for r in rules
        if re.search(r"\b(accept|drop|reject|queue|goto|jump)\b", r) and "policy accept" not in r
    ]
    for name, text in render_shadow(policy, "iptables").items():
        lines = [line for line in text.splitlines() if line.startswith(("-A", "-I"))]
        verdicts = {re.sub(r".* -j (\S+).*", r"\1", line) for line in lines}
        assert verdicts <= {"RETURN", "SET", "FWGEN-SHADOW-IN", "FWGEN-SHADOW-OUT"}, name


def test_options_are_checked() -> None:
    with pytest.raises(FwgenError, match="--prefix-v4 40"):
        ShadowOptions(prefix_v4=40)
    with pytest.raises(FwgenError, match="--size 1"):
        ShadowOptions(size=1)


def test_windows_has_no_shadow() -> None:
    result = CliRunner().invoke(app, ["shadow", "start", "webserver", "-t", "windows"])
    assert result.exit_code == 2 and "not applicable" in result.output


def test_report_from_a_hostile_file_is_one_line(tmp_path: object) -> None:
    from pathlib import Path

    saved = Path(str(tmp_path)) / "shadow.json"
    saved.write_text('{"nftables": [{"table": {"name": "fwgen_shadow", "handle": 1}}]}')
    result = CliRunner().invoke(app, ["shadow", "report", "webserver", "--input", str(saved)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "not a shadow fwgen made" in result.output
    saved.write_text("\x1b[2J")
    result = CliRunner().invoke(app, ["shadow", "report", "webserver", "--input", str(saved)])
    assert result.exit_code == 2 and result.output.count("\n") == 1


@pytest.mark.parametrize(
    "name",
    [
        'evil"\nflush ruleset\n#.yaml',
        'evil" -j ACCEPT\n*nat\n-A PREROUTING -j ACCEPT\nCOMMIT\n#.yaml',
        "evil\u2028x.yaml",
    ],
)
@pytest.mark.parametrize("target", ["nftables", "iptables"])
def test_hostile_profile_names_reach_no_shadow_raw(name: str, target: str, tmp_path: Any) -> None:
    from pathlib import Path

    from fwgen.read.yamlsource import first_unsafe

    profile = Path(str(tmp_path)) / name
    profile.write_text("description: hostile\nextends: base\ninbound: [{service: http}]\n")
    result = CliRunner().invoke(app, ["shadow", "start", str(profile), "-t", target, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert first_unsafe(result.stdout.replace("\n", "")) is None
    lines = result.stdout.splitlines()
    assert not [
        line for line in lines if line.startswith(("flush ruleset", "*nat", "-A PREROUTING"))
    ]
    if target == "nftables":
        check = nft_check(result.stdout)
        assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("target", ["nftables", "iptables"])
def test_a_profile_with_denies_is_refused_not_shadowed_as_if_open(target: str) -> None:
    """The shadow would count a denied source as admitted; until it reproduces denies it
    refuses them, naming the deny's line."""
    result = CliRunner().invoke(
        app, ["shadow", "start", "tests/data/good/denies.yaml", "-t", target, "--dry-run"]
    )
    assert result.exit_code == 2, result.output
    assert "denies.yaml:" in result.output and "deny and reject" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_connection_cap_is_not_reproduced_in_the_shadow() -> None:
    """mailserver caps SMTP: the shadow's SMTP line admits (returns), it never rejects."""
    text = render_shadow(resolve_profile("mailserver"), "iptables")
    smtp = [line for f in text.values() for line in f.splitlines() if "--dport 25 " in line]
    assert smtp and all(line.endswith("-j RETURN") for line in smtp), smtp
    assert "connlimit" not in "".join(text.values())
