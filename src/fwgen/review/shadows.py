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
from typing import Any

from fwgen.errors import split_location
from fwgen.policy.ir import Family, Policy, PortRange, Rule, interfaces_within

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


STAB = 8  # a bucket of more rules than twice this is searched by address


@dataclass
class _Stab:
    """The rules of one bucket by the intervals of their sources in one family, sorted by
    first address, with the highest last address so far: which hold an address is found
    by walking back from where it would sit, no further than the intervals that reach it."""

    anyone: list[Rule]
    starts: list[int]
    lasts: list[int]
    reach: list[int]
    owners: list[Rule]

    @classmethod
    def of(cls, policy: Policy, rules: list[Rule], family: Family) -> _Stab:
        anyone = [r for r in rules if r.remote is None and family in r.families]
        spans = sorted(
            (first, last, i)
            for i, r in enumerate(rules)
            if r.remote is not None and family in r.families
            for _, first, last in policy.address_set(r.remote).runs(family).intervals()
        )
        reach, highest = [], -1
        for _, last, _ in spans:
            highest = max(highest, last)
            reach.append(highest)
        return cls(
            anyone,
            [f for f, _, _ in spans],
            [la for _, la, _ in spans],
            reach,
            [rules[i] for _, _, i in spans],
        )

    def holding(self, address: int | None) -> list[Rule]:
        """The rules whose sources hold *address* (None: any address), and those of any."""
        out = list(self.anyone)
        if address is None:
            return out
        i = bisect.bisect_right(self.starts, address) - 1
        while i >= 0 and self.reach[i] >= address:
            if self.lasts[i] >= address:
                out.append(self.owners[i])
            i -= 1
        return out


@dataclass
class Shadows:
    """The index of a Policy's unconditional rules, and what each rule is shadowed by."""

    policy: Policy
    compared: int = 0  # rule pairs looked at, for the tests of the work done
    position: dict[int, int] = field(default_factory=dict)
    index: dict[Key, list[Rule]] = field(default_factory=dict)
    wide: dict[tuple[str, str, int], list[Rule]] = field(default_factory=dict)
    stabs: dict[tuple[int, Any, Family], _Stab] = field(default_factory=dict)

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
        candidates = {
            id(other): other
            for bucket, key in (
                (self.index, (rule.direction, rule.proto, first)),
                (self.wide, (rule.direction, rule.proto, block)),
            )
            for other in self._holding(bucket, key, rule)
        }
        for other in sorted(candidates.values(), key=lambda o: self.position[id(o)]):
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

    def _holding(self, bucket: dict[Any, list[Rule]], key: Any, rule: Rule) -> list[Rule]:
        """The rules of *bucket*[*key*] whose sources could hold *rule*'s: those of any
        address, and those whose sources hold its first address (in its first family)."""
        rules = bucket.get(key, [])
        family = rule.families[0]
        found = self.policy.address_set(rule.remote).runs(family) if rule.remote else None
        if len(rules) < 2 * STAB or (found is not None and not found):
            return rules
        stab = self.stabs.get((id(bucket), key, family))
        if stab is None:
            stab = self.stabs[id(bucket), key, family] = _Stab.of(self.policy, rules, family)
        return stab.holding(found.starts[0] if found is not None else None)

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

    def _inside(self, remote: str | None, wider: str | None, family: Family) -> bool:
        """Whether the addresses of the set *remote* (None: any) are all in *wider*."""
        if wider is None or remote == wider:
            return True
        if remote is None:
            return False
        addresses = self.policy.address_set
        return addresses(remote).runs(family).within(addresses(wider).runs(family))
