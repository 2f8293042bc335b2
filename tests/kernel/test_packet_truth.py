"""What each built-in profile lets through, on each Linux target, in a real kernel.

Clients: `trusted` (the admins network in these tests) and `outside`. The
expectations are written by hand from the profiles.
"""

from __future__ import annotations

import subprocess

import pytest

from fwgen.errors import RenderError
from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render
from tests.conftest import BUILTIN, INTERFACES_TO_SET, NETWORKS_TO_SET
from tests.kernel.firewalld_lab import started
from tests.kernel.lab import Lab

pytestmark = pytest.mark.kernel

TARGETS = ["nftables", "iptables", "ufw", "firewalld"]
SPECS = [
    "tcp:22",
    "tcp:25",
    "tcp:53",
    "tcp:80",
    "tcp:110",
    "tcp:111",
    "tcp:139",
    "tcp:143",
    "tcp:443",
    "tcp:445",
    "tcp:465",
    "tcp:587",
    "tcp:853",
    "tcp:993",
    "tcp:995",
    "tcp:2049",
    "tcp:3000",
    "tcp:3306",
    "tcp:5432",
    "tcp:6443",
    "tcp:9090",
    "tcp:9093",
    "tcp:9100",
    "tcp:10250",
    "tcp:30080",
    "tcp:31337",
    "udp:53",
    "udp:68",
    "udp:123",
    "udp:443",
    "udp:500",
    "udp:546",
    "udp:1194",
    "udp:2049",
    "udp:4500",
    "udp:4789",
    "udp:5353",
    "udp:8472",
    "udp:30080",
    "udp:51820",
]
EVERYONE = {(c, f) for c in ("trusted", "outside") for f in ("ipv4", "ipv6")}
TRUSTED = {("trusted", "ipv4"), ("trusted", "ipv6")}
IPV4 = {("trusted", "ipv4"), ("outside", "ipv4")}
OPEN: dict[str, dict[str, set[tuple[str, str]]]] = {
    "base": {},
    "webserver": {"tcp:80": EVERYONE, "tcp:443": EVERYONE, "udp:443": EVERYONE, "tcp:22": TRUSTED},
    "mailserver": {
        "tcp:25": EVERYONE,
        "tcp:587": EVERYONE,
        "tcp:465": EVERYONE,
        "tcp:993": EVERYONE,
        "tcp:995": EVERYONE,
        "tcp:22": TRUSTED,
    },
    "workstation": {
        "udp:68": IPV4
    },  # DHCP replies; DHCPv6 only from link-local, mDNS only multicast
    "minimal": {"tcp:22": TRUSTED},
    "docker-host": {"tcp:80": TRUSTED, "tcp:443": TRUSTED, "tcp:22": TRUSTED},  # web_clients
    "dns-resolver": {"udp:53": TRUSTED, "tcp:53": TRUSTED, "tcp:22": TRUSTED},  # no open resolver
    "dns-authoritative": {
        "udp:53": EVERYONE,
        "tcp:53": EVERYONE,
        "tcp:853": TRUSTED,  # zone transfers over TLS: the secondaries only
        "tcp:22": TRUSTED,
    },
    "database": {"tcp:5432": TRUSTED, "tcp:3306": TRUSTED, "tcp:22": TRUSTED},
    "bastion": {"tcp:22": EVERYONE, "udp:68": IPV4},  # address: dhcp
    "fileserver": {  # NetBIOS (139) and NFSv3's portmapper (111) stay closed
        "tcp:445": TRUSTED,
        "tcp:2049": TRUSTED,
        "udp:2049": TRUSTED,
        "tcp:22": TRUSTED,
    },
    "vpn-gateway": {
        "udp:51820": EVERYONE,
        "udp:1194": EVERYONE,
        "udp:500": EVERYONE,  # ipsec: IKE
        "udp:4500": EVERYONE,  # ipsec: NAT traversal
        "tcp:22": TRUSTED,
    },
    "monitoring": {
        "tcp:9090": TRUSTED,
        "tcp:9093": TRUSTED,
        "tcp:3000": TRUSTED,
        "tcp:9100": TRUSTED,
        "tcp:22": TRUSTED,
    },
    "kubernetes-node": {  # a worker: no API server (6443), Calico's VXLAN (4789) closed
        "tcp:10250": TRUSTED,
        "tcp:30080": TRUSTED,
        "udp:30080": TRUSTED,
        "tcp:31337": TRUSTED,  # inside the NodePort range, acknowledged with allow_risky
        "udp:8472": TRUSTED,
        "tcp:22": TRUSTED,
    },
}
PING = {profile: profile != "workstation" for profile in OPEN}
# Profiles a target refuses to render, and why (a refusal is a cell of the matrix too).
REFUSED = {
    ("docker-host", "firewalld"): "firewalld accepts every forwarded connection the "
    "engine's NAT translated",
}


