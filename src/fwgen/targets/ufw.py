"""ufw: a bash script of ``ufw`` commands that converges an active or inactive ufw.

Wanted rules are added first (ufw skips rules it has), then rules fwgen added
earlier and no longer wants are deleted, then the defaults are set and ufw is
enabled: there is never a moment without the firewall. fwgen's rules carry a
``fwgen: NAME [TAG]`` comment, TAG a hash of the rule, so a changed rule is a
new rule and the old one is recognised as stale.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from fwgen.errors import RenderError
from fwgen.icmp import ICMP_TYPES
from fwgen.policy import Family, Policy, Rule
from fwgen.targets import Build, OutputFile, RenderOptions
from fwgen.targets.iptables import port_groups
from fwgen.targets.text import comment_line, empty_note, plain_ascii, rule_heading

# What ufw's stock before.rules / before6.rules accept, by direction and protocol.
BEFORE_RULES = {
    ("in", "icmp"): {
        "destination-unreachable",
        "time-exceeded",
        "parameter-problem",
        "echo-request",
    },
    ("in", "icmpv6"): {
        "echo-reply",
        "destination-unreachable",
        "packet-too-big",
        "time-exceeded",
        "parameter-problem",
        "echo-request",
        "nd-router-solicit",
        "nd-router-advert",
        "nd-neighbor-solicit",
        "nd-neighbor-advert",
        "ind-neighbor-solicit",
        "ind-neighbor-advert",
        "mld-listener-query",
        "mld-listener-report",
        "mld-listener-done",
        "mld2-listener-report",
    },
    ("out", "icmp"): set(),
    ("out", "icmpv6"): {
        "destination-unreachable",
        "packet-too-big",
        "time-exceeded",
        "parameter-problem",
        "echo-request",
        "echo-reply",
        "nd-router-solicit",
        "nd-neighbor-advert",
        "nd-neighbor-solicit",
    },
}
ANY = {"ipv4": "0.0.0.0/0", "ipv6": "::/0"}
SPEC_CHARS = "A-Za-z0-9 .:/,_-"
WARN_ADDRESSES = 100  # ufw has no sets: one rule per address; above this, warn
MAX_ADDRESSES = 1000  # above this, refuse: use nftables or iptables with ipset


def _peers(rule: Rule, policy: Policy) -> list[str]:
    """The remote addresses, one ufw rule each; ``any`` when both families are open to all."""
    addresses = policy.remote_addresses(rule)
    if addresses is not None:
        return addresses
    return ["any"] if len(rule.families) == 2 else [ANY[f] for f in rule.families]


def _locals(rule: Rule, family_of_peer: Family | None) -> list[str]:
    if not rule.local:
        return ["any"]
    return list(rule.local) if family_of_peer is None else rule.local_of(family_of_peer)


def _family(address: str) -> Family | None:
    return None if address == "any" else ("ipv6" if ":" in address else "ipv4")


def _matches(rule: Rule, policy: Policy) -> list[tuple[str, str]]:
    """What ufw tells one port rule's ufw rules apart by: (" out" or "", "proto ... port ...").

    Not by allow or limit, log, or comment: adding a rule that differs only in those
    replaces the one ufw has.
    """
    way = "" if rule.direction == "in" else " out"
    out = []
    for peer in _peers(rule, policy):
        for local in _locals(rule, _family(peer)):
            for group in port_groups(rule.ports):
                src, dst = (peer, local) if rule.direction == "in" else (local, peer)
                out.append((way, f"proto {rule.proto} from {src} to {dst} port {','.join(group)}"))
    return out


@dataclass
class _UfwRule:
    """One ufw rule, standing for every port rule of the Policy that ufw sees as it.

    The Policy allows what any of them allows, so one without a limit makes it an allow
    rule; it is logged if any of them asks for a log.
    """

    name: str
    way: str
    match: str
    limit: bool
    log: bool

    def spec(self) -> str:
        action = "limit" if self.limit else "allow"
        return f"{action}{self.way}{' log' if self.log else ''} {self.match}"

    def tag(self) -> str:
        return hashlib.sha256(self.spec().encode()).hexdigest()[:10]

    def command(self) -> str:
        label = plain_ascii(f"fwgen: {self.name} [{self.tag()}]", 200)
        return f"ufw {self.spec()} comment '{label}'"


def _icmp_note(rule: Rule, warnings: list[str]) -> str:
    """ICMP cannot be set through the ufw command line; say what before.rules does."""
    allowed = BEFORE_RULES[(rule.direction, rule.proto)]
    missing = [t for t in rule.icmp_types if t not in allowed]
    if missing:
        warnings.append(
            f"{rule.name} ({rule.origin}): {rule.proto} {', '.join(missing)} cannot be allowed through "
            "the ufw command line and ufw's before rules do not accept it; these stay blocked"
        )
    if rule.limit is not None:
        warnings.append(
            f"{rule.name} ({rule.origin}): ufw's before rules accept {rule.proto} "
            f"{', '.join(rule.icmp_types)} without the {rule.limit} limit"
        )
    covered = [t for t in rule.icmp_types if t in allowed]
    return (
        f"already accepted by ufw's before rules: {rule.proto} {', '.join(covered)}"
        if covered
        else ""
    )


def _check_sizes(policy: Policy, warnings: list[str]) -> None:
    used = {r.remote for r in policy.rules if r.remote}
    for address_set in policy.sets:
        count = len(address_set.ipv4) + len(address_set.ipv6)
        if address_set.name not in used or count <= WARN_ADDRESSES:
            continue
        message = (
            f"network '{address_set.name}' ({address_set.origin}) has {count} addresses; ufw has no "
            "address sets, so each becomes a rule of its own"
        )
        if count > MAX_ADDRESSES:
            raise RenderError(
                f"ufw: {message}, and fwgen stops at {MAX_ADDRESSES}: use nftables or iptables (ipset)"
            )
        warnings.append(message)


def _add_rules(
    rule: Rule, policy: Policy, entry: dict[str, Any], ufw_rules: dict[tuple[str, str], _UfwRule]
) -> None:
    """The rule's ufw rules into its *entry*; those ufw already has from an earlier rule
    join that one instead, and the entry's note says so."""
    joined = []
    matches = _matches(rule, policy)
    for way, match in matches:
        twin = ufw_rules.get((way, match))
        if twin is None:
            new = _UfwRule(rule.name, way, match, rule.limit is not None, rule.log)
            ufw_rules[way, match] = new
            entry["commands"].append(new)
        else:
            twin.limit = twin.limit and rule.limit is not None
            twin.log = twin.log or rule.log
            joined.append(twin.name)
    if joined:
        entry["note"] = comment_line(
            f"merged into {', '.join(sorted(set(joined)))}'s above ({len(joined)} of "
            f"{len(matches)}): ufw keeps one rule per addresses and ports; it limits only if "
            "all of them limit, and logs if any logs"
        )


