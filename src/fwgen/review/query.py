"""What a Policy does with one packet, decided the way the rendered rulesets decide.

In the order every Linux target renders its chains: loopback (``lo``), the established
shortcut (less the ICMP queries a rule rate-limits, which the rules count), packets
conntrack finds invalid, then the deny and reject rules, then the allow rules, first
match, then the default: the refusal of ``options.refuse: reject`` (to unicast only), or
the direction's policy. A rate-limited rule admits up to its rate; a packet over it goes
on to the rules after it, so the answer says what happens then too. A connection cap
(``connlimit``) rejects a source's connections beyond the cap with a TCP reset.

Where a target cannot express something (Windows has no rate limits, ...), `decide` is
asked again without it (*lacks*): the CLI passes what each target declares it lacks
(`fwgen.targets.Target.lacks`), so review/ knows no target.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from fwgen.policy.denies import deny_title
from fwgen.policy.ir import Family, Policy, Rule, interfaces_within
from fwgen.profile.addresses import BITS, parse_network
from fwgen.profile.icmp import hop_limit
from fwgen.review.packet import Endpoint, Packet

Verdict = Literal["accepted", "dropped", "rejected"]
VERDICTS: tuple[Verdict, ...] = ("accepted", "dropped", "rejected")
# What a target may lack (`fwgen.targets.Target.lacks`): the rule features `decide` can leave out.
FEATURES = ("limit", "connlimit", "reject")
REJECT_RATE = 20  # answers per second (`fwgen.targets.refusal.REJECT_RATE`)
MULTICAST = {4: parse_network("224.0.0.0/4"), 6: parse_network("ff00::/8")}
BROADCAST = parse_network("255.255.255.255")
MAX_HINTS = 3  # rules named in a dropped packet's notes (`_with_hints`)


@dataclass(frozen=True)
class Decision:
    """What happens to a packet of one family, and what decided it."""

    family: Family
    verdict: Verdict
    by: str  # a rule's title ("ssh", "deny", "reject ssh"), or how the ruleset decides
    origin: str = ""  # the rule's profile file:line
    how: str = ""  # a reject's answer: "TCP reset", ...
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        """``accepted by ssh (profiles/base.yaml:3)``, ``dropped by the default policy``."""
        how = f" ({self.how})" if self.how else ""
        where = f" ({self.origin})" if self.origin else ""
        return f"{self.verdict}{how} by {self.by}{where}"

    def as_json(self) -> dict[str, object]:
        return {
            "family": self.family,
            "verdict": self.verdict,
            "by": self.by,
            "origin": self.origin or None,
            "answer": self.how or None,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Result:
    """A packet's decisions, one per family, and where a target decides otherwise."""

    packet: Packet
    decisions: tuple[Decision, ...]
    targets: dict[str, tuple[Decision, ...]] = field(default_factory=dict)

    def verdicts(self, target: str | None = None) -> set[Verdict]:
        found = self.targets.get(target or "", self.decisions)
        return {d.verdict for d in found}


def query(
    policy: Policy, packet: Packet, targets: Mapping[str, Iterable[str]] | None = None
) -> Result:
    """*packet* decided by *policy* in each of its families; and for each of *targets*
    (name → the `FEATURES` it lacks) whose decisions differ, theirs."""
    decisions = tuple(decide(policy, packet, f) for f in packet.families)
    differ = {}
    for name, lacks in (targets or {}).items():
        theirs = tuple(decide(policy, packet, f, frozenset(lacks)) for f in packet.families)
        if theirs != decisions:
            differ[name] = theirs
    return Result(packet, decisions, differ)


def decide(
    policy: Policy, packet: Packet, family: Family, lacks: frozenset[str] = frozenset()
) -> Decision:
    """What *policy* does with *packet* over *family* (see the module)."""
    if policy.loopback and packet.on(family) == "lo":
        return Decision(family, "accepted", "loopback (options.loopback)")
    if packet.state in ("established", "related") and policy.established:
        limited = policy.limited_queries(packet.direction).get(packet.proto, ())  # type: ignore[call-overload]
        if packet.icmp_type not in limited:
            return Decision(
                family, "accepted", f"the {packet.state} shortcut (options.established)"
            )
    if packet.state == "invalid" and policy.drop_invalid:
        return Decision(family, "dropped", "the invalid shortcut (options.drop_invalid)")
    for rule in policy.denies:
        if matches(policy, rule, packet, family):
            return _refused(rule, packet, family, lacks)
    return _admitted(policy, packet, family, lacks, 0)


