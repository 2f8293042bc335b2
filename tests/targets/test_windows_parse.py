"""Windows cannot be loaded here, so the generated script is parsed back into
rules and compared with the Policy: nothing added, lost, widened or narrowed."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from fwgen.policy.resolve import resolve_profile
from fwgen.targets import RenderOptions
from fwgen.targets.render import render
from tests.conftest import BUILTIN, EVERY_FEATURE
from tests.roundtrip import canonical, expected, parse_windows
from tests.targets.pwsh import (
    ADDED_BY_THIS_RUN,
    EXCLUSIVE,
    OTHER_GENERATIONS,
    Firewall,
    Rule,
    ScriptStopped,
    read_script,
    run,
)


@pytest.mark.parametrize("profile", [*BUILTIN, EVERY_FEATURE])
def test_script_means_exactly_the_policy(profile: str) -> None:
    policy = resolve_profile(profile)
    parsed = parse_windows(render(policy, "windows")["fwgen.ps1"])
    assert parsed  # a profile with no rules would make this test vacuous
    assert canonical(parsed) == canonical(expected(policy))


def test_the_parser_notices_a_widened_rule() -> None:
    policy = resolve_profile("webserver")
    script = render(policy, "windows")["fwgen.ps1"]
    widened = script.replace(" -RemoteAddress '198.51.100.0/24','2001:db8:100::/48'", "")
    assert widened != script
    assert canonical(parse_windows(widened)) != canonical(expected(policy))


# ---------------------------------------------------------------- the order of work, played on a model


def script_of(profile: str, flush: bool = False, **sets: list[str]) -> str:
    policy = resolve_profile(profile, overrides=sets or None)
    return render(policy, "windows", RenderOptions(flush_ruleset=flush))["fwgen.ps1"]


FOREIGN = {
    "CoreNet-DHCP-In": Rule(group="@FirewallAPI.dll,-25000"),  # DisplayGroup is localised
    "RemoteDesktop-UserMode-In-TCP": Rule(group="@FirewallAPI.dll,-28752"),
    "vendor-agent": Rule(group=""),
}


def host() -> Firewall:
    return Firewall(rules={n: replace(r) for n, r in FOREIGN.items()})


@pytest.mark.parametrize("flush", [False, True])
@pytest.mark.parametrize("profile", [*BUILTIN, EVERY_FEATURE])
def test_new_rules_come_first_then_the_default_block_then_removal(
    profile: str, flush: bool
) -> None:
    script = read_script(script_of(profile, flush))
    names = script.names()
    assert names and len({n.casefold() for n in names}) == len(names)
    assert all(re.fullmatch(script.generation[:-1] + r"[!-~]+", n) for n in names)
    assert script.profile.params["DefaultInboundAction"] == ["Block"]
    assert script.profile.params["All"] is None and script.profile.params["Enabled"] == ["True"]
    assert [c.name for c in script.rollback] == [
        "Get-NetFirewallRule",
        "Where-Object",
        "Remove-NetFirewallRule",
    ]
    assert script.rollback[1].block == ADDED_BY_THIS_RUN
    assert script.cleanup[1].block == OTHER_GENERATIONS
    assert (script.exclusive is not None) == flush


def test_first_run_adds_every_rule_and_a_second_run_changes_nothing() -> None:
    script = read_script(script_of("webserver"))
    fw = host()
    run(script, fw)
    assert fw.fwgen() == set(script.names())
    assert fw.log == [*(f"add {n}" for n in script.names()), "profile"]
    fw.log.clear()
    run(script, fw)
    assert fw.log == ["profile"]  # nothing added, nothing removed
    assert fw.fwgen() == set(script.names())


def test_a_new_generation_is_complete_before_the_old_one_goes() -> None:
    old = read_script(script_of("webserver"))
    new = read_script(script_of("webserver", admins=["192.0.2.0/24"]))
    assert old.generation != new.generation
    fw = host()
    run(old, fw)
    fw.log.clear()
    run(new, fw)
    assert fw.fwgen() == set(new.names())
    added = [f"add {n}" for n in new.names()]
    removed = sorted(f"remove {n}" for n in old.names())
    assert fw.log[: len(added) + 1] == [*added, "profile"]
    assert sorted(fw.log[len(added) + 1 :]) == removed
    assert {n: r for n, r in fw.rules.items() if r.group != "fwgen"} == FOREIGN


@pytest.mark.parametrize("where", ["first", "middle", "last", "profile"])
def test_a_failure_while_adding_keeps_the_old_generation(where: str) -> None:
    old = read_script(script_of("webserver"))
    new = read_script(script_of("webserver", admins=["192.0.2.0/24"]))
    fw = host()
    run(old, fw)
    before = {n: replace(r) for n, r in fw.rules.items()}
    profile = fw.profile
    fw.log.clear()
    if where == "profile":
        fw.fail_profile = True
    else:
        fw.fail_add = {"first": 0, "middle": len(new.adds) // 2, "last": len(new.adds) - 1}[where]
    with pytest.raises(ScriptStopped):
        run(new, fw)
    assert fw.rules == before and fw.profile is profile
    assert "profile" not in fw.log


def test_a_failed_first_run_never_sets_the_default_block() -> None:
    script = read_script(script_of("webserver"))
    fw = host()
    fw.fail_add = 2
    with pytest.raises(ScriptStopped):
        run(script, fw)
    assert fw.profile is None and fw.fwgen() == set()


def test_a_rerun_after_a_failure_completes_the_generation() -> None:
    old = read_script(script_of("webserver"))
    new = read_script(script_of("webserver", admins=["192.0.2.0/24"]))
    fw = host()
    run(old, fw)
    fw.fail_add = 3
    with pytest.raises(ScriptStopped):
        run(new, fw)
    run(new, fw)
    assert fw.fwgen() == set(new.names())


def test_exclusive_mode_spares_core_networking_by_its_group_id_in_any_language() -> None:
    text = script_of("webserver", flush=True)
    script = read_script(text)
    assert script.exclusive is not None
    assert EXCLUSIVE.fullmatch(script.exclusive[1].block)[2] == "@FirewallAPI.dll,-25000"  # type: ignore[index]
    assert "DisplayGroup" not in text and "Core Networking'" not in text
    fw = host()
    run(script, fw)
    enabled = {n for n, r in fw.rules.items() if r.enabled}
    assert enabled == {"CoreNet-DHCP-In", *script.names()}


def test_the_model_notices_a_script_that_removes_first() -> None:
    """The old order (remove the group, then add) does not read as a valid script."""
    text = script_of("webserver")
    read_script(text)
    removes_first = text.replace(
        "\ntry {\n", "\nGet-NetFirewallRule -Group 'fwgen' | Remove-NetFirewallRule\ntry {\n"
    )
    assert removes_first != text
    with pytest.raises(AssertionError, match="expected try"):
        read_script(removes_first)
