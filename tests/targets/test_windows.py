from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion
from typer.testing import CliRunner

from fwgen.cli import app
from fwgen.render import render
from fwgen.resolve import resolve_profile
from tests.conftest import BUILTIN, EVERY_FEATURE
from tests.tricky import TRICKY

ts = pytest.importorskip("tree_sitter")
tsp = pytest.importorskip("tree_sitter_powershell")
PARSER = ts.Parser(ts.Language(tsp.language()))


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
    return [line for line in script.splitlines() if line and not line.startswith("#")]


def rule_names(script: str) -> list[str]:
    """The -Name of each New-NetFirewallRule, as Windows compares them: ignoring case."""
    return [
        re.match(r"New-NetFirewallRule -Name '([^']*)' ", line)[1].casefold()  # type: ignore[index]
        for line in commands(script)
        if line.startswith("New-NetFirewallRule ")
    ]


@pytest.mark.parametrize("profile", BUILTIN)
def test_builtin_profile_snapshot(profile: str, snapshot: SnapshotAssertion) -> None:
    files = render(resolve_profile(profile), "windows")
    assert list(files) == ["fwgen.ps1"]
    assert files["fwgen.ps1"] == snapshot


@pytest.mark.parametrize("profile", [*BUILTIN, str(EVERY_FEATURE)])
def test_script_parses_clean_and_has_the_safety_lines(profile: str) -> None:
    script = render(resolve_profile(profile), "windows")["fwgen.ps1"]
    assert parse_errors(script) == []
    lines = commands(script)
    assert script.startswith("#Requires -RunAsAdministrator\n")
    assert lines[0] == "$ErrorActionPreference = 'Stop'"
    assert lines[1].startswith(
        "Set-NetFirewallProfile -All -Enabled True -DefaultInboundAction Block "
    )
    assert (
        lines[2]
        == "Get-NetFirewallRule -Group 'fwgen' -ErrorAction SilentlyContinue | Remove-NetFirewallRule"
    )
    assert all(re.match(r"^New-NetFirewallRule -Name 'fwgen-", line) for line in lines[3:])
    assert all(
        " -Group 'fwgen' " in line and line.endswith("-Action Allow -Profile Any | Out-Null")
        for line in lines[3:]
    )


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
    rule = next(line for line in commands(script) if line.startswith("New-NetFirewallRule"))
    assert "-Description 'a'' -Action Block; Remove-NetFirewallRule -All; ''?; from " in rule
    tree = PARSER.parse(script.encode())
    names = [n for n in _command_names(tree.root_node)]
    assert names == [
        "Set-NetFirewallProfile",
        "Get-NetFirewallRule",
        "Remove-NetFirewallRule",
        "New-NetFirewallRule",
        "Out-Null",
    ]


def _command_names(node: object) -> list[str]:
    out = []
    if node.type == "command_name":  # type: ignore[attr-defined]
        out.append(node.text.decode())  # type: ignore[attr-defined]
    for child in node.children:  # type: ignore[attr-defined]
        out.extend(_command_names(child))
    return out


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
    assert len(old) == 1 and len(new) == 2 and old[0] in new
