"""Interfaces and protocols without ports in a real kernel, on nftables, iptables and ufw.

A service allowed only on the private link: one client reaches the server over two links
(`private` and `public`) from the same source address to the same server address, and
only the link differs. ESP and GRE: raw packets from an allowed client are delivered to a
raw socket on the server, and from another client they are not.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import fwgen.lab
from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render
from tests.kernel.lab import Lab

pytestmark = pytest.mark.kernel

TARGETS = ["nftables", "iptables", "ufw"]
RAWPROTO = Path(fwgen.lab.__file__).with_name("rawproto.py")
# The client's own address, on its loopback, and the server's, on its: both reached over
# either link, whichever the client's route to the server names.
SOURCE = {"ipv4": "198.18.9.2", "ipv6": "2001:db8:9::2"}
SERVER = {"ipv4": "198.18.8.1", "ipv6": "2001:db8:8::1"}
TWO_LINKS = """\
description: a database on its private link, a web server on both
extends: base
interfaces:
  private: []
inbound:
  - {service: postgresql, interface: private}
  - {service: mysql, interface: "%s"}
  - {service: https}
"""


def _two_links(lab: Lab) -> tuple[str, str]:
    """The `trusted` client's link (private) and a second link from the same client
    (public); routes to the client's own address go back over the private one. Reverse
    path filtering is off, so the firewall alone decides."""
    client = lab.clients["trusted"]
    here, there = lab.link(3, "s"), lab.link(3, "c")
    subprocess.run(
        ["ip", "link", "add", here, "netns", lab.server, "type", "veth", "peer", "name", there,
         "netns", client.ns],
        check=True,
    )  # fmt: skip
    for ns, dev, v4, v6 in (
        (lab.server, here, "198.18.3.1", "2001:db8:3::1"),
        (client.ns, there, "198.18.3.2", "2001:db8:3::2"),
    ):
        lab.run(ns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.accept_dad=0")
        lab.run(ns, "ip", "addr", "add", f"{v4}/24", "dev", dev)
        lab.run(ns, "ip", "-6", "addr", "add", f"{v6}/64", "dev", dev, "nodad")
        lab.run(ns, "ip", "link", "set", dev, "up")
        for key in ("all", "default", dev, "lo"):
            lab.run(ns, "sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=0")
    for family, version in (("ipv4", "-4"), ("ipv6", "-6")):
        bits = "32" if family == "ipv4" else "128"
        lab.run(lab.server, "ip", version, "addr", "add", f"{SERVER[family]}/{bits}", "dev", "lo")
        lab.run(client.ns, "ip", version, "addr", "add", f"{SOURCE[family]}/{bits}", "dev", "lo")
        via = client.ipv4 if family == "ipv4" else client.ipv6
        lab.run(lab.server, "ip", version, "route", "add", SOURCE[family], "via", via)
    return client.server_device, here


def _over(lab: Lab, link: int, family: str, specs: list[str]) -> dict[str, str]:
    """Probe the server's own address from the client's own address over link 1 or 3."""
    client = lab.clients["trusted"]
    version = "-4" if family == "ipv4" else "-6"
    gateway = {
        ("ipv4", 1): client.server_ipv4,
        ("ipv6", 1): client.server_ipv6,
        ("ipv4", 3): "198.18.3.1",
        ("ipv6", 3): "2001:db8:3::1",
    }[family, link]
    device = client.device if link == 1 else lab.link(3, "c")
    lab.run(client.ns, "ip", version, "route", "replace", SERVER[family], "via", gateway,
            "dev", device, "src", SOURCE[family])  # fmt: skip
    return lab.probe_from(client.ns, SERVER[family], specs)


@pytest.mark.parametrize("target", TARGETS)
def test_a_service_on_the_private_link_is_closed_on_the_public_one(
    lab: Lab, target: str, tmp_path: Path
) -> None:
    private, public = _two_links(lab)
    profile = tmp_path / "two-links.yaml"
    profile.write_text(TWO_LINKS % f"{private}*")  # a glob: the private link's name starts it
    policy = resolve_profile(str(profile), {"private": [private]})
    lab.apply(target, render(policy, target))
    specs = ["tcp:5432", "tcp:3306", "tcp:443"]
    lab.listen(specs)
    for family in ("ipv4", "ipv6"):
        assert _over(lab, 1, family, specs) == dict.fromkeys(specs, "open"), family
        assert _over(lab, 3, family, specs) == {
            "tcp:5432": "blocked",
            "tcp:3306": "blocked",
            "tcp:443": "open",  # the same source and destination do get in over this link
        }, family
    assert not public.startswith(private)  # the glob does not match the public link


@pytest.mark.parametrize("target", TARGETS)
def test_an_empty_interface_group_admits_no_one(lab: Lab, target: str, tmp_path: Path) -> None:
    _two_links(lab)
    profile = tmp_path / "two-links.yaml"
    profile.write_text(TWO_LINKS % "nosuch0")
    lab.apply(target, render(resolve_profile(str(profile)), target))
    specs = ["tcp:5432", "tcp:3306", "tcp:443"]
    lab.listen(specs)
    for link in (1, 3):
        for family in ("ipv4", "ipv6"):
            expected = {"tcp:5432": "blocked", "tcp:3306": "blocked", "tcp:443": "open"}
            assert _over(lab, link, family, specs) == expected, (link, family)


def _route_back(lab: Lab, link: int) -> None:
    """Route the server's traffic to the client's own address over link 1 or 3."""
    client = lab.clients["trusted"]
    for family, version in (("ipv4", "-4"), ("ipv6", "-6")):
        via = {
            ("ipv4", 1): client.ipv4,
            ("ipv6", 1): client.ipv6,
            ("ipv4", 3): "198.18.3.2",
            ("ipv6", 3): "2001:db8:3::2",
        }[family, link]
        lab.run(lab.server, "ip", version, "route", "replace", SOURCE[family], "via", via)


@pytest.mark.parametrize("target", TARGETS)
def test_outbound_on_an_interface_leaves_by_that_link_only(
    lab: Lab, target: str, tmp_path: Path
) -> None:
    private, _ = _two_links(lab)
    profile = tmp_path / "out.yaml"
    profile.write_text(
        "description: out\nextends: base\ninterfaces:\n  private: []\ninbound: []\n"
        "outbound:\n  - {service: http, interface: private}\n  - {service: https}\n"
        "options: {address: static}\n"
    )
    policy = resolve_profile(str(profile), {"private": [private]})
    lab.apply(target, render(policy, target))
    lab.listen_in(lab.clients["trusted"].ns, ["tcp:80", "tcp:443"])
    _over(lab, 1, "ipv6", [])  # the client's replies to the server's own address: link 1
    _over(lab, 1, "ipv4", [])
    for link, http in ((1, "open"), (3, "blocked")):
        _route_back(lab, link)
        for family in ("ipv4", "ipv6"):
            found = lab.probe_from(lab.server, SOURCE[family], ["tcp:80", "tcp:443"])
            assert found == {"tcp:80": http, "tcp:443": "open"}, (link, family)


def _delivered(lab: Lab, proto: int, senders: list[tuple[str, str]]) -> list[str]:
    """Raw packets of *proto* sent by each (client, family): the sources the server's
    raw sockets received."""
    receiver = subprocess.Popen(
        ["ip", "netns", "exec", lab.server, sys.executable, str(RAWPROTO), "receive", str(proto)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
    for client, family in senders:
        lab.run(lab.clients[client].ns, sys.executable, str(RAWPROTO), "send", str(proto),
                lab.address(client, family))  # fmt: skip
    out, _ = receiver.communicate("", timeout=10)
    return list(json.loads(out))


@pytest.mark.parametrize("target", TARGETS)
def test_esp_and_gre_from_an_allowed_source_only(lab: Lab, target: str, tmp_path: Path) -> None:
    trusted, outside = lab.clients["trusted"], lab.clients["outside"]
    profile = tmp_path / "tunnels.yaml"
    profile.write_text(
        "description: tunnels\nextends: base\nnetworks:\n  peers: []\ninbound:\n"
        "  - {protocol: [esp, gre], name: tunnels, from: peers}\n"
    )
    policy = resolve_profile(str(profile), {"peers": [trusted.ipv4, trusted.ipv6]})
    lab.apply(target, render(policy, target))
    senders = [(c, f) for c in ("trusted", "outside") for f in ("ipv4", "ipv6")]
    for proto in (50, 47):  # ESP, GRE
        assert sorted(_delivered(lab, proto, senders)) == sorted([trusted.ipv4, trusted.ipv6]), (
            proto
        )
    # the same packets, with nothing of fwgen's loaded, reach the server from both: the
    # test can tell delivered from dropped
    open_policy = resolve_profile(str(profile), {"peers": [trusted.ipv4, trusted.ipv6,
                                                            outside.ipv4, outside.ipv6]})  # fmt: skip
    lab.apply(target, render(open_policy, target))
    assert len(_delivered(lab, 50, senders)) == 4


def test_ufw_replaces_a_rule_whose_interface_changed(lab: Lab, tmp_path: Path) -> None:
    """The ufw script deletes its rule on the old interface (a glob too) once the group
    names another: only the new one stays, and the service follows it."""
    private, public = _two_links(lab)
    profile = tmp_path / "two-links.yaml"
    profile.write_text(TWO_LINKS % f"{private}*")
    for group in (private, public):
        glob = f"{group}*"
        profile.write_text(TWO_LINKS % glob)
        added = lab.ufw(
            render(resolve_profile(str(profile), {"private": [group]}), "ufw")["fwgen-ufw.sh"]
        ).split("--- added")[1]
        # as ufw prints them: "ufw allow in on IFACE to any port 5432 proto tcp ..."
        lines = [line for line in added.splitlines() if "fwgen: " in line]
        assert any(f"allow in on {group} " in x and "port 5432 " in x for x in lines), added
        assert any(f"allow in on {glob.replace('*', '+')} " in x and "3306" in x for x in lines)
        other = public if group == private else private
        assert not any(f" on {other}" in x for x in lines), added
    specs = ["tcp:5432", "tcp:3306"]
    lab.listen(specs)
    for family in ("ipv4", "ipv6"):
        assert _over(lab, 3, family, specs) == dict.fromkeys(specs, "open"), family
        assert _over(lab, 1, family, specs) == dict.fromkeys(specs, "blocked"), family
