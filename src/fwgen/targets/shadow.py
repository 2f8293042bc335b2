"""The shadow of a profile: its rules loaded beside the live firewall, deciding nothing.

nftables: a table of its own, ``inet fwgen_shadow``, whose chains hook input (and output,
when the profile denies outbound) at priority ``mangle - 1``: after conntrack has
classified the packet, before any filter chain (fwgen's, Docker's, iptables-nft's, the
admin's) decides. Every chain's policy is accept and every rule ends in ``return``; a
new connection that no rule of the profile admits is recorded in a dynamic set keyed on
source (outbound: destination) prefix, protocol and port, with a counter per element.
A second set, filled with ``add`` (which never refreshes an element), keeps when each
key was first seen; ``update`` refreshes the first set's timeout, which gives when it
was last seen. The sets hold at most ``size`` keys each: once full, what they cannot
add is counted by the ``full`` counter of its direction and family, so the report can
say how much it did not record. The ``loaded`` set holds one element whose timeout
started when the table was loaded.

The comment of each chain's first rule names the table as fwgen's and records how it was
made (prefixes, size; a table's own comment is not in nft's JSON before 1.0.7):
`fwgen.host.shadow` refuses to replace, remove or read a table of that name without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fwgen.errors import FwgenError
from fwgen.policy.ir import Direction, Family, Policy
from fwgen.policy.owned import SHADOW_MARK, SHADOW_TABLE
from fwgen.targets import nftables, shadowipt
from fwgen.targets.render import check_output, environment, header, refuse_unacknowledged_risks
from fwgen.targets.text import plain_ascii, quoted, rule_heading

TABLE = SHADOW_TABLE
FILE = "fwgen-shadow.nft"
PRIORITY = "mangle - 1"  # after conntrack (-200), before every filter chain (mangle is -150)
TIMEOUT = "3650d"  # keys are kept (and their first sighting known) for ten years
TIMEOUT_SECONDS = 3650 * 86400
HOOKS: dict[Direction, str] = {"in": "input", "out": "output"}
PEERS: dict[Direction, str] = {"in": "saddr", "out": "daddr"}
SIZE_MAX = 1 << 20
PORTED = "meta l4proto { tcp, udp, udplite, sctp, dccp }"  # what has a destination port


@dataclass(frozen=True)
class ShadowOptions:
    """How finely the shadow records: the source prefix length per family (a profile
    line admits what it names, so /32 names the very host) and how many keys a set holds."""

    prefix_v4: int = 32
    prefix_v6: int = 64
    size: int = 16384

    def __post_init__(self) -> None:
        for name, value, top in (
            ("prefix-v4", self.prefix_v4, 32),
            ("prefix-v6", self.prefix_v6, 128),
        ):
            if not 8 <= value <= top:
                raise FwgenError(f"--{name} {value}: give a prefix length from 8 to {top}")
        if not 16 <= self.size <= SIZE_MAX:
            raise FwgenError(f"--size {self.size}: give a number of keys from 16 to {SIZE_MAX}")

    def prefix(self, family: Family) -> int:
        return self.prefix_v4 if family == "ipv4" else self.prefix_v6


def set_names(direction: Direction, family: Family) -> tuple[str, str, str]:
    """The last-seen (counted) set, the first-seen set and the full counter of one
    direction and family: ``in_last_v4``, ``in_first_v4``, ``in_full_v4``."""
    tail = "v4" if family == "ipv4" else "v6"
    return f"{direction}_last_{tail}", f"{direction}_first_{tail}", f"{direction}_full_{tail}"


def comment(policy: Policy, options: ShadowOptions) -> str:
    """The table's comment: the mark, then how the keys were made, then the profile."""
    return (
        f"{SHADOW_MARK} prefix-v4={options.prefix_v4} prefix-v6={options.prefix_v6} "
        f"size={options.size} profile={policy.profile}"
    )


def directions(policy: Policy) -> list[Direction]:
    """What the shadow watches: inbound always, outbound when the profile denies it."""
    return ["in", "out"] if policy.defaults.outbound == "drop" else ["in"]


def _renamed(policy: Policy) -> Policy:
    """The Policy with every address set named ``n_NAME``: the shadow's own sets never
    start with ``n_``, so no network's name can stand for one of them."""
    sets = tuple(s.replace(name=f"n_{s.name}") for s in policy.sets)
    rules = tuple(r.replace(remote=f"n_{r.remote}" if r.remote else None) for r in policy.rules)
    return policy.replace(sets=sets, rules=rules)


