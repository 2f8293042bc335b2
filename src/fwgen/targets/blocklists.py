"""Blocklists: the address sets of deny and reject rules, updated without touching the rules.

``fwgen render PROFILE -t nftables --sets-only`` writes ``fwgen-sets.nft``: one
transaction (``nft -f``) that flushes and refills each set; ``-t iptables --sets-only``
writes ``ipsets``, which fills each set under a temporary name and ``ipset swap``s it
in. Neither touches a rule, so established connections, counters and the rate limits'
state stay; a full load of the rules later refills the same sets, as it always does.
Only sets that no allow rule uses are updated so: a change to who is admitted is a
change of the rules, which goes through the guard (`fwgen apply`).

A blocklist's sets exist for both families, empty or not, and its deny rules match
both: an update may bring the first IPv6 entry of a list, or take the last one away.
"""

from __future__ import annotations

from fwgen.errors import RenderError
from fwgen.policy.ir import FAMILIES, AddressSet, Family, Policy, Rule


def blocklist_sets(policy: Policy) -> list[str]:
    """The address sets only deny and reject rules use, sorted."""
    admitting = {r.remote for r in policy.rules} | {policy.refuse_from}
    return sorted({r.remote for r in policy.denies if r.remote and r.remote not in admitting})


def need_blocklists(policy: Policy, platform: str) -> list[str]:
    """`blocklist_sets`, or an error when there are none to update."""
    names = blocklist_sets(policy)
    if not names:
        raise RenderError(
            f"{platform}: --sets-only: this profile has no network that only deny or reject "
            "rules use (a blocklist); render the whole ruleset"
        )
    return names


def _proto_families(rule: Rule) -> tuple[Family, ...]:
    """Every family the rule's protocol and its host addresses (``host:``) allow."""
    found = {"icmp": ("ipv4",), "icmpv6": ("ipv6",)}.get(rule.proto, FAMILIES)
    local = {"ipv6" if ":" in a else "ipv4" for a in rule.local}
    return tuple(f for f in found if not local or f in local)  # type: ignore[misc]


def updatable_denies(policy: Policy) -> list[Rule]:
    """`Policy.denies`, those of a blocklist for every family (see the module)."""
    names = set(blocklist_sets(policy))
    return [
        r.replace(families=_proto_families(r)) if r.remote in names else r for r in policy.denies
    ]


def set_families(policy: Policy, address_set: AddressSet) -> list[Family]:
    """The families a set is declared for: those it has addresses of; a blocklist, both."""
    if address_set.name in blocklist_sets(policy):
        return list(FAMILIES)
    return [f for f in FAMILIES if address_set.family(f)]
