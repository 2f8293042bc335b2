"""What `check` says about deny and reject rules: an allow rule a deny makes dead
(FW021), and a deny that blocks nothing the rules would admit (FW022).

Both compare what rules match: direction, protocol, ports (or ICMP types), families,
the host's addresses and the remote networks, as sets of addresses.
"""

from __future__ import annotations

from typing import NamedTuple

from fwgen.policy.denies import VERBS
from fwgen.policy.ir import Family, Policy, PortRange, Rule
from fwgen.profile.addresses import Runs

Nets = dict[Family, Runs]  # a rule's remote addresses, by family


class DenyProblem(NamedTuple):
    code: str
    message: str
    rule: Rule
    location: str


def _nets(policy: Policy, rule: Rule) -> Nets | None:
    """The rule's remote addresses over its families, as intervals; None: any address."""
    if rule.remote is None:
        return None
    found = policy.address_set(rule.remote)
    return {family: found.runs(family) for family in rule.families}


def _within(inner: Nets | None, outer: Nets | None) -> bool:
    if outer is None:
        return True
    if inner is None:
        return False
    return all(f in outer and runs.within(outer[f]) for f, runs in inner.items() if len(runs))


def _meet(a: Nets | None, b: Nets | None) -> bool:
    if a is None or b is None:
        return True
    return any(f in b and runs.meets(b[f]) for f, runs in a.items())


def _ports_within(inner: tuple[PortRange, ...], outer: tuple[PortRange, ...]) -> bool:
    return all(any(o.start <= p.start and p.end <= o.end for o in outer) for p in inner)


def _ports_meet(a: tuple[PortRange, ...], b: tuple[PortRange, ...]) -> bool:
    return any(x.start <= y.end and y.start <= x.end for x in a for y in b)


def _protocol(deny: Rule, allow: Rule) -> str:
    """How the deny's protocol part relates to the allow's: all, some or none of it."""
    if deny.proto == "all":
        return "all"
    if deny.proto != allow.proto:
        return "none"
    if deny.proto in ("tcp", "udp"):
        if _ports_within(allow.ports, deny.ports):
            return "all"
        return "some" if _ports_meet(allow.ports, deny.ports) else "none"
    if set(allow.icmp_types) <= set(deny.icmp_types):
        return "all"
    return "some" if set(allow.icmp_types) & set(deny.icmp_types) else "none"


def covers(policy: Policy, deny: Rule, allow: Rule) -> bool:
    """Whether *deny* blocks every connection *allow* admits."""
    return (
        deny.direction == allow.direction
        and _protocol(deny, allow) == "all"
        and set(allow.families) <= set(deny.families)
        and (not deny.local or (set(allow.local) <= set(deny.local) and bool(allow.local)))
        and _within(_nets(policy, allow), _nets(policy, deny))
    )


def overlaps(policy: Policy, deny: Rule, allow: Rule) -> bool:
    """Whether *deny* blocks some connection *allow* admits."""
    return (
        deny.direction == allow.direction
        and _protocol(deny, allow) != "none"
        and bool(set(allow.families) & set(deny.families))
        and (not deny.local or not allow.local or bool(set(allow.local) & set(deny.local)))
        and _meet(_nets(policy, allow), _nets(policy, deny))
    )


def deny_problems(policy: Policy) -> list[DenyProblem]:
    out = []
    for allow in policy.rules:
        killer = next(
            (d for d in policy.denies if allow.families and covers(policy, d, allow)), None
        )
        if killer is not None:
            word = VERBS[killer.action]
            out.append(
                DenyProblem(
                    "FW021",
                    f"{allow.name}: every connection it admits is blocked first by the {word} "
                    f"rule {killer.name} ({killer.origin}); remove one of them",
                    allow,
                    allow.origin,
                )
            )
    for deny in policy.denies:
        silent = deny.direction == "out" and policy.defaults.outbound == "drop"
        silent |= deny.direction == "in" and policy.refuse == "drop"
        if (
            deny.action == "drop"
            and silent
            and deny.families
            and not any(overlaps(policy, deny, allow) for allow in policy.rules)
        ):
            out.append(
                DenyProblem(
                    "FW022",
                    f"{deny.name}: blocks nothing: no allow rule admits what it matches, and "
                    "the default drops it anyway; remove it, or fix what it names",
                    deny,
                    deny.origin,
                )
            )
    return out