def _record(
    direction: Direction, family: Family, options: ShadowOptions, policy: Policy
) -> list[str]:
    """The lines that record what no rule admitted, for one family: a ported protocol by
    its port, any other by port 0; then, if neither could add its key, the full counter."""
    last, first, full = set_names(direction, family)
    peer = nftables.limit_key(
        policy.replace(**{f"limit_prefix_{family[-2:]}": options.prefix(family)}),
        family,
        PEERS[direction],
    )
    out = []
    for match, port in ((f"{PORTED} ", "th dport"), ("", "0")):
        key = f"{peer} . meta l4proto . {port}"
        out.append(
            f"meta nfproto {family} {match}update @{last} {{ {key} }} add @{first} {{ {key} }} return"
        )
    out.append(f"meta nfproto {family} counter name {full}")
    return out


def _chain(
    policy: Policy, direction: Direction, options: ShadowOptions, mark: str
) -> dict[str, Any]:
    """One hooked chain; its first rule's comment is the *mark* (see `comment`)."""
    prologue = [f"ct state != new return comment {mark}"]
    if policy.loopback:
        prologue.append(f'{"iif" if direction == "in" else "oif"} "lo" return comment "loopback"')
    rules = [
        {
            "origin": rule_heading(rule),
            "statements": nftables.rule_statements(rule, policy),
            "comment": quoted(rule.name, nftables.MAX_COMMENT),
        }
        for rule in policy.rules
        if rule.direction == direction and rule.families
    ]
    record = [line for f in ("ipv4", "ipv6") for line in _record(direction, f, options, policy)]
    return {
        "name": HOOKS[direction],
        "hook": HOOKS[direction],
        "prologue": prologue,
        "rules": rules,
        "record": record,
    }


def render_shadow(
    policy: Policy, target: str = "nftables", options: ShadowOptions | None = None
) -> dict[str, str]:
    """The shadow of *policy* for *target*: ``{file name: text}``."""
    options = options or ShadowOptions()
    if target not in ("nftables", "iptables"):
        raise FwgenError(f"a shadow runs on nftables or iptables, not {target}")
    if policy.denies:
        raise FwgenError(
            f"{policy.denies[0].origin}: a shadow does not yet reproduce deny and reject rules;"
            " shadow the profile without them (its allow rules), then add them back"
        )
    # A connection cap, like a rate limit, is not reproduced: a capped rule counts as admitting.
    rules = tuple(r.replace(connlimit=None) for r in policy.rules)
    policy = policy.replace(rules=rules)
    if target == "iptables":
        refuse_unacknowledged_risks(policy)
        prefixes: dict[Family, int] = {"ipv4": options.prefix_v4, "ipv6": options.prefix_v6}
        mark = plain_ascii(comment(policy, options), nftables.MAX_COMMENT)
        return shadowipt.render_shadow(policy, directions(policy), prefixes, options.size, mark)
    refuse_unacknowledged_risks(policy)
    shadow = _renamed(policy)
    sets = [
        {
            "name": nftables.set_name(s.name, f),
            "type": nftables.ADDR_TYPE[f],
            "elements": s.family(f),
        }
        for s in shadow.sets
        for f in ("ipv4", "ipv6")
        if s.family(f) and s.name in {r.remote for r in shadow.rules}
    ]
    record_sets = []
    full_counters = []
    for direction in directions(policy):
        for family in ("ipv4", "ipv6"):
            last, first, full = set_names(direction, family)
            kind = f"{nftables.ADDR_TYPE[family]} . inet_proto . inet_service"
            record_sets += [
                {"name": last, "type": kind, "counter": True},
                {"name": first, "type": kind, "counter": False},
            ]
            full_counters.append(full)
    mark = quoted(comment(policy, options), nftables.MAX_COMMENT)
    context = {
        "table": TABLE,
        "timeout": TIMEOUT,
        "size": options.size,
        "priority": PRIORITY,
        "sets": sets,
        "record_sets": record_sets,
        "full_counters": full_counters,
        "chains": [_chain(shadow, d, options, mark) for d in directions(policy)],
    }
    text = (
        environment()
        .get_template("nftables/shadow.nft.j2")
        .render(header=header(policy, []), **context)
    )
    check_output(FILE, text)
    return {FILE: text}
