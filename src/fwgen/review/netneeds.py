"""What a host needs to keep its own networking, and the Policies that take it away.

Each problem is a `fwgen check` finding (with its code), a warning of `render`,
`build` and `apply`, and with ``--strict`` an error in all of them: a host that
loses its neighbours, its replies, its own loopback traffic, its names or its
address is cut off as surely as one whose SSH rule is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from fwgen.policy.ir import Policy, Rule
from fwgen.policy.placeholders import empty_groups, empty_networks, policy_warnings
from fwgen.profile.addresses import parse_network
from fwgen.review.denycheck import lockouts

# What IPv6 needs from the link: neighbour solicitations and advertisements (IPv6's
# ARP), from any address; multicast listener queries, from link-local addresses (a
# switch that snoops MLD stops sending the solicitations of a host that never answers);
# router advertisements too, for a host whose addresses or routes are not static.
NEIGHBOUR_DISCOVERY = ("nd-neighbor-solicit", "nd-neighbor-advert")
MLD_QUERY = "mld-listener-query"
ROUTER_ADVERT = "nd-router-advert"
LINK_LOCAL = parse_network("fe80::/10")[1:]  # (first, last)
# What a DHCP client sends: (protocol, port, family, name).
DHCP_OUT = (("udp", 67, "ipv4", "DHCP (67/udp)"), ("udp", 547, "ipv6", "DHCPv6 (547/udp)"))


@dataclass(frozen=True)
class Problem:
    """Something the host needs that the Policy takes away: its finding code and text."""

    code: str
    message: str
    location: str

    def __str__(self) -> str:
        return f"{self.location}: {self.code}: {self.message}"


def lets_out(policy: Policy, proto: str, port: int, family: str | None = None) -> bool:
    """Whether an outbound rule allows *port*/*proto* (to some address, of *family*)."""
    return any(
        r.direction == "out"
        and r.proto == proto
        and any(p.start <= port <= p.end for p in r.ports)
        and (family is None or family in r.families)
        for r in policy.rules
    )


def _accepts(policy: Policy, rule: Rule, icmp_type: str) -> bool:
    """Whether *rule* accepts *icmp_type* from any address (an MLD query: from every
    link-local address) to every address of the host."""
    if not (rule.direction == "in" and rule.proto == "icmpv6" and icmp_type in rule.icmp_types):
        return False
    if rule.local:
        return False
    if rule.remote is None:
        return True
    return icmp_type == MLD_QUERY and policy.address_set(rule.remote).runs("ipv6").holds(
        *LINK_LOCAL
    )


def _neighbour_discovery(policy: Policy) -> list[str]:
    """The neighbour-discovery messages no inbound rule accepts from where they come."""
    needed = [
        *NEIGHBOUR_DISCOVERY,
        *([ROUTER_ADVERT] if policy.address != "static" else []),
        MLD_QUERY,
    ]
    return [t for t in needed if not any(_accepts(policy, r, t) for r in policy.rules)]


def problems(policy: Policy) -> list[Problem]:
    """Every way *policy* cuts the host off its own networking."""
    top = f"{policy.files[-1]}:1"
    out: list[Problem] = []
    missing = _neighbour_discovery(policy)
    if missing:
        out.append(
            Problem(
                "FW016",
                f"IPv6 neighbour discovery is dropped ({', '.join(missing)} not accepted): the "
                "host loses its IPv6 neighbours, so IPv6 connections (SSH too) die when the "
                "neighbour cache expires; add `extends: base`, or inbound rules for "
                f"`icmpv6: [{', '.join(missing)}]` from any address (MLD queries: from "
                "fe80::/10)",
                top,
            )
        )
    if not policy.established:
        out.append(
            Problem(
                "FW017",
                "established: false drops the replies to every connection this host opens "
                "(DNS, updates, NTP) and, with outbound deny, its answers to every connection "
                "it accepts; remove `established: false`",
                top,
            )
        )
    if not policy.loopback:
        out.append(
            Problem(
                "FW018",
                "loopback: false drops what programs on this host send each other (a local "
                "DNS resolver at 127.0.0.53, databases on localhost); remove `loopback: false`",
                top,
            )
        )
    if policy.defaults.outbound == "drop" and not lets_out(policy, "udp", 53):
        out.append(
            Problem(
                "FW009",
                "outbound is default-deny but DNS (53/udp) is not allowed out: name lookups "
                "will fail",
                top,
            )
        )
    return out + _dhcp(policy, top)


def _dhcp(policy: Policy, top: str) -> list[Problem]:
    """Outbound deny without DHCP cuts off a host that takes its address from DHCP when
    its lease runs out; `options.address` says whether that is the case."""
    if policy.defaults.outbound != "drop" or policy.address == "static":
        return []
    missing = [
        name for proto, port, family, name in DHCP_OUT if not lets_out(policy, proto, port, family)
    ]
    if not missing:
        return []
    return [
        Problem(
            "FW014",
            f"outbound is default-deny but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not allowed out: a host that takes its "
            "address from DHCP loses it when the lease runs out; set `options: {address: dhcp}` "
            "to let DHCP out, or `address: static` if the addresses are set by hand",
            top,
        )
    ]


def warnings(policy: Policy) -> tuple[list[str], list[str]]:
    """What `render`, `build` and `apply` warn about whatever the target: (what ``--strict``
    lets pass, what it refuses). It refuses whatever cuts the host off (`problems`),
    rules that admit no one because their networks are empty (an unset ``$ADMINS`` in
    ``--set admins=$ADMINS`` must not quietly give a ruleset that locks the admins out),
    and rules a deny or reject rule leaves nothing to admit (a blocklist file that holds
    the admins' network: `fwgen.review.denycheck.lockouts`)."""
    refused = [
        *empty_networks(policy),
        *empty_groups(policy, placeholder=False),
        *(str(p) for p in problems(policy)),
        *lockouts(policy),
    ]
    return [w for w in policy_warnings(policy) if w not in refused], refused