def load(lab: Lab, target: str, profile: str) -> None:
    """Render *profile* with its placeholder networks set to the `trusted` client, and its
    interface groups to the server's end of the `trusted` link."""
    trusted = lab.clients["trusted"]
    overrides = {name: [trusted.ipv4, trusted.ipv6] for name in NETWORKS_TO_SET[profile]}
    overrides |= {name: [trusted.server_device] for name in INTERFACES_TO_SET.get(profile, [])}
    files = render(resolve_profile(profile, overrides), target)
    if target == "firewalld":
        started(lab)  # the real daemon, in the server namespace
    lab.apply(target, files)


def test_every_builtin_profile_is_in_the_matrix() -> None:
    assert sorted(OPEN) == BUILTIN


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("profile", sorted(OPEN))
def test_builtin_profile(lab: Lab, profile: str, target: str) -> None:
    if (profile, target) in REFUSED:
        with pytest.raises(RenderError, match=REFUSED[profile, target]):
            load(lab, target, profile)
        return
    load(lab, target, profile)
    lab.listen(SPECS)
    expected = {
        (client, family, spec): "open"
        if (client, family) in OPEN[profile].get(spec, set())
        else "blocked"
        for client in ("trusted", "outside")
        for family in ("ipv4", "ipv6")
        for spec in SPECS
    }
    assert lab.matrix(SPECS) == expected

    # Loopback: everything is reachable from the host itself.
    for address in ("127.0.0.1", "::1"):
        assert lab.probe_from(lab.server, address, ["tcp:3306"]) == {"tcp:3306": "open"}

    # Ping follows the profile (on ufw through fwgen's block in before.rules).
    for family in ("ipv4", "ipv6"):
        assert lab.ping("outside", family) == ("open" if PING[profile] else "blocked"), family

    # IPv6 neighbour discovery still works: forget the neighbours, then talk again.
    for ns in (lab.server, lab.clients["trusted"].ns):
        lab.run(ns, "ip", "-6", "neigh", "flush", "all")
    open_v6 = [s for s, who in OPEN[profile].items() if ("trusted", "ipv6") in who]
    if open_v6:
        assert lab.probe("trusted", "ipv6", open_v6[:1]) == {open_v6[0]: "open"}
    else:
        lab.probe("trusted", "ipv6", ["tcp:22"])
    neigh = lab.run(
        lab.clients["trusted"].ns, "ip", "-6", "neigh", "show", lab.clients["trusted"].server_ipv6
    )
    assert "lladdr" in neigh, f"neighbour discovery failed: {neigh!r}"


@pytest.mark.parametrize("target", TARGETS)
def test_bastion_lets_ssh_out_to_the_internal_network_only(lab: Lab, target: str) -> None:
    trusted, outside = lab.clients["trusted"], lab.clients["outside"]
    for client in (trusted, outside):
        lab.listen_in(client.ns, ["tcp:22", "tcp:80"])
    load(lab, target, "bastion")  # internal: the trusted client
    for address in (trusted.ipv4, trusted.ipv6):
        assert lab.probe_from(lab.server, address, ["tcp:22", "tcp:80"]) == {
            "tcp:22": "open",
            "tcp:80": "blocked",
        }
    for address in (outside.ipv4, outside.ipv6):
        assert lab.probe_from(lab.server, address, ["tcp:22", "tcp:80"]) == {
            "tcp:22": "blocked",
            "tcp:80": "blocked",
        }


@pytest.mark.parametrize("target", TARGETS)
def test_vpn_gateway_forwards_and_minimal_does_not(lab: Lab, target: str) -> None:
    trusted, outside = lab.clients["trusted"], lab.clients["outside"]
    lab.route_through_server()
    lab.listen_in(outside.ns, ["tcp:80", "udp:53"])
    load(lab, target, "vpn-gateway")
    for address in (outside.ipv4, outside.ipv6):
        assert lab.probe_from(trusted.ns, address, ["tcp:80", "udp:53"]) == {
            "tcp:80": "open",
            "udp:53": "open",
        }
    load(lab, target, "minimal")
    for address in (outside.ipv4, outside.ipv6):
        assert lab.probe_from(trusted.ns, address, ["tcp:80", "udp:53"]) == {
            "tcp:80": "blocked",
            "udp:53": "blocked",
        }


@pytest.mark.parametrize("target", TARGETS)
def test_established_connection_survives_reloading(lab: Lab, target: str) -> None:
    load(lab, target, "webserver")
    lab.listen(["tcp:80"])
    connections = [lab.hold("outside", family, 80) for family in ("ipv4", "ipv6")]
    load(lab, target, "webserver")
    for conn in connections:
        assert conn.stdin is not None and conn.stdout is not None
        conn.stdin.write("still there\n")
        conn.stdin.flush()
        assert conn.stdout.readline().strip() == "ok"


