from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.policy.resolve import resolve_profile
from fwgen.targets import RenderOptions
from fwgen.targets.render import render, render_with_warnings
from tests.conftest import BUILTIN, EVERY_FEATURE
from tests.targets.pwsh import PARSER, read_script
from tests.tricky import TRICKY


def parse_errors(script: str) -> list[str]:
    tree = PARSER.parse(script.encode())
    errors: list[str] = []

    def walk(node: object) -> None:
        if node.type == "ERROR" or node.is_missing:  # type: ignore[attr-defined]
            errors.append(str(node))
        for child in node.children:  # type: ignore[attr-defined]
            walk(child)

    walk(tree.root_node)
    return errors


def commands(script: str) -> list[str]:
    return [line for line in script.splitlines() if line and not line.lstrip().startswith("#")]


def rule_names(script: str) -> list[str]:
    """The -Name of each New-NetFirewallRule, as Windows compares them: ignoring case."""
    return [name.casefold() for name in read_script(script).names()]


@pytest.mark.parametrize("profile", BUILTIN)
def test_builtin_profile_snapshot(profile: str, snapshot: SnapshotAssertion) -> None:
    files = render(resolve_profile(profile), "windows")
    assert list(files) == ["fwgen.ps1"]
    assert files["fwgen.ps1"] == snapshot


@pytest.mark.parametrize("profile", [*BUILTIN, str(EVERY_FEATURE)])
def test_script_parses_clean_and_has_the_safety_lines(profile: str) -> None:
    script = render(resolve_profile(profile), "windows")["fwgen.ps1"]
    assert parse_errors(script) == []
    assert script.startswith("#Requires -RunAsAdministrator\n")
    shape = read_script(script)  # the order of work: see tests/targets/pwsh.py
    assert shape.adds
    for add in shape.adds:
        assert add.params["Group"] == ["fwgen"]
        assert add.params["Action"] == ["Allow"] and add.params["Profile"] == ["Any"]


def test_every_feature_rules() -> None:
    script = render(resolve_profile(str(EVERY_FEATURE)), "windows")["fwgen.ps1"]
    assert "-DefaultOutboundAction Block" in script and "-LogBlocked True" in script
    assert (
        "-Direction Inbound -Protocol TCP -LocalPort '22' -RemoteAddress '192.0.2.0/24','2001:db8:1::/48'"
        in script
    )
    assert (
        "-Direction Outbound -Protocol UDP -RemotePort '53' -RemoteAddress '192.0.2.53','2001:db8::53'"
        in script
    )
    assert "-LocalAddress '224.0.0.251','ff02::fb'" in script
    assert "-LocalPort '1000-1001','1003'," in script
    assert "# matches nothing: network 'empty'" in script


def test_rate_limit_warns_on_stderr_and_in_the_script_and_strict_fails() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["render", "webserver", "-t", "windows"])
    assert result.exit_code == 0
    message = "ssh (profiles/webserver.yaml:14): Windows Firewall cannot rate-limit; the 10/minute limit is not applied"
    assert f"warning: {message}" in result.stderr
    assert f"# APPROXIMATED: {message}" in result.stdout
    strict = runner.invoke(app, ["render", "webserver", "-t", "windows", "--strict"])
    assert strict.exit_code == 2
    assert "--strict" in strict.stderr and strict.stdout == ""


def test_hostile_text_stays_inside_single_quotes(write_profile: Callable[..., Path]) -> None:
    path = write_profile(
        """\
        description: "x'); Remove-NetFirewallRule; ('"
        inbound:
          - {port: 80/tcp, name: web, comment: "a' -Action Block; Remove-NetFirewallRule -All; '\u2019"}
        """
    )
    script = render(resolve_profile(str(path)), "windows")["fwgen.ps1"]
    assert parse_errors(script) == []
    rule = next(line for line in commands(script) if "New-NetFirewallRule" in line)
    assert "-Description 'a'' -Action Block; Remove-NetFirewallRule -All; ''?; from " in rule
    tree = PARSER.parse(script.encode())
    names = [n for n in _command_names(tree.root_node)]
    assert names == [
        "Get-NetFirewallRule",
        "ForEach-Object",
        "New-NetFirewallRule",
        "Out-Null",
        "Set-NetFirewallProfile",
        "Get-NetFirewallRule",
        "Where-Object",
        "Remove-NetFirewallRule",
        "Get-NetFirewallRule",
        "Where-Object",
        "Remove-NetFirewallRule",
    ]
    (add,) = read_script(script).adds
    assert add.params["Description"] == [
        f"a' -Action Block; Remove-NetFirewallRule -All; '?; from {path.name}:3"
    ]


