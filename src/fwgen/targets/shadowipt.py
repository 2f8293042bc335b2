"""The shadow of a profile for iptables (see `fwgen.targets.shadow` for nftables).

The mangle table runs before the filter table, after conntrack: fwgen's own chains
``FWGEN-SHADOW-IN`` (and ``FWGEN-SHADOW-OUT`` when the profile denies outbound), jumped
to first from INPUT (OUTPUT) for new connections only, hold the profile's rules with
RETURN for ACCEPT (one rule per address: no ipset of the live firewall is used), then
record what none of them admitted in ipsets of their own (``hash:ip,port`` with the
prefix as netmask):

- ``-last-`` is re-added with ``--exist`` at each sighting: its timeout, when it was last seen;
- ``-first-`` is added once: its timeout, when it was first seen;
- ``-count-`` counts: a key it holds is matched (its counter counts the packet); a new
  key is added (counted by the add) and matched without counting.

A key that cannot be added (the sets are full) reaches the chain's last rule, whose
counter says how many were not recorded. ipset timeouts stop at 2,147,483 seconds
(24.8 days): a key older than that is forgotten and its times with it. The set
``fwgen-shadow-loaded`` holds one element whose timeout started at the load.

The comment of each chain's first rule is the mark (`fwgen.policy.owned.SHADOW_MARK`),
which `fwgen.host.shadowipt` checks before it reads or removes anything.
"""

from __future__ import annotations

from typing import Any

from fwgen.policy.ir import Direction, Family, Policy
from fwgen.targets import iptables
from fwgen.targets.render import check_output, environment, header
from fwgen.targets.text import rule_heading

CHAINS: dict[Direction, str] = {"in": "FWGEN-SHADOW-IN", "out": "FWGEN-SHADOW-OUT"}
HOOKS: dict[Direction, str] = {"in": "INPUT", "out": "OUTPUT"}
JUMP = "fwgen shadow"
FULL = "fwgen shadow: the sets are full, not recorded"
LOADED = "fwgen-shadow-loaded"
TIMEOUT = 2147483  # ipset's longest timeout, in seconds
FILES: dict[Family, str] = {"ipv4": "fwgen-shadow.v4", "ipv6": "fwgen-shadow.v6"}
IPSETS = "fwgen-shadow.ipsets"


def set_name(kind: str, direction: Direction, family: Family) -> str:
    """``fwgen-shadow-count-in-v4``: no live set of fwgen's has a ``-`` after its first."""
    return f"fwgen-shadow-{kind}-{direction}-{'v4' if family == 'ipv4' else 'v6'}"


def _record(direction: Direction, family: Family) -> list[str]:
    chain, way = CHAINS[direction], ("src,dst" if direction == "in" else "dst,dst")
    last, first, count = (set_name(k, direction, family) for k in ("last", "first", "count"))
    return [
        f"-A {chain} -j SET --add-set {last} {way} --exist --timeout {TIMEOUT}",
        f"-A {chain} -j SET --add-set {first} {way}",
        f"-A {chain} -m set --match-set {count} {way} -j RETURN",
        f"-A {chain} -j SET --add-set {count} {way}",
        f"-A {chain} -m set --match-set {count} {way} ! --update-counters -j RETURN",
        f'-A {chain} -m comment --comment "{FULL}" -j RETURN',
    ]


def _ipsets(
    policy: Policy, directions: list[Direction], prefix: dict[Family, int], size: int, mark: str
) -> list[str]:
    lines = [
        f"create {LOADED} bitmap:port range 0-0 timeout {TIMEOUT} comment",
        f'add {LOADED} 0 comment "{mark}"',
    ]
    for direction in directions:
        for family in ("ipv4", "ipv6"):
            kind = "inet" if family == "ipv4" else "inet6"
            for what in ("last", "first", "count"):
                extra = " counters" if what == "count" else f" timeout {TIMEOUT}"
                lines.append(
                    f"create {set_name(what, direction, family)} hash:ip,port family {kind} "
                    f"netmask {prefix[family]} maxelem {size}{extra}"
                )
    return lines


def render_shadow(
    policy: Policy, directions: list[Direction], prefix: dict[Family, int], size: int, mark: str
) -> dict[str, str]:
    """The ipsets file and one mangle restore file per family."""
    env = environment()
    head = header(policy, [])
    files = {
        IPSETS: env.get_template("iptables/shadow-ipsets.j2").render(
            header=head, lines=_ipsets(policy, directions, prefix, size, mark)
        )
    }
    for family, name in FILES.items():
        chains: list[dict[str, Any]] = []
        for direction in directions:
            chain = CHAINS[direction]
            prologue = [
                f'-A {chain} -m conntrack ! --ctstate NEW -m comment --comment "{mark}" -j RETURN'
            ]
            if policy.loopback:
                prologue.append(f"-A {chain} {'-i' if direction == 'in' else '-o'} lo -j RETURN")
            rules = [
                {
                    "origin": rule_heading(rule),
                    "lines": iptables.rule_lines(
                        rule.replace(log=False, limit=None),
                        family,
                        policy,
                        None,
                        {},
                        chain,
                        verdict="RETURN",
                    ),
                }
                for rule in policy.rules
                if rule.direction == direction and family in rule.families
            ]
            chains.append(
                {
                    "name": chain,
                    "hook": HOOKS[direction],
                    "prologue": prologue,
                    "rules": rules,
                    "record": _record(direction, family),
                }
            )
        files[name] = env.get_template("iptables/shadow.j2").render(
            header=head,
            family=family,
            restore="iptables-restore" if family == "ipv4" else "ip6tables-restore",
            hooks=[HOOKS[d] for d in directions],
            chains=chains,
            jump_comment=JUMP,
        )
    for name, text in files.items():
        check_output(name, text)
    return files
