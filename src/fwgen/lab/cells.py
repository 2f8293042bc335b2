"""What `fwgen verify` probes: the cells a Policy implies, and what each must get.

A cell is one packet the lab sends: a TCP connection or a UDP datagram to one port of
the server, or an echo request, from one source address, over one family, arriving
on one of the server's interfaces. Its expected answer comes from the Policy alone
(`decide`): the first deny rule that matches blocks it, else the first accept rule
that matches opens it, else the default inbound policy blocks it.

The sources: the lab client's own address on each link, and for every network an
inbound rule names, an address inside it and one outside it. The ports: every
allowed port range's first and last port and its neighbours on both sides (which
may be closed), and a few ports no built-in profile opens. The interfaces: one link
per interface name the rules name (a glob gets a name it matches), and one more
that no rule names.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

from fwgen.policy.ir import FAMILIES, PORTED, Family, Policy, Rule

State = Literal["open", "blocked"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Ports no built-in profile opens: a cell that must stay closed on every host.
CLOSED_SAMPLES = ("tcp:23", "tcp:3389", "udp:9", "udp:161")
MAX_LINKS = 8
MAX_SPECS = 200
# Addresses a source outside a network may take when the lab client's own is inside.
OUTSIDE = {
    "ipv4": ("10.254.254.77", "172.31.254.77", "192.168.254.77", "100.127.254.77"),
    "ipv6": ("fd00:fe::77", "2a00:fe::77", "fc00:fe::77", "2600:fe::77"),
}


def link_v4(i: int) -> str:
    """The lab's IPv4 network of link *i* (see fwgen.lab.netns)."""
    return f"198.18.{i}.0/24"


def link_v6(i: int) -> str:
    return f"2001:db8:{i}::/64"


def client_address(i: int, family: Family) -> str:
    return f"198.18.{i}.2" if family == "ipv4" else f"2001:db8:{i}::2"


def server_address(i: int, family: Family) -> str:
    return f"198.18.{i}.1" if family == "ipv4" else f"2001:db8:{i}::1"


@dataclass(frozen=True)
class Cell:
    kind: Literal["port", "ping", "neighbours"]
    link: int
    interface: str
    family: Family
    source: str
    about: str  # how the source relates to the profile's networks
    spec: str  # "tcp:22", or "echo-request"
    expected: State
    why: str  # the deciding rule, or "default policy"

    def words(self) -> str:
        if self.kind == "neighbours":
            return f"IPv6 neighbour discovery on {self.interface}"
        return (
            f"{self.spec} from {self.source} ({self.about}) over {self.family} on {self.interface}"
        )


@dataclass
class Plan:
    links: dict[int, str] = field(default_factory=dict)  # number → the server's end
    sources: dict[int, list[str]] = field(default_factory=dict)  # extra client addresses
    specs: list[str] = field(default_factory=list)  # what the server listens on
    cells: list[Cell] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # what is not probed, and why
    loopback: bool = True  # the host reaches itself (the Policy's `loopback`)
    # Every other TCP port is scanned from one source per link and family: (link,
    # family, source). A source the Policy may reject TCP from is never one (its RST
    # would look like the host's own).
    scans: list[tuple[int, Family, str]] = field(default_factory=list)


def plan(policy: Policy, default_interface: str, first: int = 1) -> Plan:
    """The lab *policy* needs and the cells to probe in it, its links numbered from
    *first*; *default_interface* names the server's end of a link no rule names (a
    ``%d`` is the link's number)."""
    out = Plan(loopback=policy.loopback)
    inbound = [r for r in (*policy.denies, *policy.rules) if r.direction == "in"]
    names = _interfaces(inbound, default_interface, first, out.skipped)
    out.links = dict(enumerate(names, start=first))
    out.specs = _specs(inbound, out.skipped)
    for i, interface in out.links.items():
        extra: list[str] = []
        for family in FAMILIES:
            sources = _sources(policy, inbound, i, family, out.skipped)
            extra += [s for s in sources if s != client_address(i, family)]
            scan = [s for s in sources if not rejects_tcp(policy, family, s, interface)]
            if scan:
                out.scans.append((i, family, scan[0]))
            else:
                out.skipped.append(f"other TCP ports over {family} on {interface}: rejected")
            for source in sources:
                words = about(policy, source, family)
                for spec in out.specs:
                    proto, port = spec.split(":")
                    found = decide(policy, family, source, proto, int(port), "", interface)
                    out.cells.append(
                        Cell("port", i, interface, family, source, words, spec, *found)
                    )
                echo = "echo-request"
                found = decide(policy, family, source, _icmp(family), 0, echo, interface)
                out.cells.append(Cell("ping", i, interface, family, source, words, echo, *found))
        out.sources[i] = extra
    for rule in inbound:
        if rule.proto not in (*PORTED, "icmp", "icmpv6", "all") or rule.proto == "sctp":
            out.skipped.append(f"{_name(rule)}: {rule.proto} is not probed")
        elif rule.local:
            out.skipped.append(f"{_name(rule)}: only to {', '.join(rule.local)}; not probed")
    out.skipped = sorted(set(out.skipped))
    return out


