"""ufw's stock before.rules accept DHCP and DHCPv6 replies, mDNS and SSDP from anyone,
ahead of the user's rules. fwgen's block decides each as the profile does, as nftables
and iptables do: `minimal` admits none of them; `workstation` (address: dhcp, mdns)
admits DHCP, DHCPv6 and mDNS, and still not SSDP."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render
from tests.kernel.lab import AGENT, Lab
from tests.kernel.test_limits import TARGETS

pytestmark = pytest.mark.kernel

# What the server listens on (FAMILY:PORT[:GROUP]) and what the client sends to reach
# it (destination, port, source port); "link" is the server's link-local address.
CLASSES = {
    "ipv4:68": ("server", 68, 67),  # a DHCP reply
    "ipv4:5353:224.0.0.251": ("224.0.0.251", 5353, 5353),  # mDNS
    "ipv4:1900:239.255.255.250": ("239.255.255.250", 1900, 1900),  # SSDP
    "ipv6:546": ("link", 546, 547),  # a DHCPv6 reply, link-local to link-local
    "ipv6:5353:ff02::fb": ("ff02::fb", 5353, 5353),
    "ipv6:1900:ff02::f": ("ff02::f", 1900, 1900),
}
ADMITTED = {
    "minimal": [],
    "workstation": ["ipv4:5353:224.0.0.251", "ipv4:68", "ipv6:5353:ff02::fb", "ipv6:546"],
}


def link_local(lab: Lab, ns: str, device: str) -> str:
    """The device's link-local address, once the kernel has given it one."""
    for _ in range(50):
        shown = lab.run(ns, "ip", "-6", "-o", "addr", "show", "dev", device, "scope", "link")
        if "inet6 " in shown:
            return shown.split("inet6 ")[1].split("/")[0]
        time.sleep(0.1)
    raise AssertionError(f"{device} in {ns} has no link-local address")


def reached(lab: Lab) -> list[str]:
    """Which classes a datagram from `trusted` reaches on the server, through its firewall."""
    client = lab.clients["trusted"]
    device = client.server_device
    link = link_local(lab, lab.server, device)
    link_local(lab, client.ns, client.device)  # the source of the DHCPv6 reply
    places = {"server": client.server_ipv4, "link": link}
    receiver = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            lab.server,
            sys.executable,
            str(AGENT),
            "receive",
            device,
            *CLASSES,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
    specs = [f"{places.get(to, to)},{port},{sport}" for to, port, sport in CLASSES.values()]
    sent = json.loads(lab.agent(client.ns, "send", client.device, *specs))
    assert set(sent.values()) == {"sent"}, sent
    out, _ = receiver.communicate("", timeout=10)
    return list(json.loads(out))


@pytest.mark.parametrize("profile", sorted(ADMITTED))
@pytest.mark.parametrize("target", TARGETS)
def test_stock_accepts_follow_the_profile(lab: Lab, target: str, profile: str) -> None:
    policy = resolve_profile(profile, {"admins": ["192.0.2.1"]} if profile == "minimal" else {})
    lab.apply(target, render(policy, target))
    assert reached(lab) == ADMITTED[profile]
