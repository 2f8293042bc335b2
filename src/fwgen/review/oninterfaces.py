"""What `fwgen check` says about interfaces: a rule on an interface group that is empty,
and a rule on an interface the profile names nowhere else (a typo, or a host's own name
written into a profile that a group would keep portable)."""

from __future__ import annotations

from fwgen.errors import did_you_mean
from fwgen.policy.ir import Policy, Rule


def lone_interfaces(policy: Policy) -> dict[str, list[str]]:
    """Rule origin → the interfaces it names by name (not through a group) that no
    interface group and no rule written elsewhere names."""
    groups = {g.name for g in policy.interface_groups}
    named: dict[str, set[str]] = {}  # interface → where it is named
    for group in policy.interface_groups:
        for name in group.interfaces:
            named.setdefault(name, set()).add(group.origin)
    for rule in policy.rules:
        for name in rule.on:
            if name not in groups:
                named.setdefault(name, set()).add(rule.origin)
    out: dict[str, list[str]] = {}
    for name, where in sorted(named.items()):
        if len(where) == 1 and name not in groups:
            origin = next(iter(where))
            if any(r.origin == origin and name in r.on for r in policy.rules):
                out.setdefault(origin, []).append(name)
    return out


def empty_group_message(policy: Policy, rule: Rule) -> str:
    """FW019: the rule is on interface groups with no interfaces."""
    groups = [g for g in policy.interface_groups if g.name in rule.on]
    hint = " or ".join(f"--set {g.name}=IFACE[,IFACE...]" for g in groups) or "--set"
    return (
        f"{rule.name}: interface group {', '.join(repr(g.name) for g in groups)} is empty, "
        f"so this rule matches nothing; give the host's interfaces with {hint} "
        "(in a manifest, `set:`)"
    )


def lone_message(policy: Policy, rule: Rule, names: list[str]) -> str:
    """FW020: the rule names interfaces by a name used nowhere else in the profile."""
    known = {
        *(g.name for g in policy.interface_groups),
        *(i for g in policy.interface_groups for i in g.interfaces),
        *(i for r in policy.rules if r.origin != rule.origin for i in r.on),
    }
    hints = "".join(did_you_mean(name, sorted(known)) for name in names)
    return (
        f"{rule.name} is only on {', '.join(names)}, an interface the profile names nowhere "
        f"else{hints}; check the name, or name it in an interface group (`interfaces:`) "
        "that each host sets"
    )