def decide(
    policy: Policy,
    family: Family,
    source: str,
    proto: str,
    port: int,
    icmp_type: str,
    interface: str,
) -> tuple[State, str]:
    """What the Policy answers to one packet to the server's own address on a link:
    open or blocked, and the rule that decides ("default policy" when none does)."""
    address = ipaddress.ip_address(source)
    for rule in policy.denies:
        if _matches(policy, rule, family, address, proto, port, icmp_type, interface):
            return "blocked", _name(rule)
    for rule in policy.rules:
        if _matches(policy, rule, family, address, proto, port, icmp_type, interface):
            return "open", _name(rule)
    return "blocked", "default policy"


def tcp_open(policy: Policy, family: Family, source: str, interface: str) -> set[int]:
    """The TCP ports the Policy opens to *source* (see `decide`), all at once."""
    address = ipaddress.ip_address(source)
    relevant = [
        (rule.action == "accept", rule.ports)
        for rule in (*policy.denies, *policy.rules)
        if _matches(policy, rule, family, address, "tcp", None, "", interface)
    ]
    found = set()
    for port in range(1, 65536):
        for accept, ports in relevant:
            if not ports or any(p.start <= port <= p.end for p in ports):
                if accept:
                    found.add(port)
                break
    return found


def rejects_tcp(policy: Policy, family: Family, source: str, interface: str) -> bool:
    """Whether the Policy may answer a TCP connection from *source* with a reject."""
    address = ipaddress.ip_address(source)
    if policy.refuse == "reject" and (
        policy.refuse_from is None or _inside(policy, policy.refuse_from, family, address)
    ):
        return True
    return any(
        rule.action == "reject"
        and _matches(policy, rule, family, address, "tcp", None, "", interface)
        for rule in policy.denies
    )


def _matches(
    policy: Policy,
    rule: Rule,
    family: Family,
    address: IPAddress,
    proto: str,
    port: int | None,
    icmp_type: str,
    interface: str,
) -> bool:
    """Whether *rule* matches the packet (any port when *port* is None)."""
    if rule.direction != "in" or family not in rule.families or rule.local or rule.idle():
        return False
    if rule.proto not in (proto, "all"):
        return False
    if port is not None and rule.ports and not any(p.start <= port <= p.end for p in rule.ports):
        return False
    if rule.icmp_types and icmp_type not in rule.icmp_types:
        return False
    if rule.interfaces and not any(_named(interface, i) for i in rule.interfaces):
        return False
    return rule.remote is None or _inside(policy, rule.remote, family, address)


def _inside(policy: Policy, name: str, family: Family, address: IPAddress) -> bool:
    return policy.address_set(name).runs(family).holds(int(address), int(address))


def _named(interface: str, pattern: str) -> bool:
    return interface == pattern or (pattern.endswith("*") and interface.startswith(pattern[:-1]))


def _icmp(family: Family) -> str:
    return "icmp" if family == "ipv4" else "icmpv6"


def _name(rule: Rule) -> str:
    return f"{rule.name} ({rule.origin})"