@pytest.mark.parametrize("target", ["nftables", "iptables", "ufw"])
def test_rate_limit_drops_the_next_new_connection_per_source(lab: Lab, target: str) -> None:
    lab.apply(target, render(resolve_profile("tests/data/kernel/limited.yaml"), target))
    lab.listen(["tcp:2222"])
    allowed = 3  # 3/minute, exactly: on ufw too, with hashlimit in before.rules
    assert lab.burst("trusted", "ipv4", 2222, allowed + 2) == [True] * allowed + [False, False]
    assert lab.burst("trusted", "ipv6", 2222, allowed + 1) == [True] * allowed + [False]
    assert lab.burst("outside", "ipv4", 2222, 1) == [True]  # another source has its own budget


@pytest.mark.parametrize("target", ["nftables", "iptables"])
def test_outbound_and_forward_defaults(lab: Lab, target: str) -> None:
    outside, trusted = lab.clients["outside"], lab.clients["trusted"]
    lab.route_through_server()
    for client in (outside, trusted):
        lab.listen_in(client.ns, ["tcp:80", "tcp:443", "tcp:8443"])

    # forward: accept (outbound.yaml) lets clients reach each other through the server...
    lab.apply(target, render(resolve_profile("tests/data/kernel/outbound.yaml"), target))
    assert lab.probe_from(trusted.ns, outside.ipv4, ["tcp:80"]) == {"tcp:80": "open"}
    assert lab.probe_from(trusted.ns, outside.ipv6, ["tcp:80"]) == {"tcp:80": "open"}
    # ...while outbound from the server itself is default-deny with two holes.
    for address in (trusted.ipv4, trusted.ipv6):
        assert lab.probe_from(lab.server, address, ["tcp:80", "tcp:443", "tcp:8443"]) == {
            "tcp:80": "blocked",
            "tcp:443": "open",
            "tcp:8443": "open",
        }
    for address in (outside.ipv4, outside.ipv6):
        assert lab.probe_from(lab.server, address, ["tcp:443", "tcp:8443"]) == {
            "tcp:443": "open",
            "tcp:8443": "blocked",
        }

    # forward: drop (webserver) stops traffic between the clients; outbound is open again.
    lab.apply(target, render(resolve_profile("webserver"), target))
    assert lab.probe_from(trusted.ns, outside.ipv4, ["tcp:80"]) == {"tcp:80": "blocked"}
    assert lab.probe_from(trusted.ns, outside.ipv6, ["tcp:80"]) == {"tcp:80": "blocked"}
    assert lab.probe_from(lab.server, trusted.ipv4, ["tcp:80"]) == {"tcp:80": "open"}


def test_lab_cleans_up_after_itself() -> None:
    from tests.kernel.conftest import require

    require()
    with Lab() as lab:
        lab.add_client("one")
        names = [lab.server, lab.clients["one"].ns]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(name in listed for name in names)


@pytest.mark.parametrize("target", ["nftables", "iptables"])
def test_forty_thousand_entry_list(
    lab: Lab, target: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A 40,000-entry file list: the listed client gets in, the unlisted one does not,
    and the ruleset has one rule for it (nftables set, or one ipset). It replaces a
    20-entry list loaded before, as a feed that grows between two loads would."""
    folder = tmp_path_factory.mktemp("feed")
    trusted = lab.clients["trusted"]
    (folder / "feed.yaml").write_text(
        "description: feed\nextends: base\nnetworks:\n  feed: [{file: feed.txt}]\n"
        "inbound: [{service: ssh, from: feed}]\n"
    )
    for count in (20, 39998):
        entries = [f"10.{i >> 16}.{i >> 8 & 255}.{i & 255}" for i in range(0, count * 2, 2)]
        (folder / "feed.txt").write_text("\n".join([*entries, trusted.ipv4, trusted.ipv6]) + "\n")
        files = render(resolve_profile(str(folder / "feed.yaml")), target)
        lab.apply(target, files)
    lab.listen(["tcp:22"])
    assert lab.matrix(["tcp:22"]) == {
        ("trusted", "ipv4", "tcp:22"): "open",
        ("trusted", "ipv6", "tcp:22"): "open",
        ("outside", "ipv4", "tcp:22"): "blocked",
        ("outside", "ipv6", "tcp:22"): "blocked",
    }
    if target == "iptables":
        rules = lab.run(lab.server, "iptables", "-S", "FWGEN-INPUT")
        assert rules.count("--dport 22") == 1 and "--match-set fwgen-feed-v4 src" in rules
        assert "Number of entries: 39999" in lab.run(
            lab.server, "ipset", "list", "-t", "fwgen-feed-v4"
        )
    else:
        listed = lab.run(lab.server, "nft", "list", "chain", "inet", "fwgen", "input")
        assert listed.count("tcp dport 22") == 2  # one rule per family
