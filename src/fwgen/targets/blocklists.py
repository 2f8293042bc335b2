"""Blocklists: the address sets of deny and reject rules, updated without touching the rules.

``fwgen render PROFILE -t nftables --sets-only`` writes ``fwgen-sets.nft``: one
transaction (``nft -f``) that flushes and refills each set; ``-t iptables --sets-only``
writes ``ipsets``, which fills each set under a temporary name and ``ipset swap``s it
in. Neither touches a rule, so established connections, counters and the rate limits'
state stay; a full load of the rules later refills the same sets, as it always does.
Only sets that no allow rule uses are updated so: a change to who is admitted is a
change of the rules, which goes through the guard (`fwgen apply`).
"""

from __future__ import annotations

from fwgen.errors import RenderError
from fwgen.policy.ir import Policy


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
