"""Deny and reject rules, the default's reject, connection caps and blocklists, in a real
kernel, on nftables, iptables and ufw, over IPv4 and IPv6."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fwgen.policy.resolve import resolve_profile
from fwgen.targets import RenderOptions
from fwgen.targets.render import render
from tests.kernel.lab import Lab

pytestmark = pytest.mark.kernel

TARGETS = ["nftables", "iptables", "ufw"]
FAMILIES = ("ipv4", "ipv6")


def profile(write_profile: Callable[..., Path], **fields: Any) -> Path:
    return write_profile(json.dumps({"description": "deny probe", "extends": "base", **fields}))


@pytest.mark.parametrize("target", TARGETS)
def test_a_deny_inside_an_allowed_any_blocks_exactly_that_subnet(
    lab: Lab, target: str, write_profile: Callable[..., Path]
) -> None:
    """8080 is open to any address but the trusted client's link (both families), which a
    deny of every protocol blocks; 8081 is open to all, but its reject rule refuses the
    outside client there with an RST."""
    lab.listen(["tcp:8080", "tcp:8081", "tcp:8082"])
    written = profile(
        write_profile,
        inbound=[
            {"port": "8080/tcp", "name": "web"},
            {"port": "8081/tcp", "name": "alt"},
            {"from": ["198.18.1.0/24", "2001:db8:1::/64"], "action": "deny"},
            {
                "port": "8081/tcp",
                "name": "alt-refused",
                "action": "reject",
                "from": ["198.18.2.0/24", "2001:db8:2::/64"],
            },
        ],
    )
    lab.apply(target, render(resolve_profile(str(written)), target))
    # A deny of every protocol takes neighbour discovery from those sources too: an IPv6
    # client on the link may fail to resolve the host (unreachable) instead of timing out.
    blocked = ("timeout", "unreachable")
    for family in FAMILIES:
        assert lab.answer("trusted", family, "tcp:8080")[0] in blocked, family
        assert lab.answer("trusted", family, "tcp:8081")[0] in blocked, family
        assert lab.answer("outside", family, "tcp:8080")[0] == "open", family
        refused, seconds = lab.answer("outside", family, "tcp:8081")
        assert (refused, seconds < 0.5) == ("refused", True), (family, refused, seconds)
        # the default stays a silent drop where refuse is off
        assert lab.answer("outside", family, "tcp:8082")[0] == "timeout", family


@pytest.mark.parametrize("outbound", ["accept", "deny"])
@pytest.mark.parametrize("target", TARGETS)
def test_refuse_reject_answers_at_once_and_only_whom_it_names(
    lab: Lab, target: str, outbound: str, write_profile: Callable[..., Path]
) -> None:
    """refuse: reject refuses the trusted link's TCP with an RST and its UDP with a port
    unreachable, quickly; the outside link (not in refuse_from) still meets silence. The
    answers get out with outbound deny too (they belong to the refused connection)."""
    written = profile(
        write_profile,
        networks={"lan": ["198.18.1.0/24", "2001:db8:1::/64"]},
        options={"refuse": "reject", "refuse_from": "lan", "address": "static"},
        outbound="accept" if outbound == "accept" else [{"service": "dns"}],
    )
    lab.apply(target, render(resolve_profile(str(written)), target))
    for family in FAMILIES:
        result, seconds = lab.answer("trusted", family, "tcp:8082")
        assert (result, seconds < 0.5) == ("refused", True), (family, result, seconds)
        assert lab.answer("trusted", family, "udp:8083")[0] == "refused", family
        assert lab.answer("outside", family, "tcp:8082")[0] == "timeout", family


@pytest.mark.parametrize("target", TARGETS)
def test_a_connection_cap_admits_n_and_refuses_the_next(
    lab: Lab, target: str, write_profile: Callable[..., Path]
) -> None:
    cap = 2
    lab.listen(["tcp:8080"])
    written = profile(
        write_profile, inbound=[{"port": "8080/tcp", "name": "web", "connlimit": cap}]
    )
    lab.apply(target, render(resolve_profile(str(written)), target))
    for family in FAMILIES:
        held = [lab.hold("trusted", family, 8080) for _ in range(cap)]  # each connects, or fails
        assert lab.answer("trusted", family, "tcp:8080")[0] == "refused", family
        assert lab.answer("outside", family, "tcp:8080")[0] == "open", family
        for proc in held:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("still here\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "ok", family
            proc.kill()  # its connection closes with it
            proc.wait(timeout=10)
        # the cap counts open connections: closed ones free their places
        assert lab.answer("trusted", family, "tcp:8080")[0] == "open", family


SOURCES = ["198.18.2.50", "198.18.2.52", "198.18.2.60", "2001:db8:2::50", "2001:db8:2::60"]


def blocklist(path: Path, extra: list[str], v6: bool, size: int = 100_000) -> None:
    """*size* entries: *extra*, some IPv6 networks (if *v6*), then single IPv4 addresses
    of 10.0.0.0/8 (every other one, so none merge)."""
    nets = [f"2001:db8:ff:{i:x}::/64" for i in range(5000)] if v6 else []
    v4 = [f"10.{(2 * i) >> 16}.{((2 * i) >> 8) & 255}.{(2 * i) & 255}" for i in range(size)]
    path.write_text("# an abuse feed\n" + "\n".join([*extra, *nets, *v4][:size]) + "\n")


def rules_now(lab: Lab, target: str) -> str:
    if target == "nftables":
        return lab.run(lab.server, "nft", "-a", "-s", "list", "chain", "inet", "fwgen", "input")
    return "".join(lab.run(lab.server, tool, "-S") for tool in ("iptables", "ip6tables"))


@pytest.mark.parametrize("target", ["nftables", "iptables"])
def test_a_100000_entry_blocklist_and_its_updates_without_a_reload(
    lab: Lab, target: str, write_profile: Callable[..., Path]
) -> None:
    """A list of IPv4 addresses only, then one with IPv6 entries too, then IPv4 only
    again: each update takes effect without a rule reloaded, and an open connection
    from an unlisted source lives through them all."""
    lab.listen(["tcp:8080"])
    for address in SOURCES:
        lab.add_address("outside", address)
    written = profile(
        write_profile,
        networks={"abuse": [{"file": "abuse.txt"}]},
        inbound=[{"port": "8080/tcp", "name": "web"}, {"from": "abuse", "action": "deny"}],
    )
    listfile = written.parent / "abuse.txt"

    def reached() -> list[str]:
        """The sources of SOURCES that the list blocks."""
        return [
            source
            for source in SOURCES
            if lab.answer("outside", "ipv6" if ":" in source else "ipv4", "tcp:8080", source)[0]
            != "open"
        ]

    def update(extra: list[str], v6: bool) -> None:
        blocklist(listfile, extra, v6)
        sets = render(resolve_profile(str(written)), target, RenderOptions(sets_only=True))
        if target == "nftables":
            assert list(sets) == ["fwgen-sets.nft"]
            lab.nft(sets["fwgen-sets.nft"])
        else:
            assert list(sets) == ["ipsets"]
            lab.run(lab.server, "ipset", "restore", "-exist", stdin=sets["ipsets"])

    blocklist(listfile, ["198.18.2.50", "198.18.2.52"], v6=False)
    lab.apply(target, render(resolve_profile(str(written)), target))
    assert reached() == ["198.18.2.50", "198.18.2.52"]
    assert lab.answer("outside", "ipv4", "tcp:8080")[0] == "open"  # its own address: unlisted
    held = lab.hold("outside", "ipv4", 8080)
    before = rules_now(lab, target)
    # 198.18.2.50 leaves the list; 198.18.2.60 and the list's first IPv6 entries join it
    update(["198.18.2.52", "198.18.2.60", "2001:db8:2::50"], v6=True)
    assert reached() == ["198.18.2.52", "198.18.2.60", "2001:db8:2::50"]
    # and every IPv6 entry leaves it again
    update(["198.18.2.52"], v6=False)
    assert reached() == ["198.18.2.52"]
    assert rules_now(lab, target) == before  # not one rule reloaded
    assert held.stdin is not None and held.stdout is not None
    held.stdin.write("survived\n")
    held.stdin.flush()
    assert held.stdout.readline().strip() == "ok"
    # A reload of the whole ruleset works with the sets already loaded.
    blocklist(listfile, ["198.18.2.60"], v6=True)
    lab.apply(target, render(resolve_profile(str(written)), target))
    assert reached() == ["198.18.2.60"]


@pytest.mark.parametrize("target", TARGETS)
def test_an_outbound_deny_blocks_exactly_that_subnet(
    lab: Lab, target: str, write_profile: Callable[..., Path]
) -> None:
    """Outbound stays accept by default; a deny to the trusted link's networks stops the
    host's own connections there, and only there."""
    for name in ("trusted", "outside"):
        lab.listen_in(lab.clients[name].ns, ["tcp:9000"])
    written = profile(
        write_profile,
        outbound=[
            {"port": "1-65535/tcp", "name": "all-tcp"},
            {"to": ["198.18.1.0/24", "2001:db8:1::/64"], "action": "deny"},
        ],
        options={"address": "static"},
    )
    lab.apply(target, render(resolve_profile(str(written)), target))
    for family in FAMILIES:
        trusted, outside = (getattr(lab.clients[n], family) for n in ("trusted", "outside"))
        assert lab.probe_from(lab.server, trusted, ["tcp:9000"]) == {"tcp:9000": "blocked"}, family
        assert lab.probe_from(lab.server, outside, ["tcp:9000"]) == {"tcp:9000": "open"}, family