def _refused(rule: Rule, packet: Packet, family: Family, lacks: frozenset[str]) -> Decision:
    title, origin = deny_title(rule), rule.origin
    if rule.action == "drop":
        return Decision(family, "dropped", title, origin)
    return _reject(family, packet, title, origin, _answer(rule.proto, packet.proto), lacks)


def _answer(rule_proto: str, proto: str) -> str:
    """The answer of a reject rule of *rule_proto* to a packet of *proto*
    (`fwgen.targets.refusal.answers`)."""
    if proto == "tcp" and rule_proto in ("tcp", "all"):
        return "TCP reset"
    if proto == "udp" and rule_proto == "udp":
        return "ICMP port unreachable"
    return "ICMP administratively prohibited"


def _reject(
    family: Family, packet: Packet, by: str, origin: str, how: str, lacks: frozenset[str]
) -> Decision:
    if "reject" in lacks:
        return Decision(family, "dropped", by, origin, notes=("blocks in silence: no reject",))
    if not _unicast(packet.local):
        note = "a reject answers unicast packets only; this one is dropped in silence"
        return Decision(family, "dropped", by, origin, notes=(note,))
    note = f"at most {REJECT_RATE} answers a second; beyond them, dropped in silence"
    return Decision(family, "rejected", by, origin, how, (note,))


def _unicast(local: Endpoint) -> bool:
    if local.address is None:
        return True
    version, address, _ = local.address
    _, first, last = MULTICAST[version]
    return not (first <= address <= last or local.address == BROADCAST)


def _admitted(
    policy: Policy, packet: Packet, family: Family, lacks: frozenset[str], start: int
) -> Decision:
    """The first allow rule from *start* that matches, or the default."""
    for i in range(start, len(policy.rules)):
        rule = policy.rules[i]
        if not matches(policy, rule, packet, family, limited="limit" not in lacks):
            continue
        notes = []
        if rule.connlimit is not None and packet.proto == "tcp" and packet.state == "new":
            if "connlimit" in lacks:
                notes.append(f"not capped: connlimit {rule.connlimit} is not applied")
            else:
                notes.append(
                    f"up to {rule.connlimit} connections at once {_per(policy, family)}; "
                    "beyond them, rejected (TCP reset)"
                )
        if rule.limit is not None:
            limit = rule.limit
            if "limit" in lacks:
                notes.append(f"not rate limited: the {limit} limit is not applied")
            else:
                rest = _admitted(policy, packet, family, lacks, i + 1)
                what = "messages" if packet.proto in ("icmp", "icmpv6") else "new connections"
                burst = f", {limit.burst} at once" if limit.burst != limit.rate else ""
                notes.append(
                    f"up to {limit.rate} {what} a {limit.unit} {_per(policy, family)}{burst}; "
                    f"beyond them, {rest.summary()}"
                )
                notes.extend(rest.notes)
        return Decision(family, "accepted", rule.name, rule.origin, notes=tuple(notes))
    return _default(policy, packet, family, lacks)


def _per(policy: Policy, family: Family) -> str:
    """What a limit counts by: ``per source address``, ``per source /64``."""
    bits = policy.limit_prefix(family)
    return (
        "per source address"
        if bits == BITS[4 if family == "ipv4" else 6]
        else f"per source /{bits}"
    )


def _default(policy: Policy, packet: Packet, family: Family, lacks: frozenset[str]) -> Decision:
    if packet.direction == "out":
        verdict: Verdict = "accepted" if policy.defaults.outbound == "accept" else "dropped"
        found = Decision(
            family, verdict, f"the default policy (outbound: {policy.defaults.outbound})"
        )
        return found if verdict == "accepted" else _with_hints(found, policy, packet)
    refused = policy.refuse_from is None or _holds(
        policy, policy.refuse_from, packet.remote, family
    )
    if policy.refuse == "reject" and refused:
        how = {"tcp": "TCP reset", "udp": "ICMP port unreachable"}.get(
            packet.proto, "ICMP administratively prohibited"
        )
        found = _reject(
            family, packet, "the default policy (options.refuse: reject)", "", how, lacks
        )
    else:
        found = Decision(family, "dropped", "the default policy")
    return _with_hints(found, policy, packet)


