"""Which rule already accepts all of another's traffic (`fwgen check` FW007).

A rule is covered by another, unconditional rule of the same direction and protocol
when that rule's sources hold all of its sources (in each of its families), its ports
or ICMP types hold all of its own, and its host addresses (`host:`) are any or hold
all of its own. Two rules that cover each other are duplicates.

Every rule is compared only with the rules that accept its first port (or ICMP type),
found in an index: by port for rules of a few ports, by block of `WIDE` ports for the
others (a range of 60,000 ports is 235 entries, not 60,000), so a long profile costs
far less than every pair of rules.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from fwgen.errors import split_location
from fwgen.policy.ir import Policy, PortRange, Rule, interfaces_within
from fwgen.profile.addresses import Interval, merge, parse_network

WIDE = 256  # a rule accepting more ports than this is indexed by block of this many ports
Key = tuple[str, str, int | str]


@dataclass(frozen=True)
class Shadow:
    """*rule* is shadowed by (or, *same*, duplicates) *other*."""

    rule: Rule
    other: Rule
    same: bool


def _covers(ranges: tuple[PortRange, ...], start: int, end: int) -> bool:
    return any(r.start <= start and end <= r.end for r in ranges)


def _written_at(origin: str, files: dict[str, int]) -> tuple[int, int]:
    """Where a rule is written: its file's place in the ``extends`` chain, then its line."""
    path, line = split_location(origin)
    return files.get(path, len(files)), line or 0


def _first(rule: Rule) -> int | str:
    return rule.ports[0].start if rule.ports else rule.icmp_types[0] if rule.icmp_types else ""


@dataclass
class Shadows:
    """The index of a Policy's unconditional rules, and what each rule is shadowed by."""

    policy: Policy
    compared: int = 0  # rule pairs looked at, for the tests of the work done
    position: dict[int, int] = field(default_factory=dict)
    index: dict[Key, list[Rule]] = field(default_factory=dict)
    wide: dict[tuple[str, str, int], list[Rule]] = field(default_factory=dict)
    runs: dict[tuple[str | None, str], tuple[list[int], list[Interval]]] = field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        files = {name: i for i, name in enumerate(self.policy.files)}
        written = sorted(
            range(len(self.policy.rules)),
            key=lambda i: (_written_at(self.policy.rules[i].origin, files), i),
        )
        for rank, i in enumerate(written):
            self.position[id(self.policy.rules[i])] = rank
        for rule in self.policy.rules:
            if rule.limit is not None or not rule.families:
                continue  # a limited rule accepts only part of the traffic; an empty one none
            if sum(p.end - p.start + 1 for p in rule.ports) > WIDE:
                blocks = {b for p in rule.ports for b in range(p.start // WIDE, p.end // WIDE + 1)}
                for block in blocks:
                    self.wide.setdefault((rule.direction, rule.proto, block), []).append(rule)
                continue
            keys: list[int | str] = [n for p in rule.ports for n in range(p.start, p.end + 1)]
            for key in keys or list(rule.icmp_types) or [""]:
                self.index.setdefault((rule.direction, rule.proto, key), []).append(rule)

    def find(self, rule: Rule) -> Shadow | None:
        """The first rule (in the Policy's order) that already accepts *rule*'s traffic."""
        if not rule.families:
            return None
        first = _first(rule)
        block = first // WIDE if isinstance(first, int) else -1
        candidates = [
            *self.index.get((rule.direction, rule.proto, first), ()),
            *self.wide.get((rule.direction, rule.proto, block), ()),
        ]
        for other in sorted(candidates, key=lambda o: self.position[id(o)]):
            if other is rule:
                continue
            self.compared += 1
            if not self._covered(rule, other):
                continue
            same = self._covered(other, rule) and other.limit == rule.limit
            if same and self.position[id(other)] > self.position[id(rule)]:
                continue  # a duplicate is reported once, on the later rule
            return Shadow(rule, other, same)
        return None

    def _covered(self, rule: Rule, other: Rule) -> bool:
        """Whether *other* accepts every packet *rule* accepts (limits aside)."""
        if other.local and not (rule.local and set(rule.local) <= set(other.local)):
            return False  # `host:` narrows the other rule to addresses this one may not use
        if other.interfaces and not (
            rule.interfaces and interfaces_within(rule.interfaces, other.interfaces)
        ):
            return False  # `interface:` narrows the other rule to interfaces this one is not on
        return (
            set(rule.families) <= set(other.families)
            and all(_covers(other.ports, p.start, p.end) for p in rule.ports)
            and set(rule.icmp_types) <= set(other.icmp_types)
            and all(self._inside(rule.remote, other.remote, f) for f in rule.families)
        )

    def _inside(self, remote: str | None, wider: str | None, family: str) -> bool:
        """Whether the addresses of the set *remote* (None: any) are all in *wider*."""
        if wider is None or remote == wider:
            return True
        if remote is None:
            return False
        starts, lasts = self._runs(wider, family)
        for _, first, last in self._runs(remote, family)[1]:
            i = bisect.bisect_right(starts, first) - 1
            if i < 0 or lasts[i][2] < last:
                return False
        return True

    def _runs(self, name: str, family: str) -> tuple[list[int], list[Interval]]:
        """The set's addresses of *family* as merged intervals, and where each starts."""
        key = (name, family)
        if key not in self.runs:
            found = self.policy.address_set(name)
            texts = found.ipv4 if family == "ipv4" else found.ipv6
            merged = merge(parse_network(t) for t in texts)
            self.runs[key] = ([first for _, first, _ in merged], merged)
        return self.runs[key]