def _nodes(node: object, kind: str) -> list[str]:
    out = []
    if node.type == kind:  # type: ignore[attr-defined]
        out.append(node.text.decode())  # type: ignore[attr-defined]
    for child in node.children:  # type: ignore[attr-defined]
        out.extend(_nodes(child, kind))
    return out


def _command_names(node: object) -> list[str]:
    return _nodes(node, "command_name")


def test_rules_that_differ_only_in_log_or_limit_have_names_of_their_own(
    write_profile: Callable[..., Path],
) -> None:
    """A second New-NetFirewallRule of a taken -Name fails, and 'Stop' ends the script there.
    The last two differ only in what Windows does not see (a service, a literal port)
    and in the case of their names, which Windows ignores."""
    path = write_profile(
        """\
        description: twins
        inbound:
          - {port: 8080/tcp, name: web}
          - {port: 8080/tcp, name: web, log: true}
          - {port: 8080/tcp, name: web, limit: 5/second}
          - {port: 8080/tcp, name: web, limit: 6/second}
          - {port: 80/tcp, name: Web}
          - {service: http, name: web}
        """
    )
    policy = resolve_profile(str(path))
    assert len(policy.rules) == 6
    script = render(policy, "windows")["fwgen.ps1"]
    names = rule_names(script)
    assert len(names) == 6 and len(set(names)) == 6
    assert parse_errors(script) == []


@pytest.mark.parametrize("profile", [*BUILTIN, EVERY_FEATURE, *TRICKY])
def test_every_rule_name_is_unique(profile: str, write_profile: Callable[..., Path]) -> None:
    if profile in TRICKY:
        profile = str(write_profile(json.dumps(TRICKY[profile]())))
    policy = resolve_profile(profile)
    names = rule_names(render(policy, "windows")["fwgen.ps1"])
    assert len(names) >= sum(1 for r in policy.rules if r.families)
    assert len(set(names)) == len(names)


def test_a_rule_keeps_its_name_when_others_come_and_go(write_profile: Callable[..., Path]) -> None:
    rules = ["{port: 8080/tcp, name: web}", "{port: 8080/tcp, name: web, log: true}"]
    before = write_profile(f"description: d\ninbound: [{rules[0]}]\n", "before.yaml")
    after = write_profile(f"description: d\ninbound: [{rules[1]}, {rules[0]}]\n", "after.yaml")
    old = rule_names(render(resolve_profile(str(before)), "windows")["fwgen.ps1"])
    new = rule_names(render(resolve_profile(str(after)), "windows")["fwgen.ps1"])
    # the generation changes with the rules; the rest of a rule's name does not
    assert len(old) == 1 and len(new) == 2 and old[0][19:] in [n[19:] for n in new]
    assert old[0][:19] != new[0][:19]


# ------------------------------------------------------------------ exact where Windows is exact

PING_OFF = """\
description: base without ping
extends: base
options: {ping: false}
"""