def _with_hints(found: Decision, policy: Policy, packet: Packet) -> Decision:
    """*found* with the rules that would admit the packet had it named what it leaves out
    (its peer's address, its interface, this host's address): where to look next."""
    hints = [
        f"had it named {what}, accepted by {rule.name} ({rule.origin})"
        for rule in policy.rules
        for what in [_unnamed(policy, rule, packet, found.family)]
        if what
    ]
    if len(hints) > MAX_HINTS:
        hints[MAX_HINTS:] = [f"... and {len(hints) - MAX_HINTS} more rules"]
    return replace(found, notes=(*found.notes, *hints))


def _unnamed(policy: Policy, rule: Rule, packet: Packet, family: Family) -> str:
    """What *packet* would have to name for *rule* to match it (``a source in admins and
    interface eth1 (private)``), or "" when naming more would not make it match."""
    relaxed: dict[str, object] = {}
    words = []
    peer = "source" if packet.direction == "in" else "destination"
    if packet.remote.address is None and rule.remote is not None:
        relaxed["remote"] = None
        words.append(f"a {peer} in {policy.remote_words(rule)}")
    if packet.on(family) is None and rule.interfaces:
        relaxed |= {"interfaces": (), "on": ()}
        names = ", ".join(rule.interfaces)
        group = ", ".join(rule.on)
        words.append(f"interface {names}" + (f" ({group})" if group != names else ""))
    if packet.local.address is None and rule.local:
        relaxed["local"] = ()
        local = "destination" if packet.direction == "in" else "source"
        words.append(f"the {local} {', '.join(rule.local_of(family))}")
    if not relaxed or not matches(policy, rule.replace(**relaxed), packet, family):
        return ""
    return " and ".join(words)


def _holds(policy: Policy, name: str, point: Endpoint, family: Family) -> bool:
    """Whether the address set *name* holds the endpoint's address; an endpoint without
    an address stands for one that no network holds (only a whole-family set has it)."""
    found = policy.address_set(name).runs(family)
    if point.address is None:
        return found.holds(0, (1 << BITS[found.version]) - 1)
    return found.holds(point.address[1], point.address[1])


def matches(
    policy: Policy, rule: Rule, packet: Packet, family: Family, limited: bool = True
) -> bool:
    """Whether *rule* matches *packet* over *family*, as its rendered statements do."""
    if rule.direction != packet.direction or family not in rule.families:
        return False
    if rule.proto not in ("all", packet.proto):
        return False
    if rule.ports and not any(p.start <= (packet.port or 0) <= p.end for p in rule.ports):
        return False
    if rule.icmp_types and not _icmp_matches(rule, packet):
        return False
    if rule.on and not rule.interfaces:  # interface groups left empty: nothing
        return False
    if rule.interfaces:
        on = packet.on(family)
        if on is None or not interfaces_within([on], rule.interfaces):
            return False
    if rule.remote is not None and not _holds(policy, rule.remote, packet.remote, family):
        return False
    if rule.local and not _local_matches(rule, packet.local, family):
        return False
    # a limit counts new connections (nftables: `ct state new`); ICMP counts every message
    return not (
        limited
        and rule.limit is not None
        and packet.proto not in ("icmp", "icmpv6")
        and packet.state != "new"
    )


def _icmp_matches(rule: Rule, packet: Packet) -> bool:
    needed = hop_limit(packet.icmp_type or "")
    return packet.icmp_type in rule.icmp_types and (
        needed is None or rule.proto != "icmpv6" or packet.hop_limit == needed
    )


def _local_matches(rule: Rule, local: Endpoint, family: Family) -> bool:
    if local.address is None:
        return False
    address = local.address[1]
    return any(
        first <= address <= last
        for _, first, last in (parse_network(a) for a in rule.local_of(family))
    )
