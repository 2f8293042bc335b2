"""`fwgen shadow report`: what a profile would have cut on a live host, grouped by service.

Each group names the service as `discover` does (the port database's entry for that
port), sums the new connections, gives when they were first and last seen and from
where, and suggests the profile lines that would admit them, each with the findings
`fwgen check` would give those lines in this profile.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import cast

from fwgen.policy.ir import FAMILIES, PORTED, AddressSet, Policy, PortRange, Proto, Rule
from fwgen.policy.shadowed import Recorded, Sighting
from fwgen.profile.fields import PORTLESS
from fwgen.profile.portdb import Catalogue
from fwgen.review.check import Finding, check_policy

SHOWN = 16  # source prefixes a suggestion lists; the JSON has them all
SUGGESTION = "<shadow report>"


@dataclass
class Group:
    """The new connections of one direction to one service (or port)."""

    direction: str
    service: str
    title: str
    proto: str
    port: int
    packets: int = 0
    bytes: int = 0
    first_seen: float | None = None
    last_seen: float | None = None
    networks: dict[str, int] = field(default_factory=dict)  # prefix → packets
    lines: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def add(self, seen: Sighting) -> None:
        self.packets += seen.packets
        self.bytes += seen.bytes
        self.networks[seen.network] = self.networks.get(seen.network, 0) + seen.packets
        for name, pick in (("first_seen", min), ("last_seen", max)):
            value = getattr(seen, name)
            if value is not None:
                old = getattr(self, name)
                setattr(self, name, value if old is None else pick(old, value))

    def busiest(self) -> list[str]:
        return sorted(self.networks, key=lambda n: (-self.networks[n], n))


def _name(ports: Catalogue, seen: Sighting) -> tuple[str, str]:
    """The service a port is, as `discover` names it, and its title."""
    if seen.proto in PORTED:
        named = ports.named_at(seen.port, seen.port, seen.proto)
        if named:
            return named[0].name, named[0].title
        return f"port-{seen.port}-{seen.proto}", "not in the port database"
    if seen.proto in PORTLESS:
        return seen.proto, "an IP protocol without ports"
    return seen.proto.replace(" ", "-"), "a protocol without ports"


def group(recorded: Recorded, ports: Catalogue) -> list[Group]:
    """The sightings by direction, service and port, the busiest first."""
    groups: dict[tuple[str, str, int], Group] = {}
    for seen in recorded.sightings:
        key = (seen.direction, seen.proto, seen.port)
        if key not in groups:
            service, title = _name(ports, seen)
            groups[key] = Group(seen.direction, service, title, seen.proto, seen.port)
        groups[key].add(seen)
    return sorted(groups.values(), key=lambda g: (-g.packets, g.direction, g.service, g.port))


def _suggest(group: Group) -> list[str]:
    """Profile lines that admit exactly what was seen (the busiest SHOWN prefixes)."""
    head = "inbound:" if group.direction == "in" else "outbound:"
    way = "from" if group.direction == "in" else "to"
    if group.proto in PORTLESS:
        shown = group.busiest()[:SHOWN]
        return [head, f"  - protocol: {group.proto}", f"    {way}: [{', '.join(shown)}]"]
    if group.proto not in PORTED:
        return [
            f"# {group.proto}: a profile names ICMP by type and other protocols not at all; "
            "the shadow does not record which type: check what sends it before admitting it"
        ]
    shown = group.busiest()[:SHOWN]
    rest = len(group.networks) - len(shown)
    lines = [
        head,
        f"  - port: {group.port}/{group.proto}",
        f"    name: {group.service}",
        f"    {way}: [{', '.join(shown)}]",
    ]
    if rest:
        lines.append(f"    # and {rest} more prefixes (see --format json)")
    return lines


def _findings(policy: Policy, ports: Catalogue, groups: list[Group]) -> None:
    """What `check` says of each suggestion in this profile: the suggestions are added to
    the Policy as rules of their own, each with its own origin, and checked together."""
    rules, sets = [], []
    for i, found in enumerate(groups, 1):
        if found.proto not in (*PORTED, *PORTLESS):
            continue
        shown = found.busiest()[:SHOWN]
        name = f"shadow_suggestion_{i}"
        v4 = tuple(n for n in shown if ":" not in n)
        v6 = tuple(n for n in shown if ":" in n)
        origin = f"{SUGGESTION}:{i}"
        sets.append(AddressSet(name=name, ipv4=v4, ipv6=v6, origin=origin, written=tuple(shown)))
        rules.append(
            Rule(
                direction="in" if found.direction == "in" else "out",
                proto=cast(Proto, found.proto),  # one of PORTED or PORTLESS (above)
                ports=(PortRange(start=found.port, end=found.port),) if found.port else (),
                remote=name,
                families=tuple(f for f in FAMILIES if (v4 if f == "ipv4" else v6)),
                name=found.service,
                origin=origin,
            )
        )
    if not rules:
        return
    extended = policy.replace(rules=(*policy.rules, *rules), sets=(*policy.sets, *sets))
    by_origin: dict[str, list[Finding]] = {}
    for finding in check_policy(extended, ports):
        by_origin.setdefault(finding.location, []).append(finding)
    for i, found in enumerate(groups, 1):
        found.findings = [f for f in by_origin.get(f"{SUGGESTION}:{i}", []) if f.code != "FW007"]


def report(policy: Policy, recorded: Recorded, ports: Catalogue) -> list[Group]:
    """The groups of *recorded*, each with its suggestion and that suggestion's findings."""
    groups = group(recorded, ports)
    for found in groups:
        found.lines = _suggest(found)
    _findings(policy, ports, groups)
    return groups


