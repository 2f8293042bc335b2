"""A client host under outbound default-deny still sends what it needs to keep its
address and find its neighbours: DHCP, DHCPv6 and mDNS, measured in the kernel.

A datagram the output policy drops fails at once with EPERM, so each send either
succeeds or names the firewall as the reason.
"""

from __future__ import annotations

import pytest

from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render
from tests.kernel.lab import Lab

pytestmark = pytest.mark.kernel

NEEDED = [
    "255.255.255.255,67,68",  # DHCP discover and request: broadcast, from port 68
    "198.18.1.2,67,68",  # DHCP renewal: to the server that gave the lease
    "ff02::1:2,547,546",  # DHCPv6 solicit: All_DHCP_Relay_Agents_and_Servers on the link
    "224.0.0.251,5353,5353",  # mDNS queries and answers
    "ff02::fb,5353,5353",
]
NOT_ALLOWED = [
    "239.255.255.250,1900,1900",  # SSDP: the profile does not ask for it
    "ff02::c,1900,1900",
    "224.0.0.251,9999,5353",  # mDNS's group, another port
    "255.255.255.255,9999,68",  # broadcast, another port
    "2001:db8:1::2,547,546",  # DHCPv6 goes to the servers' group only ...
    "198.18.1.2,5353,5353",  # ... and mDNS goes to its groups only
    "2001:db8:1::2,9999,9999",
]


@pytest.mark.parametrize("target", ["nftables", "iptables", "ufw"])
def test_workstation_with_outbound_deny_sends_dhcp_dhcpv6_and_mdns(lab: Lab, target: str) -> None:
    lab.apply(target, render(resolve_profile("tests/data/kernel/client.yaml"), target))
    sent = lab.send("trusted", [*NEEDED, *NOT_ALLOWED, "198.18.1.2,53,5300"])
    assert {spec: sent[spec] for spec in NEEDED} == dict.fromkeys(NEEDED, "sent")
    assert {spec: sent[spec] for spec in NOT_ALLOWED} == dict.fromkeys(NOT_ALLOWED, "EPERM")
    assert sent["198.18.1.2,53,5300"] == "sent"  # the profile's own hole: DNS
