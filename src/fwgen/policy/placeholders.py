"""What deserves a warning about a Policy whatever the target: rules that admit no one
(placeholder addresses, empty networks and interface groups) and address lists that add
up to a whole family."""

from __future__ import annotations

from fwgen.policy.ir import FAMILIES, Policy, Rule, few, set_hint, whole_family_warning


def _placeholder_rules(policy: Policy, inline: bool) -> list[Rule]:
    """Rules that admit no one: their sources are only documentation addresses or an
    empty network; those written in the rule itself (*inline*) or those from a network."""
    return [
        rule
        for rule in policy.rules
        if rule.remote is not None
        and (
            (not rule.families and not rule.idle())
            # on an empty interface group: its sources still need setting
            or policy.placeholder_sources(rule.replace(families=FAMILIES) if rule.idle() else rule)
        )
        and (policy.address_set(rule.remote).origin == rule.origin) == inline
    ]


def placeholder_networks(policy: Policy) -> list[str]:
    """The networks a user must give addresses (``--set``) before the ruleset admits anyone
    through the rules that use them: placeholders or empty."""
    return sorted({rule.remote or "" for rule in _placeholder_rules(policy, inline=False)})


def _by_network(rules: list[Rule]) -> dict[str, list[Rule]]:
    by_set: dict[str, list[Rule]] = {}
    for rule in rules:
        by_set.setdefault(rule.remote or "", []).append(rule)
    return by_set


def _names(rules: list[Rule], verb: str) -> str:
    """``ssh admits`` or ``ssh, sftp admit``: the rules' names and *verb* agreeing."""
    names = sorted({r.name for r in rules})
    return f"{', '.join(names)} {verb if len(names) == 1 else verb.removesuffix('s')}"


def empty_networks(policy: Policy) -> list[str]:
    """Rules that admit no one because every network they name is empty (`--set admins=`):
    one line per network, naming the ``--set`` that fixes it."""
    empty = [
        rule
        for rule in policy.rules
        if rule.remote is not None and not rule.families and not rule.idle()
    ]
    out = []
    for name, rules in _by_network(empty).items():
        found = policy.address_set(name)
        if found.origin == rules[0].origin:  # a list written in the rule, of empty networks
            out.append(
                f"{rules[0].name} ({rules[0].origin}) matches nothing: every network it names "
                "is empty; give them addresses or remove the rule"
            )
        else:
            out.append(
                f"network '{name}' ({found.origin}) is empty, so {_names(rules, 'matches')} "
                f"nothing; give its addresses with {set_hint(name)} (in a manifest, `set:`)"
            )
    return out


def empty_groups(policy: Policy, placeholder: bool) -> list[str]:
    """Rules that admit no one because an interface group they are on is empty: as the
    profile wrote it (*placeholder*, a portable profile waiting for the host's names), or
    as a site set it (``--set private=`` with an unset variable)."""
    out = []
    for group in policy.interface_groups:
        rules = [r for r in policy.rules if group.name in r.on and r.idle()]
        if not group.interfaces and rules and group.placeholder == placeholder:
            out.append(
                f"interface group '{group.name}' ({group.origin}) is empty, so "
                f"{_names(rules, 'admits')} no one; give the host's interfaces with "
                f"--set {group.name}=IFACE[,IFACE...] (in a manifest, `set:`)"
            )
    return out


def placeholder_warnings(policy: Policy) -> list[str]:
    """Rules that admit no one, because their sources are only documentation addresses
    (placeholders) or an empty network: applied remotely as it is, such a ruleset can lock
    the admin out. One warning per network, naming the ``--set`` that fixes it."""
    out = [
        f"{rule.name} ({rule.origin}) admits only documentation addresses "
        f"({few(policy.placeholder_sources(rule))}), placeholders that match no real "
        "host; write the real ones in the profile"
        for rule in _placeholder_rules(policy, inline=True)
        if rule.families
    ]
    placeholders = [r for r in _placeholder_rules(policy, inline=False) if r.families]
    for name, rules in _by_network(placeholders).items():
        found = policy.address_set(name)
        used = {a for r in rules for a in policy.placeholder_sources(r)}
        # in the set's order; the rules may use one family of a mixed set
        shown = few([a for a in (*found.ipv4, *found.ipv6) if a in used])
        out.append(
            f"network '{name}' ({found.origin}): {_names(rules, 'admits')} only "
            f"its documentation addresses ({shown}), placeholders that match no real "
            f"host; give the real ones with {set_hint(name)} (in a manifest, `set:`)"
        )
    out += empty_networks(policy) + empty_groups(policy, True) + empty_groups(policy, False)
    return list(dict.fromkeys(out))  # a rule may be one per protocol


def policy_warnings(policy: Policy) -> list[str]:
    """What deserves a warning whatever the target: address lists that add up to a whole
    family, and rules that admit no one (`placeholder_warnings`)."""
    return [
        *(whole_family_warning(*w) for w in policy.whole_family_sets()),
        *placeholder_warnings(policy),
    ]