def _interfaces(inbound: list[Rule], default: str, first: int, skipped: list[str]) -> list[str]:
    """A name for every interface the rules name (``wg*``: ``wg0``), then one no rule
    names."""
    patterns = sorted({i for r in inbound for i in r.interfaces})
    names: list[str] = []
    for pattern in patterns:
        name = pattern[:-1] + "0" if pattern.endswith("*") else pattern
        if name == "lo":
            skipped.append("rules on the loopback interface are not probed")
        elif name not in names:
            names.append(name)
    if len(names) >= MAX_LINKS:
        skipped.append(f"interfaces after the first {MAX_LINKS - 1} are not probed")
        names = names[: MAX_LINKS - 1]
    other = default.replace("%d", str(first + len(names)))
    while any(_named(other, p) for p in patterns):
        other = "x" + other[:14]
    return [*names, other]


def _specs(inbound: list[Rule], skipped: list[str]) -> list[str]:
    """Each port range's ends and their neighbours, per protocol, and `CLOSED_SAMPLES`."""
    specs = set(CLOSED_SAMPLES)
    for rule in inbound:
        protos = [rule.proto] if rule.proto in ("tcp", "udp") else []
        if rule.proto == "all" and rule.ports:
            protos = ["tcp", "udp"]
        for proto in protos:
            for ports in rule.ports or ():
                for port in (ports.start - 1, ports.start, ports.end, ports.end + 1):
                    if 0 < port < 65536:
                        specs.add(f"{proto}:{port}")
    ordered = sorted(specs, key=lambda s: (s.split(":")[0], int(s.split(":")[1])))
    if len(ordered) > MAX_SPECS:
        skipped.append(f"ports after the first {MAX_SPECS} are not probed")
    return ordered[:MAX_SPECS]


def _sources(
    policy: Policy, inbound: list[Rule], link: int, family: Family, skipped: list[str]
) -> list[str]:
    """The lab client's address on *link*, and one address inside and one outside each
    network the inbound rules name (or the refusal's network)."""
    own = client_address(link, family)
    found = [own]
    names = sorted({r.remote for r in inbound if r.remote} | {policy.refuse_from or ""} - {""})
    for name in names:
        runs = policy.address_set(name).runs(family)
        if not runs:
            continue
        for address in (
            _inside_sample(policy, name, family, link),
            _outside(policy, name, link, family),
        ):
            if address and address not in found:
                found.append(address)
        if _inside_sample(policy, name, family, link) is None:
            skipped.append(
                f"network '{name}' ({family}, {policy.address_set(name).origin}): "
                "no address inside it a lab client can take "
                f"(link-local, multicast, too small, or inside the lab's own {LAB[family]}); "
                "probed from outside only"
            )
    return found


def _inside_sample(policy: Policy, name: str, family: Family, link: int) -> str | None:
    """An address of network *name* for link *link* (each link its own), or None."""
    own = ipaddress.ip_address(client_address(link, family))
    if _inside(policy, name, family, own):
        return str(own)
    for _, network in policy.address_set(name).runs(family).networks():
        size = network.num_addresses
        for offset in (1 + link, size // 2 + link, link - 1):
            if 0 <= offset < size:
                address = network.network_address + offset
                if _usable(address):
                    return str(address)
    return None


def _outside(policy: Policy, name: str, link: int, family: Family) -> str | None:
    for text in (client_address(link, family), *OUTSIDE[family]):
        candidate = ipaddress.ip_address(text)
        if text != client_address(link, family):
            candidate = candidate + link - 1  # each link its own
        if not _inside(policy, name, family, candidate):
            return str(candidate)
    return None


def _usable(address: IPAddress) -> bool:
    """Whether a lab client may send from *address*: unicast, not the lab's own links."""
    if (
        address.is_multicast
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_reserved
    ):
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return (
            address not in ipaddress.ip_network(LAB["ipv4"])
            and address not in ipaddress.ip_network("0.0.0.0/8")
            and (address != ipaddress.IPv4Address("255.255.255.255"))
        )
    return address not in ipaddress.ip_network(LAB["ipv6"])


LAB = {"ipv4": "198.18.0.0/16", "ipv6": "2001:db8::/40"}  # the lab's links (fwgen.lab.netns)


def about(policy: Policy, source: str, family: Family) -> str:
    address = ipaddress.ip_address(source)
    inside = [s.name for s in policy.sets if _inside(policy, s.name, family, address)]
    return f"in {', '.join(inside)}" if inside else "in no network of the profile"