def when(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def notes(recorded: Recorded) -> list[str]:
    """What the reader must know besides the groups: a full set, and what was left out."""
    out = [
        f"the shadow's set for {direction}bound {family} was full: {count} new connections "
        "were not recorded; stop it and start it again with a larger --size (or shorter "
        "--prefix-v4/--prefix-v6)"
        for (direction, family), count in sorted(recorded.unrecorded.items())
    ]
    return out + recorded.ignored


def as_text(groups: list[Group], recorded: Recorded) -> str:
    lines = [
        f"shadow of '{recorded.profile}', loaded {when(recorded.loaded_at)}: "
        + (f"{len(groups)} services would have been cut" if groups else "it would have cut nothing")
    ]
    for found in groups:
        way = "from" if found.direction == "in" else "to"
        port = f"{found.port}/{found.proto}" if found.proto in PORTED else found.proto
        lines += [
            "",
            f"{found.service} ({port}, {found.direction}bound; {found.title}): "
            f"{found.packets:,} new connections, {found.bytes:,} bytes; first seen "
            f"{when(found.first_seen)}, last seen {when(found.last_seen)}",
            f"  {way} {', '.join(found.busiest()[:SHOWN])}"
            + (f" +{len(found.networks) - SHOWN} more" if len(found.networks) > SHOWN else ""),
            "  to admit it, add to the profile:",
            *(f"    {line}" for line in found.lines),
            *(f"  check: {f.level} {f.code}: {f.message}" for f in found.findings),
        ]
    lines += [f"note: {text}" for text in notes(recorded)]
    return "\n".join(lines) + "\n"


def as_json(groups: list[Group], recorded: Recorded) -> dict[str, object]:
    return {
        "profile": recorded.profile,
        "loaded_at": recorded.loaded_at,
        "prefix_v4": recorded.prefix_v4,
        "prefix_v6": recorded.prefix_v6,
        "size": recorded.size,
        "unrecorded": [
            {"direction": d, "family": f, "connections": n}
            for (d, f), n in sorted(recorded.unrecorded.items())
        ],
        "notes": notes(recorded),
        "groups": [
            {
                "direction": g.direction,
                "service": g.service,
                "title": g.title,
                "proto": g.proto,
                "port": g.port,
                "connections": g.packets,
                "bytes": g.bytes,
                "first_seen": g.first_seen,
                "last_seen": g.last_seen,
                "networks": [{"network": n, "connections": g.networks[n]} for n in g.busiest()],
                "suggestion": "\n".join(g.lines) + "\n",
                "findings": [f.as_dict() for f in g.findings],
            }
            for g in groups
        ],
    }
