"""Rate limits that hold, in a real kernel, on every Linux target: a ping flood gets no
more than ping's limit although conntrack calls every echo request after the first
"established"; IPv6 sources share a bucket per /64; a burst is what the profile says,
and an idle source does not earn a fresh one early. Also MLD queries, which `base`
accepts from the link only."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render
from tests.kernel.lab import Lab

pytestmark = pytest.mark.kernel

TARGETS = ["nftables", "iptables", "ufw"]
PING_RATE, PING_BURST = 5, 5  # base: echo requests, 5/second per source


def apply(lab: Lab, target: str, profile: str | Path) -> None:
    lab.apply(target, render(resolve_profile(str(profile)), target))


@pytest.mark.parametrize("target", TARGETS)
def test_a_ping_flood_gets_no_more_than_the_limit(lab: Lab, target: str) -> None:
    apply(lab, target, "base")
    for family in ("ipv4", "ipv6"):
        # An ordinary ping, one request a second in one flow: every one answered.
        assert lab.echo("trusted", family, 3, 1.0)[0] == [1, 2, 3], family
        # `ping -f`: 200 requests of the same flow in about a second. Conntrack calls
        # all but the first established; the limit must count them anyway.
        answered, seconds = lab.echo("trusted", family, 200, 0.005)
        most = PING_RATE * seconds + PING_BURST + 5  # 5 for timing
        assert PING_BURST <= len(answered) <= most, (family, len(answered), seconds)
        # Another source has a budget of its own.
        assert lab.ping("outside", family) == "open", family
    # ICMP errors about the host's own traffic (related) still come in.
    trusted = lab.clients["trusted"]
    for address in (trusted.ipv4, trusted.ipv6):
        assert lab.udp_error(lab.server, address, 9) == "refused", address


def limited(write_profile: Callable[..., Path], limit: Any, **options: int) -> Path:
    profile = {
        "description": "per-prefix limit probe",
        "extends": "base",
        "inbound": [{"port": "2222/tcp", "name": "limited", "limit": limit}],
        **({"options": options} if options else {}),
    }
    return write_profile(json.dumps(profile))


@pytest.mark.parametrize("target", TARGETS)
def test_ipv6_sources_share_a_bucket_per_64(
    lab: Lab, target: str, write_profile: Callable[..., Path]
) -> None:
    """Whoever holds one address of a /64 holds them all: they share one budget. An
    address of another /64 has its own; IPv4 is keyed on the address."""
    apply(lab, target, limited(write_profile, "3/minute"))
    for address in ("2001:db8:1::3", "2001:db8:1::4", "2001:db8:1:1::2", "198.18.1.3"):
        lab.add_address("trusted", address)
    lab.listen(["tcp:2222"])
    assert lab.burst("trusted", "ipv6", 2222, 3, "2001:db8:1::2") == [True] * 3
    assert lab.burst("trusted", "ipv6", 2222, 1, "2001:db8:1::3") == [False]
    assert lab.burst("trusted", "ipv6", 2222, 1, "2001:db8:1::4") == [False]
    assert lab.burst("trusted", "ipv6", 2222, 1, "2001:db8:1:1::2") == [True]
    assert lab.burst("trusted", "ipv4", 2222, 4, "198.18.1.2") == [True] * 3 + [False]
    assert lab.burst("trusted", "ipv4", 2222, 1, "198.18.1.3") == [True]


@pytest.mark.parametrize("target", TARGETS)
def test_the_limit_prefixes_are_options(
    lab: Lab, target: str, write_profile: Callable[..., Path]
) -> None:
    profile = limited(write_profile, "2/minute", limit_prefix_v6=48, limit_prefix_v4=24)
    apply(lab, target, profile)
    for address in ("2001:db8:1:1::2", "198.18.1.3"):
        lab.add_address("trusted", address)
    lab.listen(["tcp:2222"])
    assert lab.burst("trusted", "ipv6", 2222, 2, "2001:db8:1::2") == [True] * 2
    assert lab.burst("trusted", "ipv6", 2222, 1, "2001:db8:1:1::2") == [False]  # same /48
    assert lab.burst("trusted", "ipv4", 2222, 2, "198.18.1.2") == [True] * 2
    assert lab.burst("trusted", "ipv4", 2222, 1, "198.18.1.3") == [False]  # same /24
    assert lab.burst("outside", "ipv6", 2222, 1) == [True]  # 2001:db8:2::/48 is another


@pytest.mark.parametrize("target", TARGETS)
def test_the_burst_is_what_the_profile_says_and_idling_does_not_renew_it(
    lab: Lab, target: str, write_profile: Callable[..., Path]
) -> None:
    """1/minute with a burst of 3: three at once, then one a minute. A source that waits
    12 seconds has earned a fifth of a connection, not a new burst (xt_hashlimit forgets
    an idle source after 10 seconds unless told otherwise)."""
    apply(lab, target, limited(write_profile, {"rate": "1/minute", "burst": 3}))
    lab.listen(["tcp:2222"])
    assert lab.burst("trusted", "ipv4", 2222, 5) == [True] * 3 + [False] * 2
    assert lab.burst("trusted", "ipv6", 2222, 4) == [True] * 3 + [False]
    time.sleep(12)
    assert lab.burst("trusted", "ipv4", 2222, 1) == [False]
    assert lab.burst("trusted", "ipv6", 2222, 1) == [False]


@pytest.mark.parametrize("target", TARGETS)
def test_base_accepts_mld_queries_from_the_link_only(lab: Lab, target: str) -> None:
    """RFC 4890 §4.4.1, RFC 3810 §5: a query comes from a link-local address with hop
    limit 1. A switch that snoops MLD stops forwarding multicast (neighbour discovery's
    too) to a host that never answers its queries."""
    apply(lab, target, "base")
    sends = [(1, "link"), (64, "link"), (1, "global")]
    assert lab.mld_queries_delivered("trusted", sends) == [1, 0, 0]
