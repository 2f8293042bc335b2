"""The cells `fwgen verify` probes and what the Policy says of each, written by hand
from the profiles (the kernel's answers are in tests/kernel/test_verify.py)."""

from __future__ import annotations

from pathlib import Path

from fwgen.lab import cells
from fwgen.policy.resolve import resolve_profile

NETS = ["10.20.0.0/16", "fd20::/48"]
DEFAULT = "vfxs%d"


def answers(plan: cells.Plan) -> dict[tuple[int, str, str], tuple[str, str]]:
    """(link, source, probe) → (expected, deciding rule), for the cells of a plan."""
    return {(c.link, c.source, c.spec): (c.expected, c.why) for c in plan.cells}


def test_webserver_cells_inside_and_outside_admins() -> None:
    plan = cells.plan(resolve_profile("webserver", {"admins": NETS}), DEFAULT)
    assert plan.links == {1: "vfxs1"}
    assert plan.sources == {1: ["10.20.0.2", "fd20::2"]}  # the admins' samples
    found = answers(plan)
    ssh = "ssh (profiles/webserver.yaml:14)"
    assert found[1, "10.20.0.2", "tcp:22"] == ("open", ssh)
    assert found[1, "fd20::2", "tcp:22"] == ("open", ssh)
    assert found[1, "198.18.1.2", "tcp:22"] == ("blocked", "default policy")
    assert found[1, "2001:db8:1::2", "tcp:22"] == ("blocked", "default policy")
    for source in ("10.20.0.2", "198.18.1.2", "2001:db8:1::2"):
        assert found[1, source, "tcp:80"][0] == "open"
        assert found[1, source, "udp:443"][0] == "open"
        assert found[1, source, "tcp:81"] == ("blocked", "default policy")
        assert found[1, source, "tcp:3389"] == ("blocked", "default policy")
        assert found[1, source, "echo-request"][0] == "open"
    assert {"tcp:21", "tcp:22", "tcp:23", "tcp:79", "tcp:80", "tcp:444", "udp:9"} <= set(plan.specs)
    assert len(plan.cells) == 4 * (len(plan.specs) + 1)  # 4 sources: every probe and a ping
    assert plan.scans == [(1, "ipv4", "198.18.1.2"), (1, "ipv6", "2001:db8:1::2")]


def test_open_tcp_ports_for_a_scan() -> None:
    policy = resolve_profile("webserver", {"admins": NETS})
    assert cells.tcp_open(policy, "ipv4", "10.20.0.2", "vfxs1") == {22, 80, 443}
    assert cells.tcp_open(policy, "ipv6", "2001:db8:1::2", "vfxs1") == {80, 443}
    node = resolve_profile("kubernetes-node", {"admins": NETS, "cluster": ["10.30.0.0/16"]})
    assert cells.tcp_open(node, "ipv4", "10.30.0.9", "x") == {10250, *range(30000, 32768)}


def test_a_service_on_one_interface_is_probed_on_it_and_on_another() -> None:
    policy = resolve_profile("fileserver", {"admins": NETS, "lan": NETS, "private": ["eth1"]})
    plan = cells.plan(policy, DEFAULT)
    assert plan.links == {1: "eth1", 2: "vfxs2"}
    found = answers(plan)
    assert found[1, "10.20.0.2", "tcp:445"][0] == "open"  # lan, on the private link
    assert found[2, "10.20.0.3", "tcp:445"] == ("blocked", "default policy")  # another link
    assert found[2, "10.20.0.3", "tcp:22"][0] == "open"  # ssh on every interface


def test_a_glob_gets_a_name_it_matches_and_the_other_link_none(tmp_path: Path) -> None:
    profile = tmp_path / "vpn.yaml"
    profile.write_text(
        "description: vpn\nextends: base\ninterfaces:\n  tunnels: [wg*]\n"
        "inbound:\n  - {service: ssh, interface: tunnels}\n"
    )
    plan = cells.plan(resolve_profile(str(profile)), "wgx%d")
    assert plan.links == {1: "wg0", 2: "xwgx2"}  # "wgx2" would match wg*
    assert answers(plan)[1, "198.18.1.2", "tcp:22"][0] == "open"
    assert answers(plan)[2, "198.18.2.2", "tcp:22"] == ("blocked", "default policy")


def test_what_cannot_be_probed_is_said() -> None:
    plan = cells.plan(resolve_profile("vpn-gateway", {"admins": NETS}), DEFAULT)
    assert any("esp is not probed" in line for line in plan.skipped)
    assert any(
        "network 'mld_query_from' (ipv6, profiles/base.yaml:" in line for line in plan.skipped
    )


def test_a_network_inside_the_lab_s_own_links_says_so() -> None:
    plan = cells.plan(resolve_profile("webserver", {"admins": ["2001:db8:20::/48"]}), DEFAULT)
    said = [line for line in plan.skipped if "network 'admins' (ipv6, --set admins)" in line]
    assert said and "inside the lab's own 2001:db8::/40" in said[0], plan.skipped


def test_a_rejecting_profile_is_not_scanned_from_where_it_rejects() -> None:
    policy = resolve_profile("workstation", {})
    assert policy.refuse == "reject"
    lan = policy.address_set(policy.refuse_from or "")
    inside = str(lan.runs("ipv4").networks().__next__()[1].network_address + 5)
    assert cells.rejects_tcp(policy, "ipv4", inside, "x")
    plan = cells.plan(policy, DEFAULT)
    assert all(not cells.rejects_tcp(policy, f, s, "vfxs1") for _, f, s in plan.scans)
    assert len(plan.scans) == 2