def test_base_without_ping_renders_strict_with_no_warning(
    write_profile: Callable[..., Path],
) -> None:
    """Windows' own stack discards neighbour discovery whose hop limit is not 255
    (RFC 4861), so the ND rules are exact: nothing to warn about."""
    path = write_profile(PING_OFF)
    result = CliRunner().invoke(app, ["render", str(path), "-t", "windows", "--strict"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert "APPROXIMATED" not in result.stdout
    assert "-IcmpType '1','2','3','4','134','135','136'" in result.stdout


def test_what_windows_cannot_express_is_still_warned_once() -> None:
    _, warnings = render_with_warnings(resolve_profile(str(EVERY_FEATURE)), "windows")
    assert not any("hop limit" in w for w in warnings)
    assert len(warnings) == len(set(warnings))
    limits = [w for w in warnings if "cannot rate-limit" in w]
    assert [w.split(":")[0] for w in limits] == [
        "ping (profiles/base.yaml",
        "ssh (tests/data/good/every-feature.yaml",
        "ipsec (tests/data/good/every-feature.yaml",
    ]
    assert any("logs per profile, not per rule" in w for w in warnings)


def _descriptions(script: str) -> list[str]:
    return [
        m[1].replace("''", "'") for m in re.finditer(r" -Description '((?:[^']|'')*)' ", script)
    ]


def test_no_description_claims_a_rate_limit_windows_does_not_apply() -> None:
    script = render(resolve_profile(str(EVERY_FEATURE)), "windows")["fwgen.ps1"]
    descriptions = _descriptions(script)
    assert descriptions
    assert not [d for d in descriptions if "rate limited" in d.replace("not rate limited", "")]
    ping = [d for d in descriptions if d.startswith("ping")]
    assert (
        ping
        == [
            "ping: not rate limited (Windows Firewall cannot apply the 5/second limit); from profiles/base.yaml:38"
        ]
        * 2
    )


@pytest.mark.parametrize("flush", [False, True])
def test_the_header_tells_the_truth_about_exclusive_mode(flush: bool) -> None:
    policy = resolve_profile("webserver")
    script = render(policy, "windows", RenderOptions(flush_ruleset=flush))["fwgen.ps1"]
    header = script.split("$ErrorActionPreference")[0]
    if flush:
        assert "# Exclusive mode is ON (rendered with --flush-ruleset):" in header
        assert "to turn it on" not in header
    else:
        assert "# Exclusive mode is off (render with --flush-ruleset to turn it on):" in header
        assert " ON" not in header


# ------------------------------------------------------------------ generations


def generation(script: str) -> str:
    m = re.search(r"^\$ThisGeneration = 'fwgen-([0-9a-f]{12})-\*'$", script, re.M)
    assert m, "no generation"
    return m[1]


def test_the_generation_is_a_hash_of_the_rules_alone(write_profile: Callable[..., Path]) -> None:
    def script(text: str) -> str:
        return render(resolve_profile(str(write_profile(text))), "windows")["fwgen.ps1"]

    one = script("description: one\ninbound: [{port: 80/tcp, name: web}]\n")
    two = script("description: two\ninbound: [{port: 80/tcp, name: web}]\n")
    three = script("description: one\ninbound: [{port: 81/tcp, name: web}]\n")
    # another description of the same rules: another header, the same generation
    assert one != two and generation(one) == generation(two)
    assert generation(three) != generation(one)
    assert script("description: one\ninbound: [{port: 80/tcp, name: web}]\n") == one
    assert all(n.startswith(f"fwgen-{generation(three)}-") for n in rule_names(three))


KNOWN_VARIABLES = {"$ErrorActionPreference", "$ThisGeneration", "$Present", "$_", "$true"}
KNOWN_COMMANDS = {
    "Get-NetFirewallRule",
    "ForEach-Object",
    "New-NetFirewallRule",
    "Out-Null",
    "Set-NetFirewallProfile",
    "Where-Object",
    "Remove-NetFirewallRule",
    "Disable-NetFirewallRule",
}


@pytest.mark.parametrize("profile", [*TRICKY, "hostile"])
def test_hostile_values_stay_single_quoted_data(
    profile: str, write_profile: Callable[..., Path]
) -> None:
    """Whatever a profile holds, the script has only fwgen's own commands and variables,
    every string is a single-quoted literal, and the generation is hex."""
    if profile == "hostile":
        path = write_profile(
            """\
            description: "$(Remove-NetFirewallRule -All)"
            inbound:
              - {port: 80/tcp, name: a.b+c, comment: "') { Remove-NetFirewallRule }; $Present = @{}; ('\u2019"}
            """,
            "x'); $Present = @{}; #.yaml",
        )
    else:
        path = write_profile(json.dumps(TRICKY[profile]()))
    for flush in (False, True):
        script = render(resolve_profile(str(path)), "windows", RenderOptions(flush_ruleset=flush))[
            "fwgen.ps1"
        ]
        tree = PARSER.parse(script.encode())
        assert not tree.root_node.has_error
        assert set(_nodes(tree.root_node, "command_name")) <= KNOWN_COMMANDS
        assert set(_nodes(tree.root_node, "variable")) <= KNOWN_VARIABLES
        assert _nodes(tree.root_node, "expandable_string_literal") == []
        assert all(s.startswith("'") for s in _nodes(tree.root_node, "string_literal"))
        assert re.fullmatch(r"[0-9a-f]{12}", generation(script))
