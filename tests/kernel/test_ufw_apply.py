"""The ufw script against a real ufw, in a namespace, over a private copy of /etc/ufw."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fwgen.lab.netns import LabError
from fwgen.policy.resolve import resolve_profile
from fwgen.targets import RenderOptions
from fwgen.targets.render import render
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


def test_a_run_that_changes_nothing_never_stops_ufw(lab: Lab) -> None:
    """`ufw default` on an active ufw reloads it: ufw stops (every port open, every chain
    of ufw's gone) and starts again. A run that changes nothing sets no default, so a rule
    put into one of ufw's chains by hand is still there after it; a default changed by
    hand is set back."""
    lab.ufw(script("webserver"))  # ufw was inactive: now active
    marker = ["-m", "comment", "--comment", "not reloaded", "-j", "RETURN"]
    chains = {"iptables": "ufw-user-input", "ip6tables": "ufw6-user-input"}
    for tool, chain in chains.items():
        lab.run(lab.server, tool, "-A", chain, *marker)
    again = lab.ufw(script("webserver"))
    assert "policy changed" not in again
    for tool, chain in chains.items():
        assert "not reloaded" in lab.run(lab.server, tool, "-S", chain), tool
    lab.ufw("ufw default allow incoming\n")
    assert "-P INPUT ACCEPT" in lab.run(lab.server, "iptables", "-S", "INPUT")
    fixed = lab.ufw(script("webserver"))
    assert "Default incoming policy changed to 'deny'" in fixed
    assert "outgoing policy" not in fixed and "routed policy" not in fixed
    for tool in chains:
        assert "-P INPUT DROP" in lab.run(lab.server, tool, "-S", "INPUT"), tool


def test_stale_fwgen_rules_go_and_rules_of_others_stay(
    lab: Lab, write_profile: Callable[..., Path]
) -> None:
    path = write_profile(
        "description: d\nextends: base\nnetworks: {admins: [192.0.2.1]}\n"
        "inbound: [{service: ssh, from: admins}]\n"
    )

    def admins(address: str) -> str:
        return render(resolve_profile(str(path), {"admins": [address]}), "ufw")["fwgen-ufw.sh"]

    lab.ufw("ufw allow 9999/tcp comment 'added by hand'\n")
    lab.ufw(admins("192.0.2.1"))
    out = lab.ufw(admins("192.0.2.7"))
    rules = added(out)
    assert "ufw allow 9999/tcp comment 'added by hand'" in rules
    assert any("from 192.0.2.7 " in r for r in rules)
    assert not any("192.0.2.1 " in r for r in rules)


def test_exclusive_removes_rules_of_others(lab: Lab) -> None:
    lab.ufw("ufw allow 9999/tcp comment 'added by hand'\n")
    rules = added(lab.ufw(script("webserver", exclusive=True)))
    assert not any("9999" in r for r in rules)
    assert rules and all("comment 'fwgen: " in r for r in rules)


def test_a_rule_it_cannot_delete_fails_the_run(lab: Lab) -> None:
    """With --flush-ruleset every rule the profile lacks goes; one ufw prints in a form
    the script will not pass back to `ufw delete` (an application's name with a blank,
    quoted) stays, and the run says so and fails instead of ending well."""
    app = "[Web Full]\ntitle=web\ndescription=web\nports=7777/tcp\n"
    lab.run(lab.server, *lab.ufw_root(), "sh", "-c", "cat > /etc/ufw/applications.d/web", stdin=app)
    lab.ufw("ufw allow 'Web Full'\n")
    with pytest.raises(LabError) as failed:
        lab.ufw(script("webserver", exclusive=True))
    said = str(failed.value)
    assert "not deleting a rule ufw printed in an unexpected form: ufw allow 'Web Full'" in said
    assert "a rule named above is still in ufw, and the profile does not have it" in said


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


BEFORE = ("before.rules", "before6.rules")


def before_rules(lab: Lab) -> dict[str, str]:
    assert lab.ufw_dir is not None
    return {name: Path(lab.ufw_dir, "etc-ufw", name).read_text() for name in BEFORE}


def without_block(text: str) -> str:
    """The file with fwgen's block taken out: what ufw's package (or the admin) wrote."""
    begin, end = text.index("# BEGIN fwgen"), text.index("# END fwgen")
    return text[:begin] + text[text.index("\n", end) + 1 :]


def test_the_before_rules_block_is_managed_in_place(
    lab: Lab, write_profile: Callable[..., Path]
) -> None:
    """ICMP and exact rate limits live in a marked block of before.rules and
    before6.rules: written once, replaced when it changes, byte-identical when it does
    not, and nothing outside the markers changes."""
    lab.ufw("true\n")  # the private copy of /etc/ufw, as the package installed it
    original = before_rules(lab)
    lab.ufw(script("webserver"))
    first = before_rules(lab)
    for name in BEFORE:
        assert first[name].count("# BEGIN fwgen") == first[name].count("# END fwgen") == 1
        assert "--hashlimit-upto 5/second" in first[name]  # ping's limit
        assert without_block(first[name]) == original[name], name
    second = lab.ufw(script("webserver"))
    assert before_rules(lab) == first
    assert "reloaded" not in second.lower()
    # Another profile replaces the block, and only the block.
    no_ping = write_profile("description: no ping\nextends: base\noptions: {ping: false}\n")
    changed = lab.ufw(render(resolve_profile(str(no_ping)), "ufw")["fwgen-ufw.sh"])
    assert "reloaded" in changed.lower()
    third = before_rules(lab)
    for name in BEFORE:
        assert third[name].count("# BEGIN fwgen") == 1
        assert "hashlimit" not in third[name]
        assert without_block(third[name]) == original[name], name


def test_ping_off_drops_echo_requests(lab: Lab, write_profile: Callable[..., Path]) -> None:
    """ufw's own before.rules accept echo requests from anyone; `ping: false` takes
    them back in fwgen's block. IPv6 keeps working: neighbour discovery still passes."""
    no_ping = write_profile(
        "description: no ping\nextends: base\noptions: {ping: false}\ninbound: [{service: http}]\n"
    )
    lab.ufw(render(resolve_profile(str(no_ping)), "ufw")["fwgen-ufw.sh"])
    lab.listen(["tcp:80"])
    for family in ("ipv4", "ipv6"):
        assert lab.ping("outside", family) == "blocked", family
    for ns in (lab.server, lab.clients["outside"].ns):
        lab.run(ns, "ip", "-6", "neigh", "flush", "all")
    assert lab.probe("outside", "ipv6", ["tcp:80"]) == {"tcp:80": "open"}


def test_the_admins_logging_level_is_left_alone(lab: Lab) -> None:
    """`log_drops: false` (base) says nothing about ufw's own logging; `true` turns it
    on only where it is off."""
    lab.ufw("ufw logging medium\n")
    lab.ufw(script("webserver"))
    assert lab.ufw_dir is not None
    assert "LOGLEVEL=medium" in Path(lab.ufw_dir, "etc-ufw", "ufw.conf").read_text()


def test_a_broken_block_stops_the_script_before_anything_changes(lab: Lab) -> None:
    """A BEGIN marker without its END (an edit gone wrong): the script says so and
    exits before it touches either file or any rule."""
    lab.ufw("true\n")
    original = before_rules(lab)
    assert lab.ufw_dir is not None
    broken = original["before6.rules"].replace(
        "# End required lines\n", "# End required lines\n# BEGIN fwgen: half a block\n"
    )
    Path(lab.ufw_dir, "etc-ufw", "before6.rules").write_text(broken)
    with pytest.raises(AssertionError, match=r"before6\.rules: no place for fwgen's block"):
        lab.ufw(script("webserver"))
    assert before_rules(lab) == {**original, "before6.rules": broken}
    assert "Status: inactive" in lab.ufw("ufw status\n")


def test_without_ufws_marker_line_the_block_goes_before_the_first_rule(lab: Lab) -> None:
    lab.ufw("true\n")
    assert lab.ufw_dir is not None
    path = Path(lab.ufw_dir, "etc-ufw", "before.rules")
    edited = path.read_text().replace("# End required lines\n", "")
    path.write_text(edited)
    lab.ufw(script("webserver"))
    text = path.read_text()
    assert without_block(text) == edited
    first_rule = edited.index("\n-A ") + 1
    assert text.index("# BEGIN fwgen") == first_rule


def test_the_rate_limits_trackers_are_back_at_every_start_of_ufw(lab: Lab) -> None:
    """ipsets do not outlive a reboot, and ufw's before.rules name the rate limits'
    trackers: fwgen's block of before.init creates them each time ufw starts."""
    lab.ufw(script("minimal"))  # ping and ssh are rate limited
    trackers = sorted(lab.run(lab.server, "ipset", "list", "-n").split())
    assert len(trackers) == 3, trackers  # ping's, both families; ssh's from an IPv4 admin
    # A reboot as ufw sees one: ufw stopped, then started with none of the sets.
    lab.run(lab.server, *lab.ufw_root(), "ufw", "disable")
    for name in trackers:
        lab.run(lab.server, "ipset", "destroy", name)
    lab.run(lab.server, *lab.ufw_root(), "ufw", "--force", "enable")
    assert sorted(lab.run(lab.server, "ipset", "list", "-n").split()) == trackers
    rules = lab.run(lab.server, "iptables", "-S", "ufw-before-input")
    assert all(f"--match-set {name} src" in rules for name in trackers if name.endswith("-v4"))
    for family in ("ipv4", "ipv6"):
        assert lab.ping("trusted", family) == "open", family  # base: ping, rate limited
