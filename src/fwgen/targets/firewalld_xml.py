"""firewalld's XML, made safe: escaped text and attributes, comments, and the rich rules
and ports a rule of the Policy becomes (`fwgen.targets.firewalld` decides what to write)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from fwgen.errors import printable
from fwgen.policy.ir import PORTED, Family, Policy, PortRange, Rule
from fwgen.targets.text import plain_ascii

# ICMP types as firewalld names them (its icmptypes), by fwgen's (nftables') names. The
# nftables backend of firewalld matches these names by type numbers of its own code, so
# no file under /etc/firewalld/icmptypes changes what they mean. Types it has no name
# for (MLD, router renumbering, inverse ND, info and address-mask) are missing.
ICMP_NAMES: dict[str, dict[str, str]] = {
    "icmp": {
        name: name
        for name in (
            "echo-reply",
            "destination-unreachable",
            "source-quench",
            "redirect",
            "echo-request",
            "router-advertisement",
            "router-solicitation",
            "time-exceeded",
            "parameter-problem",
            "timestamp-request",
            "timestamp-reply",
        )
    },
    "icmpv6": {
        "destination-unreachable": "destination-unreachable",
        "packet-too-big": "packet-too-big",
        "time-exceeded": "time-exceeded",
        "parameter-problem": "parameter-problem",
        "echo-request": "echo-request",
        "echo-reply": "echo-reply",
        "nd-router-solicit": "router-solicitation",
        "nd-router-advert": "router-advertisement",
        "nd-neighbor-solicit": "neighbour-solicitation",
        "nd-neighbor-advert": "neighbour-advertisement",
        "nd-redirect": "redirect",
    },
}
# A protocol as a rich rule's <protocol value> names it (/etc/protocols).
PROTOCOL = {
    "tcp": "tcp",
    "udp": "udp",
    "sctp": "sctp",
    "icmp": "icmp",
    "icmpv6": "ipv6-icmp",
    "esp": "esp",
    "ah": "ah",
    "gre": "gre",
}
ICMP_FAMILY: dict[str, Family] = {"icmp": "ipv4", "icmpv6": "ipv6"}
LOG_PREFIX_CHARS = 60
LINK_LOCAL = "fe80::/10"
LINK_MULTICAST = "ff02::/16"


def xml_text(text: str) -> str:
    """Text safe between tags and inside double-quoted attributes: printable, one line,
    with ``&``, ``<``, ``>``, ``"`` and ``'`` as entities."""
    return (
        printable(text)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
    )


def xml_comment(text: str) -> str:
    """Text safe inside ``<!-- -->``: printable, one line, no ``--`` (which XML forbids
    there, and which alone could close the comment) and no trailing ``-``."""
    clean = printable(text)
    while "--" in clean:
        clean = clean.replace("--", "- -")
    return clean + " " if clean.endswith("-") else clean


def attrs(**values: str | int | None) -> str:
    """`` name="value"`` for each value given, escaped; None leaves it out."""
    return "".join(
        f' {k.replace("_", "-")}="{xml_text(str(v))}"' for k, v in values.items() if v is not None
    )


def port_text(port: PortRange) -> str:
    return f"{port.start}-{port.end}" if port.start != port.end else str(port.start)


def log_prefix(rule: Rule) -> str:
    return plain_ascii(f"fwgen {rule.direction} {rule.name}: ", LOG_PREFIX_CHARS)


@dataclass(frozen=True)
class Peer:
    """Where a rich rule's other end is: an address, an ipset, or anywhere (both empty)."""

    address: str = ""
    ipset: str = ""

    def element(self, tag: str) -> str:
        if self.address:
            return f"<{tag}{attrs(address=self.address)}/>"
        if self.ipset:
            return f"<{tag}{attrs(ipset=self.ipset)}/>"
        return ""


def rich_rule(
    family: Family | None,
    remote: Peer,
    local: str,
    element: str,
    rule: Rule,
    action: str = "accept",
    priority: int | None = None,
) -> list[str]:
    """One ``<rule>`` accepting (or dropping) what *element* (a port, a protocol, an ICMP
    type) names, from or to *remote*, at *local*, logged when an accepting rule asks for
    it; *action* a word, or the XML of an action (`firewalld_deny`)."""
    inbound = rule.direction == "in"
    source, destination = (remote, Peer(local)) if inbound else (Peer(local), remote)
    inner = [source.element("source"), destination.element("destination"), element]
    if rule.log and action == "accept":
        inner.append(f"<log{attrs(prefix=log_prefix(rule), level='info')}/>")
    inner.append(action if action.startswith("<") else f"<{action}/>")
    return [
        f"<rule{attrs(family=family, priority=priority)}>",
        *(f"  {i}" for i in inner if i),
        "</rule>",
    ]


def elements(rule: Rule) -> tuple[list[str], list[str]]:
    """What the rule matches besides addresses, one XML element per rich rule: its port
    ranges, its ICMP types firewalld names, or its whole protocol; and the ICMP types
    firewalld has no name for (left to the caller)."""
    if rule.proto in PORTED and rule.ports:
        return [f"<port{attrs(port=port_text(p), protocol=rule.proto)}/>" for p in rule.ports], []
    if rule.proto not in ICMP_NAMES or not rule.icmp_types:
        return [f"<protocol{attrs(value=PROTOCOL[rule.proto])}/>"], []
    names = ICMP_NAMES[rule.proto]
    if not rule.icmp_types:
        return [f"<protocol{attrs(value=PROTOCOL[rule.proto])}/>"], []
    known = [f"<icmp-type{attrs(name=names[t])}/>" for t in rule.icmp_types if t in names]
    return known, [t for t in rule.icmp_types if t not in names]


def link_scope_peers(policy: Policy, rule: Rule) -> list[str]:
    """Where an ICMPv6 rule's other end is only ever on the link: link-local sources
    (inbound), link-local addresses or link-scope multicast groups (outbound, where any
    destination counts as ff02::/16, which MLD reports go to). Empty when it may be
    off-link.

    What such peers send or are sent that firewalld has no ICMP type for (MLD, mostly) is
    admitted as all ICMPv6: from the link, Linux acts on no other ICMPv6 but echo requests
    (which `fwgen.targets.firewalld` keeps out unless the profile admits them), router
    solicitations (answered by a router's daemon, not the kernel) and what firewalld and
    the profile admit anyway."""
    if rule.proto != "icmpv6":
        return []
    addresses = policy.remote_addresses(rule)
    outbound = rule.direction == "out"
    if addresses is None:
        return [LINK_MULTICAST] if outbound else []
    scopes = [ipaddress.ip_network(LINK_LOCAL)]
    if outbound:
        scopes.append(ipaddress.ip_network(LINK_MULTICAST))
    nets = [ipaddress.ip_network(a) for a in addresses]
    within = all(n.version == 6 and any(n.subnet_of(s) for s in scopes) for n in nets)  # type: ignore[arg-type]
    return addresses if nets and within else []
