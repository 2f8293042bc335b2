"""nftables: one ``inet fwgen`` table, replaced atomically each time the file is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fwgen.icmp import HOP_LIMIT_255
from fwgen.policy import SECONDS, Family, Policy, Rule
from fwgen.targets import Build, OutputFile, RenderOptions
from fwgen.targets.text import empty_note, identifier, quoted, rule_heading

CHAINS = {"in": "input", "out": "output"}
IP = {"ipv4": "ip", "ipv6": "ip6"}
ADDR_TYPE = {"ipv4": "ipv4_addr", "ipv6": "ipv6_addr"}
MAX_COMMENT = 120


def set_name(name: str, family: Family) -> str:
    return f"{name}_{'v4' if family == 'ipv4' else 'v6'}"


def elements(items: list[str] | tuple[str, ...]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


@dataclass
class Chain:
    name: str
    hook: str
    policy: str
    rules: list[dict[str, Any]] = field(default_factory=list)


def _icmp_groups(rule: Rule) -> list[tuple[str, ...]]:
    """ICMPv6 neighbour discovery goes in its own statement, matched with hop limit 255."""
    if not rule.icmp_types:
        return [()]
    plain = tuple(t for t in rule.icmp_types if t not in HOP_LIMIT_255)
    on_link = tuple(t for t in rule.icmp_types if t in HOP_LIMIT_255)
    return [group for group in (plain, on_link) if group]


def _statements(rule: Rule, meter: str) -> list[str]:
    """The nft match statements for one rule: one per family where the family must be named."""
    peer, local = ("saddr", "daddr") if rule.direction == "in" else ("daddr", "saddr")
    per_family = rule.remote is not None or rule.limit is not None or rule.local
    out = []
    for families in [(f,) for f in rule.families] if per_family else [rule.families]:
        family = families[0] if len(families) == 1 else None
        for icmp_types in _icmp_groups(rule):
            parts = []
            if rule.remote is not None and family:
                parts.append(f"{IP[family]} {peer} @{set_name(rule.remote, family)}")
            if rule.local and family:
                parts.append(f"{IP[family]} {local} {elements(rule.local_of(family))}")
            if family and rule.proto in ("tcp", "udp") and not (rule.remote or rule.local):
                parts.append(f"meta nfproto {family}")
            if rule.proto in ("tcp", "udp"):
                parts.append(f"{rule.proto} dport {elements([str(p) for p in rule.ports])}")
            else:
                parts.append(f"{rule.proto} type {elements(icmp_types)}")
                if icmp_types[0] in HOP_LIMIT_255:
                    parts.append("ip6 hoplimit 255")
            if rule.limit is not None and family:
                parts.append(
                    f"ct state new update @{set_name(meter, family)} {{ {IP[family]} {peer} limit rate "
                    f"{rule.limit.rate}/{rule.limit.unit} burst {rule.limit.rate} packets }}"
                )
            if rule.log:
                parts.append(f"log prefix {quoted(f'fwgen {rule.direction} {rule.name}: ', 60)}")
            out.append(" ".join(parts))
    return out


def _meter_name(rule: Rule, taken: set[str]) -> str:
    """limit_NAME, its sets named apart from every set in *taken* (which they join).

    *taken* starts with the address sets: a network may well be called ``limit_ssh``.
    The v4 and v6 meters of one name do not collide, so a rule of one family (ping's
    ICMP and ICMPv6 rules) may take the name its twin of the other family took.
    """
    base = identifier(f"limit_{rule.name}", set(), 40)
    name, n = base, 1
    while any(set_name(name, f) in taken for f in rule.families):
        n += 1
        name = f"{base}_{n}"
    taken.update(set_name(name, f) for f in rule.families)
    return name


def build(policy: Policy, options: RenderOptions) -> Build:
    sets = [
        {"name": set_name(s.name, family), "type": ADDR_TYPE[family], "elements": s.family(family)}
        for s in policy.sets
        for family in ("ipv4", "ipv6")
        if s.family(family)
    ]
    chains = {"in": Chain("input", "input", "drop")}
    if policy.defaults.outbound == "drop":
        chains["out"] = Chain("output", "output", "drop")
    limit_sets: list[dict[str, Any]] = []
    taken: set[str] = {str(s["name"]) for s in sets}  # meters are sets too, in the same table
    for rule in policy.rules:
        meter = ""
        if rule.limit is not None:
            meter = _meter_name(rule, taken)
            timeout = f"{SECONDS[rule.limit.unit]}s"
            limit_sets += [
                {"name": set_name(meter, f), "type": ADDR_TYPE[f], "timeout": timeout}
                for f in rule.families
            ]
        label = rule.name + (f": {rule.comment}" if rule.comment else "")
        entry = {
            "origin": rule_heading(rule),
            "statements": _statements(rule, meter),
            "comment": quoted(label, MAX_COMMENT),
            "note": empty_note(rule),
        }
        chains[rule.direction].rules.append(entry)
    forward = policy.defaults.forward
    context = {
        "flush_ruleset": options.flush_ruleset,
        "policy": policy,
        "sets": sets,
        "limit_sets": limit_sets,
        "chains": list(chains.values()),
        "forward": None if forward == "ignore" else forward,
    }
    return Build(files={"fwgen.nft": OutputFile("ruleset.nft.j2", context)})
