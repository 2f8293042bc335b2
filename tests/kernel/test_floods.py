"""A flood must never shut the door on everyone: spoofed SYNs from more sources than a
rate limit's per-source meter holds, and an IPv6 /48's worth of /64s, leave a fresh,
legitimate source able to connect at once, while a source over its rate stays limited."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.kernel.lab import Lab
from tests.kernel.test_limits import TARGETS, apply, limited

pytestmark = pytest.mark.kernel

FLOOD = Path(__file__).with_name("flood.py")
PORT = 2222
SPOOFED = 70_000  # more than the 65,535 sources a per-source meter holds
ATTACKER_V6 = "3fff:ff00:1::/48"  # 65,536 /64s (3fff::/20 is for documentation)


def flood(lab: Lab, family: str, amount: str) -> dict[str, float]:
    """SYNs to PORT on the server's address on `outside`'s link, from spoofed sources."""
    client = lab.clients["outside"]
    mac = lab.run(lab.server, "cat", f"/sys/class/net/{client.server_device}/address").strip()
    kind = "v4" if family == "ipv4" else "v6"
    address = lab.address("outside", family)
    args = [client.device, mac, address, str(PORT), kind, amount]
    return dict(json.loads(lab.run(client.ns, sys.executable, str(FLOOD), *args)))


@pytest.mark.parametrize("target", TARGETS)
def test_a_spoofed_flood_leaves_the_door_open_to_a_fresh_source(
    lab: Lab, target: str, write_profile: Callable[..., Path]
) -> None:
    apply(lab, target, limited(write_profile, {"rate": "1/minute", "burst": 3}))
    lab.listen([f"tcp:{PORT}"])
    # The server answers SYNs from anywhere: no reverse-path check may hide the flood.
    lab.run(lab.server, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
    for address in ("198.18.2.77", "2001:db8:2:1::2"):
        lab.add_address("outside", address)
    # Before the flood: a source over its rate is limited.
    assert lab.burst("trusted", "ipv4", PORT, 4) == [True] * 3 + [False]
    assert lab.burst("trusted", "ipv6", PORT, 4) == [True] * 3 + [False]

    sent = flood(lab, "ipv4", str(SPOOFED))
    assert sent["sent"] == SPOOFED, sent
    # A fresh source gets in at once; it counts against its /16 (none of the spoofed
    # sources is in 198.18.0.0/16), so it too is limited to the burst.
    assert lab.burst("outside", "ipv4", PORT, 5, "198.18.2.77") == [True] * 3 + [False] * 2
    # The source that was over its rate before the flood still is.
    assert lab.burst("trusted", "ipv4", PORT, 1) == [False]

    # Whoever holds a /48 holds 65,536 /64s: no spoofing needed.
    sent = flood(lab, "ipv6", ATTACKER_V6)
    assert sent["sent"] == 1 << 16, sent
    # A fresh /64 gets in at once, with its burst: the /64s the full meter could not
    # hold count against the attacker's own /16, 3fff::/16.
    assert lab.burst("outside", "ipv6", PORT, 4, "2001:db8:2:1::2") == [True] * 3 + [False]
    assert lab.burst("trusted", "ipv6", PORT, 1) == [False]