def build(policy: Policy, options: RenderOptions) -> Build:
    warnings: list[str] = []
    _check_sizes(policy, warnings)
    entries = []
    ufw_rules: dict[tuple[str, str], _UfwRule] = {}
    for rule in policy.rules:
        entry: dict[str, Any] = {
            "origin": rule_heading(rule),
            "commands": [],
            "note": empty_note(rule),
        }
        if rule.families and rule.proto in ("icmp", "icmpv6"):
            entry["note"] = _icmp_note(rule, warnings)
        elif rule.families:
            if rule.limit is not None:
                warnings.append(
                    f"{rule.name} ({rule.origin}): limit {rule.limit} approximated by ufw's fixed "
                    "limit (6 new connections in 30 seconds per source)"
                )
            _add_rules(rule, policy, entry, ufw_rules)
        entries.append(entry)
    for entry in entries:
        entry["commands"] = [ufw_rule.command() for ufw_rule in entry["commands"]]
    echo_in = any(r.direction == "in" and "echo-request" in r.icmp_types for r in policy.rules)
    if not echo_in:
        warnings.append(
            "ping is off, but ufw's before rules accept echo-request; remove those lines from "
            "/etc/ufw/before.rules and before6.rules to drop pings"
        )
    forward = {"drop": "deny", "accept": "allow", "ignore": ""}[policy.defaults.forward]
    context = {
        "policy": policy,
        "entries": entries,
        "tags": sorted({ufw_rule.tag() for ufw_rule in ufw_rules.values()}),
        "outgoing": "deny" if policy.defaults.outbound == "drop" else "allow",
        "routed": forward,
        "logging": "low" if policy.log_drops else "off",
        "spec_chars": SPEC_CHARS,
        "exclusive": options.flush_ruleset,
        "icmp_names": sorted(ICMP_TYPES),
    }
    return Build(files={"fwgen-ufw.sh": OutputFile("apply.sh.j2", context)}, warnings=warnings)
