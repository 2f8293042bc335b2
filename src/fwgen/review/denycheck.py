"""What `check` says about deny and reject rules: an allow rule a deny makes dead
(FW021), and a deny that blocks nothing the rules would admit (FW022).

Both compare what rules match: direction, protocol, ports (or ICMP types), families,
the host's addresses and the remote networks, as sets of addresses.
"""

from __future__ import annotations

from typing import NamedTuple

from fwgen.policy.accepted import reason_for
from fwgen.policy.denies import VERBS
from fwgen.policy.ir import Family, Policy, PortRange, Rule, interfaces_within
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


def _on_within(allow: Rule, deny: Rule) -> bool:
    """Whether *deny* is on every interface *allow* is on (a deny on empty interface
    groups is on none)."""
    if not deny.interfaces:
        return not deny.idle()
    return bool(allow.interfaces) and interfaces_within(allow.interfaces, deny.interfaces)


def _names_meet(a: str, b: str) -> bool:
    """Whether one interface can match both names (a glob ``wg*`` meets what it starts)."""
    if a.endswith("*") and b.endswith("*"):
        return a.startswith(b[:-1]) or b.startswith(a[:-1])
    return interfaces_within([a], [b]) or interfaces_within([b], [a])


def _on_meet(allow: Rule, deny: Rule) -> bool:
    """Whether *deny* and *allow* share an interface."""
    if allow.idle() or deny.idle():
        return False
    if not allow.interfaces or not deny.interfaces:
        return True
    return any(_names_meet(a, d) for a in allow.interfaces for d in deny.interfaces)


def covers(policy: Policy, deny: Rule, allow: Rule) -> bool:
    """Whether *deny* blocks every connection *allow* admits."""
    return (
        deny.direction == allow.direction
        and _protocol(deny, allow) == "all"
        and set(allow.families) <= set(deny.families)
        and (not deny.local or (set(allow.local) <= set(deny.local) and bool(allow.local)))
        and _on_within(allow, deny)
        and _within(_nets(policy, allow), _nets(policy, deny))
    )


def overlaps(policy: Policy, deny: Rule, allow: Rule) -> bool:
    """Whether *deny* blocks some connection *allow* admits."""
    return (
        deny.direction == allow.direction
        and _protocol(deny, allow) != "none"
        and bool(set(allow.families) & set(deny.families))
        and (not deny.local or not allow.local or bool(set(allow.local) & set(deny.local)))
        and _on_meet(allow, deny)
        and _meet(_nets(policy, allow), _nets(policy, deny))
    )


def dead_allows(policy: Policy) -> list[DenyProblem]:
    """FW021: the allow rules a deny or reject rule blocks all of (evaluated first, it
    leaves them nothing to admit)."""
    out = []
    for allow in policy.rules:
        if not allow.families or allow.idle():
            continue
        killer = next((d for d in policy.denies if covers(policy, d, allow)), None)
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
    return out


def lockouts(policy: Policy) -> list[str]:
    """What `render`, `build` and `apply` warn of (and ``--strict`` refuses): the FW021
    findings the profile does not accept (``accept: {FW021: why}``). When the dead rule
    is the admins' way in (a blocklist file that holds their network), the ruleset locks
    them out."""
    return [
        f"{p.location}: {p.code}: {p.message}"
        for p in dead_allows(policy)
        if reason_for(p.rule.accepted, p.code, None) is None
    ]


def deny_problems(policy: Policy) -> list[DenyProblem]:
    out = dead_allows(policy)
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
