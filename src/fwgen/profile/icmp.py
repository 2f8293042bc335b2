"""ICMP and ICMPv6 message types by their nftables names, with their numbers.

Neighbour-discovery messages are only valid with hop limit 255 (RFC 4861 §6-7),
and multicast listener discovery (MLD) messages with hop limit 1 (RFC 2710 §3,
RFC 3810 §5), so rules that accept them also match on it: a forged one from
off-link is dropped.
"""

from __future__ import annotations

ICMP_TYPES: dict[str, int] = {
    "echo-reply": 0,
    "destination-unreachable": 3,
    "source-quench": 4,
    "redirect": 5,
    "echo-request": 8,
    "router-advertisement": 9,
    "router-solicitation": 10,
    "time-exceeded": 11,
    "parameter-problem": 12,
    "timestamp-request": 13,
    "timestamp-reply": 14,
    "info-request": 15,
    "info-reply": 16,
    "address-mask-request": 17,
    "address-mask-reply": 18,
}

ICMPV6_TYPES: dict[str, int] = {
    "destination-unreachable": 1,
    "packet-too-big": 2,
    "time-exceeded": 3,
    "parameter-problem": 4,
    "echo-request": 128,
    "echo-reply": 129,
    "mld-listener-query": 130,
    "mld-listener-report": 131,
    "mld-listener-done": 132,
    "nd-router-solicit": 133,
    "nd-router-advert": 134,
    "nd-neighbor-solicit": 135,
    "nd-neighbor-advert": 136,
    "nd-redirect": 137,
    "router-renumbering": 138,
    "ind-neighbor-solicit": 141,
    "ind-neighbor-advert": 142,
    "mld2-listener-report": 143,
}

HOP_LIMIT_255 = frozenset(
    {
        "nd-router-solicit",
        "nd-router-advert",
        "nd-neighbor-solicit",
        "nd-neighbor-advert",
        "nd-redirect",
        "ind-neighbor-solicit",
        "ind-neighbor-advert",
    }
)

HOP_LIMIT_1 = frozenset(
    {"mld-listener-query", "mld-listener-report", "mld-listener-done", "mld2-listener-report"}
)

# Queries conntrack tracks as flows (nf_conntrack_proto_icmp/icmpv6): the second echo
# request of a `ping` is "established", as is every one of a flood.
QUERIES = frozenset({"echo-request", "timestamp-request", "info-request", "address-mask-request"})


def hop_limit(name: str) -> int | None:
    """The hop limit an ICMPv6 message of this type must arrive with, if the RFCs fix one."""
    if name in HOP_LIMIT_255:
        return 255
    return 1 if name in HOP_LIMIT_1 else None


# What a host sends when its outbound policy is deny, so that IPv6 keeps working.
OUTBOUND_ESSENTIAL_V6 = (
    "nd-neighbor-solicit",
    "nd-neighbor-advert",
    "nd-router-solicit",
    "mld2-listener-report",
)


def table(proto: str) -> dict[str, int]:
    return ICMP_TYPES if proto == "icmp" else ICMPV6_TYPES
