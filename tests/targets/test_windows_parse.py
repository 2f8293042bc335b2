"""Windows cannot be loaded here, so the generated script is parsed back into
rules and compared with the Policy: nothing added, lost, widened or narrowed."""

from __future__ import annotations

import re

import pytest

from fwgen.policy import Policy
from fwgen.render import render
from fwgen.resolve import resolve_profile
from tests.conftest import BUILTIN, EVERY_FEATURE

PARAM = re.compile(r"-(\w+) ((?:'(?:[^']|'')*'(?:,'(?:[^']|'')*')*)|\S+)")
STRING = re.compile(r"'((?:[^']|'')*)'")
ALL_V4 = "0.0.0.0-255.255.255.255"
ALL_V6 = "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
Parsed = tuple[str, str, tuple[str, ...], frozenset[str], str]


def values(text: str) -> list[str]:
    return [s.replace("''", "'") for s in STRING.findall(text)] or [text]


def parse_script(script: str) -> set[Parsed]:
    """(direction, protocol, ports or ICMP types, remote addresses, action) per New-NetFirewallRule."""
    out = set()
    for line in script.splitlines():
        if not line.startswith("New-NetFirewallRule "):
            continue
        params = {k: values(v) for k, v in PARAM.findall(line.split(" | ")[0])}
        ports = params.get("LocalPort") or params.get("RemotePort") or params.get("IcmpType") or []
        remote = frozenset(params.get("RemoteAddress", ["any"]))
        out.add(
            (
                params["Direction"][0],
                params["Protocol"][0],
                tuple(ports),
                remote,
                params["Action"][0],
            )
        )
    return out


def expected(policy: Policy) -> set[Parsed]:
    """The same tuples, read straight off the Policy."""
    from fwgen.icmp import ICMP_TYPES, ICMPV6_TYPES

    out = set()
    for rule in policy.rules:
        if not rule.families:
            continue
        if rule.remote is not None:
            remote = frozenset(
                a for f in rule.families for a in policy.address_set(rule.remote).family(f)
            )
        elif len(rule.families) == 2:
            remote = frozenset({"any"})
        else:
            remote = frozenset({ALL_V4 if rule.families == ("ipv4",) else ALL_V6})
        if rule.icmp_types:
            numbers = ICMP_TYPES if rule.proto == "icmp" else ICMPV6_TYPES
            ports = tuple(str(numbers[t]) for t in rule.icmp_types)
        else:
            ports = tuple(str(p) for p in rule.ports)
        protocol = {"tcp": "TCP", "udp": "UDP", "icmp": "ICMPv4", "icmpv6": "ICMPv6"}[rule.proto]
        direction = "Inbound" if rule.direction == "in" else "Outbound"
        out.add((direction, protocol, ports, remote, "Allow"))
    return out


@pytest.mark.parametrize("profile", [*BUILTIN, EVERY_FEATURE])
def test_script_means_exactly_the_policy(profile: str) -> None:
    policy = resolve_profile(profile)
    parsed = parse_script(render(policy, "windows")["fwgen.ps1"])
    assert parsed == expected(policy)
    assert parsed  # a profile with no rules would make this test vacuous


def test_the_parser_notices_a_widened_rule() -> None:
    policy = resolve_profile("webserver")
    script = render(policy, "windows")["fwgen.ps1"]
    widened = script.replace(" -RemoteAddress '198.51.100.0/24','2001:db8:100::/48'", "")
    assert widened != script
    assert parse_script(widened) != expected(policy)
