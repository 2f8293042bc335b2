"""The ufw script against a real ufw, in a namespace, over a private copy of /etc/ufw."""

from __future__ import annotations

from pathlib import Path

import pytest

from fwgen.render import render
from fwgen.resolve import resolve_profile
from fwgen.targets import RenderOptions
from tests.kernel.lab import UFW_WRITES, Lab
from tests.machine_guard import machine_state

pytestmark = pytest.mark.kernel


def script(profile: str, admins: str = "192.0.2.1", exclusive: bool = False) -> str:
    overrides = {"admins": [admins]} if profile != "workstation" else {}
    policy = resolve_profile(profile, overrides)
    return render(policy, "ufw", RenderOptions(flush_ruleset=exclusive))["fwgen-ufw.sh"]


def added(output: str) -> list[str]:
    return [line for line in output.split("--- added\n")[1].splitlines() if line.startswith("ufw ")]


@pytest.mark.parametrize("profile", ["webserver", "mailserver", "workstation"])
def test_applies_cleanly_twice_and_the_second_run_changes_nothing(lab: Lab, profile: str) -> None:
    first = lab.ufw(script(profile))
    second = lab.ufw(script(profile))
    assert "Rules updated" in first  # ufw was inactive: rules are written, then enabled
    for change in ("Rule added", "Rule deleted", "Rules updated", "Rule updated"):
        assert change not in second
    assert added(first) == added(second)
    status = lab.run(lab.server, "iptables", "-S", "INPUT")
    assert "-P INPUT DROP" in status
    assert "-P INPUT DROP" in lab.run(lab.server, "ip6tables", "-S", "INPUT")


def test_stale_fwgen_rules_go_and_rules_of_others_stay(lab: Lab) -> None:
    lab.ufw("ufw allow 9999/tcp comment 'added by hand'\n")
    lab.ufw(script("webserver", admins="192.0.2.1"))
    out = lab.ufw(script("webserver", admins="192.0.2.7"))
    rules = added(out)
    assert "ufw allow 9999/tcp comment 'added by hand'" in rules
    assert any("from 192.0.2.7 " in r for r in rules)
    assert not any("192.0.2.1 " in r for r in rules)


def test_exclusive_removes_rules_of_others(lab: Lab) -> None:
    lab.ufw("ufw allow 9999/tcp comment 'added by hand'\n")
    rules = added(lab.ufw(script("webserver", exclusive=True)))
    assert not any("9999" in r for r in rules)
    assert rules and all("comment 'fwgen: " in r for r in rules)


def test_ufw_writes_only_private_copies(lab: Lab) -> None:
    """ufw rewrites /etc/default/ufw and /etc/ufw/*, and locks /run/ufw.lock: in the tests
    each is a private copy, and the machine's own files stay as they were."""
    watched = ("/etc/default/ufw", "/etc/ufw/*")
    before = machine_state(watched, ())
    lab.ufw(
        "ufw default deny outgoing\nufw default allow routed\nufw logging medium\n"
        "ufw --force enable\n"
    )
    assert machine_state(watched, ()) == before
    assert lab.ufw_dir is not None
    private = {path: Path(lab.ufw_dir, name) for path, name in UFW_WRITES.items()}
    assert 'DEFAULT_OUTPUT_POLICY="DROP"' in private["/etc/default/ufw"].read_text()
    assert "ENABLED=yes" in (private["/etc/ufw"] / "ufw.conf").read_text()
    assert "LOGLEVEL=medium" in (private["/etc/ufw"] / "ufw.conf").read_text()
    assert (private["/run"] / "ufw.lock").exists()
