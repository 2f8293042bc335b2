"""nftables: one ``inet fwgen`` table, replaced atomically each time the file is loaded."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from fwgen.policy.ir import FAMILIES, PORTED, Direction, Family, Policy, Rule
from fwgen.policy.owned import LABEL_LIMITS, rule_label
from fwgen.profile.addresses import PREFIX_BITS
from fwgen.profile.fields import PORTLESS
from fwgen.profile.icmp import hop_limit
from fwgen.targets import Build, OutputFile, RenderOptions, refuse_flushing_containers
from fwgen.targets.blocklists import need_blocklists, set_families, updatable_denies
from fwgen.targets.coexist import BRIDGES as ENGINE_BRIDGES
from fwgen.targets.coexist import FROM_ENGINE, NOT_INTO_ENGINE
from fwgen.targets.refusal import (
    NFT_LIMIT,
    REFUSED,
    REJECT_BURST,
    REJECT_RATE,
    Answer,
    answers,
    deny_label,
    nft_answer,
    refused_sources,
)
from fwgen.targets.text import (
    DROP_LOG_RATE,
    ESTABLISHED,
    drop_log_prefix,
    empty_note,
    identifier,
    queries_left_to_limits,
    quoted,
    rule_heading,
)

IP = {"ipv4": "ip", "ipv6": "ip6"}
ADDR_TYPE = {"ipv4": "ipv4_addr", "ipv6": "ipv6_addr"}
L4PROTO = {"icmp": "icmp", "icmpv6": "ipv6-icmp"}
MAX_COMMENT = LABEL_LIMITS["nftables"]
# A per-source meter holds this many sources; sources it cannot add while full are
# counted by their /OVERFLOW_PREFIX in an overflow meter, which has room for them all.
METER_SIZE = 65535
OVERFLOW_PREFIX = 16


def set_name(name: str, family: Family) -> str:
    return f"{name}_{'v4' if family == 'ipv4' else 'v6'}"


def elements(items: list[str] | tuple[str, ...]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


@dataclass
class Chain:
    name: str
    policy: str
    prologue: list[str] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)
    log: str = ""
    hook: str = ""
    priority: str = "filter"
    epilogue: list[str] = field(default_factory=list)
    base: bool = True  # hooked; else only jumped to

    def __post_init__(self) -> None:
        self.hook = self.hook or self.name


# Docker's and Podman's iptables-nft rules hook forward at priority filter (0): fwgen's
# chain comes first, and a drop in any base chain is final.
PUBLISHED_PRIORITY = "filter - 10"
DNAT = "ct status dnat"
# The engine's bridges (coexist.BRIDGES), as nftables' interface wildcards.
BRIDGES = {engine: tuple(b[:-1] + "*" for b in names) for engine, names in ENGINE_BRIDGES.items()}


def _container_chains(policy: Policy) -> list[Chain]:
    """New connections from outside into the engine's networks: those it DNATs
    (published ports), matched on their original destination, and those routed straight
    to a container (chain ``routed``), on their destination; each admitted by the inbound
    rules, the rest dropped. An accept here only ends fwgen's chain: the engine's rules
    still decide. Replies, what comes from the engine's bridges (containers to each
    other and to the outside) and what goes out on none of them (the admin's own port
    forwards, a VM's, Kubernetes' services, DNATed or not) are left to them."""
    engine = policy.containers
    assert engine is not None
    chain = Chain(
        "containers",
        "accept",
        [f"ct state established,related accept comment {quoted(ESTABLISHED, MAX_COMMENT)}"]
        + [
            f'iifname "{b}" accept comment {quoted(FROM_ENGINE, MAX_COMMENT)}'
            for b in BRIDGES[engine]
        ]
        + [
            " ".join(f'oifname != "{b}"' for b in BRIDGES[engine])
            + f" accept comment {quoted(NOT_INTO_ENGINE, MAX_COMMENT)}"
        ],
        hook="forward",
        priority=PUBLISHED_PRIORITY,
    )
    routed = Chain("routed", "", base=False)
    for each, match, what in (
        (chain, f"{DNAT} ", f"published by {engine}, allowed by no inbound rule"),
        (routed, "", f"routed to a container of {engine}, allowed by no inbound rule"),
    ):
        if policy.log_drops:
            prefix = quoted(drop_log_prefix("containers"), 60)
            each.epilogue.append(
                f'{match}limit rate {DROP_LOG_RATE} log prefix {prefix} comment "log what the policy drops"'
            )
        each.epilogue.append(f"{match}drop comment {quoted(what, MAX_COMMENT)}")
    chain.epilogue += [
        f'oifname "{b}" goto routed comment "routed to a container, not DNATed"'
        for b in BRIDGES[engine]
    ]
    return [chain, routed]


def _prologue(policy: Policy, direction: Direction) -> list[str]:
    """What every chain a profile filters starts with: loopback, the established
    shortcut (without the ICMP queries a rule rate-limits) and invalid packets."""
    out = []
    if policy.loopback:
        out.append(f'{"iif" if direction == "in" else "oif"} "lo" accept comment "loopback"')
    if policy.established:
        state = "ct state established,related"
        queries = policy.limited_queries(direction)
        protos = [L4PROTO[proto] for proto in queries]
        others = f" meta l4proto != {elements(protos)}" if protos else ""
        out.append(f"{state}{others} accept comment {quoted(ESTABLISHED, MAX_COMMENT)}")
        for proto, types in queries.items():
            comment = quoted(queries_left_to_limits(proto, types), MAX_COMMENT)
            out.append(f"{state} {proto} type != {elements(types)} accept comment {comment}")
    if policy.drop_invalid:
        out.append('ct state invalid drop comment "invalid packets"')
    return out


def _icmp_groups(rule: Rule) -> list[tuple[tuple[str, ...], int | None]]:
    """ICMP types by the hop limit they must arrive with: ICMPv6 neighbour discovery
    (255) and multicast listener discovery (1) each go in a statement of their own."""
    if not rule.icmp_types:
        return [((), None)]
    groups: dict[int | None, tuple[str, ...]] = {}
    for name in rule.icmp_types:
        groups[hop_limit(name)] = (*groups.get(hop_limit(name), ()), name)
    return [(types, hops) for hops, types in groups.items()]


def limit_key(policy: Policy, family: Family, peer: str, overflow: bool = False) -> str:
    """What a rate limit counts by: the peer address, or its prefix (`Policy.limit_prefix`);
    in the overflow meter, its /16 (or the rule's prefix, if shorter)."""
    prefix = policy.limit_prefix(family)
    if overflow:
        prefix = min(prefix, OVERFLOW_PREFIX)
    key = f"{IP[family]} {peer}"
    if prefix == PREFIX_BITS[family]:
        return key
    bits = PREFIX_BITS[family]
    mask = ipaddress.IPv4Address if family == "ipv4" else ipaddress.IPv6Address
    return f"{key} and {mask((1 << bits) - (1 << (bits - prefix)))}"


def _meters(rule: Rule, meter: str, policy: Policy, family: Family) -> list[str]:
    """The two ways a limited rule admits: a source its meter tracks (or can add) within
    its rate; a source the full meter cannot add, within its /16's rate in the overflow
    meter. A tracked source over its rate is in the meter, so the overflow skips it."""
    assert rule.limit is not None
    peer = "saddr" if rule.direction == "in" else "daddr"
    # TCP and UDP count new connections; ICMP counts messages (see _prologue)
    new = "ct state new " if rule.proto not in ("icmp", "icmpv6") else ""
    rate = f"limit rate {rule.limit.rate}/{rule.limit.unit} burst {rule.limit.burst} packets"
    key = limit_key(policy, family, peer)
    overflow = limit_key(policy, family, peer, overflow=True)
    tracked, untracked = set_name(meter, family), set_name(overflow_name(meter), family)
    return [
        f"{new}update @{tracked} {{ {key} {rate} }}",
        f"{new}{key} != @{tracked} update @{untracked} {{ {overflow} {rate} }}",
    ]


def overflow_name(meter: str) -> str:
    return f"{meter}_16"


def _interfaces(rule: Rule) -> list[str]:
    """The interface match of each statement: one for names, one per glob (``wg*``)."""
    if not rule.interfaces:
        return [""]
    way = "iifname" if rule.direction == "in" else "oifname"
    names = [f'"{name}"' for name in rule.interfaces]
    if any(name.endswith("*") for name in rule.interfaces):
        return [f"{way} {name}" for name in names]
    return [f"{way} {elements(names)}"]


# nftables finds the protocol of an IPv6 packet behind its extension headers, AH among
# them: AH is matched where it follows the IPv6 header itself (AH_V6_WARNING).
AH_V6_WARNING = (
    "{rule} ({origin}): nftables matches IPv6 AH only directly after the IPv6 header "
    "(ip6 nexthdr 51); AH behind other extension headers is dropped"
)


def _protocol(
    rule: Rule, icmp_types: tuple[str, ...], published: bool, family: Family | None
) -> str:
    """The protocol part: ports, ICMP types, or the IP protocol's number."""
    ports = elements([str(p) for p in rule.ports])
    if rule.proto in ("tcp", "udp") and published:
        return f"meta l4proto {rule.proto} ct original proto-dst {ports}"
    if rule.proto in PORTED:
        return f"{rule.proto} dport {ports}"
    if rule.proto == "ah" and family == "ipv6":
        return f"ip6 nexthdr {PORTLESS['ah']}"
    if rule.proto in PORTLESS:
        return f"meta l4proto {PORTLESS[rule.proto]}"
    return f"{rule.proto} type {elements(icmp_types)}"


def _statements(
    rule: Rule,
    meter: str,
    policy: Policy,
    published: bool = False,
    cap: str = "",
    judged: bool = True,
) -> list[str]:
    """The nft statements for one rule, verdicts included: one per family where the family
    must be named. *published*: for connections DNATed to containers, matched on their
    original destination address and port (DNAT rewrote both). *cap*: the sets of the
    rule's connection cap (`Rule.connlimit`), whose line comes before the accept.
    *judged*: False for the matches alone, without verdicts (what the shadow writes)."""
    if not rule.families:  # an empty network or interface group: nothing to admit
        return []
    peer, local = ("saddr", "daddr") if rule.direction == "in" else ("daddr", "saddr")
    original = "ct original " if published else ""
    verdicts = [nft_answer(a) for a in answers(rule.proto, rule.action)] if judged else [""]
    per_family = bool(rule.remote is not None or rule.limit is not None or rule.local or cap)
    per_family = per_family or rule.proto == "ah"
    out = []
    for families in [(f,) for f in rule.families] if per_family else [rule.families]:
        family = families[0] if len(families) == 1 else None
        for icmp_types, hops in _icmp_groups(rule):
            for interface in _interfaces(rule):
                parts = [DNAT] if published else []
                parts.append(interface)
                if rule.remote is not None and family:
                    parts.append(f"{IP[family]} {peer} @{set_name(rule.remote, family)}")
                if rule.local and family:
                    parts.append(
                        f"{original}{IP[family]} {local} {elements(rule.local_of(family))}"
                    )
                if (
                    family
                    and rule.proto in (*PORTED, *PORTLESS, "all")
                    and not (rule.remote or rule.local)
                ):
                    parts.append(f"meta nfproto {family}")
                if rule.proto != "all":  # a deny of every protocol names none
                    parts.append(_protocol(rule, icmp_types, published, family))
                if hops is not None:
                    parts.append(f"ip6 hoplimit {hops}")
                log = [f"log prefix {quoted(f'fwgen {rule.direction} {rule.name}: ', 60)}"]
                if cap and family:
                    key = limit_key(policy, family, peer)
                    over = f"{{ {key} ct count over {rule.connlimit} }}"
                    out.append(
                        " ".join(w for w in parts if w)
                        + f" ct state new add @{set_name(cap, family)} {over} reject with tcp reset"
                    )
                meter_parts = _meters(rule, meter, policy, family) if meter and family else [""]
                for meter_part in meter_parts:
                    words = [*parts, meter_part, *(log if rule.log else [])]
                    for verdict in verdicts:
                        out.append(" ".join(word for word in [*words, verdict] if word))
    return out


def rule_statements(rule: Rule, policy: Policy) -> list[str]:
    """What a rule matches, without its rate limit and log (what the shadow judges by)."""
    plain = rule.replace(log=False, limit=None, connlimit=None)
    return _statements(plain, "", policy, judged=False)


def _meter_name(rule: Rule, taken: set[str]) -> str:
    """limit_NAME, its sets named apart from every set in *taken* (which they join).

    *taken* starts with the address sets: a network may well be called ``limit_ssh``.
    The v4 and v6 meters of one name do not collide, so a rule of one family (ping's
    ICMP and ICMPv6 rules) may take the name its twin of the other family took.
    """
    base = identifier(f"limit_{rule.name}", set(), 40)
    name, n = base, 1
    while any(set_name(m, f) in taken for m in (name, overflow_name(name)) for f in rule.families):
        n += 1
        name = f"{base}_{n}"
    taken.update(set_name(m, f) for m in (name, overflow_name(name)) for f in rule.families)
    return name


def _refusals(policy: Policy) -> list[str]:
    """The default's rejects, before its drop (`options.refuse`): to every source or to
    those of ``refuse_from``, within the shared budget (`refusal`)."""
    comment = f"comment {quoted(REFUSED, MAX_COMMENT)}"
    sources: list[str] = [""]
    if policy.refuse_from is not None:
        sources = [
            f"{IP[f]} saddr @{set_name(policy.refuse_from, f)} "
            for f in ("ipv4", "ipv6")
            if refused_sources(policy, f)
        ]
    kinds = [
        ("meta l4proto tcp ", "tcp-reset"),
        ("meta l4proto udp ", "port-unreachable"),
        ("", "admin-prohibited"),
    ]
    return [
        f"{source}{proto}{nft_answer(Answer(how, limited=True))} {comment}"
        for source in sources
        for proto, how in kinds
    ]


def _sets_only(policy: Policy) -> Build:
    """``fwgen-sets.nft``: the blocklists flushed and refilled in one transaction."""
    names = need_blocklists(policy, "nftables")
    sets = [
        {"name": set_name(s.name, f), "elements": s.family(f)}
        for s in policy.sets
        if s.name in names
        for f in FAMILIES
    ]
    return Build(files={"fwgen-sets.nft": OutputFile("sets.nft.j2", {"sets": sets})})


def build(policy: Policy, options: RenderOptions) -> Build:
    if options.sets_only:
        return _sets_only(policy)
    refuse_flushing_containers(policy, options, "nftables")
    sets = [
        {"name": set_name(s.name, family), "type": ADDR_TYPE[family], "elements": s.family(family)}
        for s in policy.sets
        for family in set_families(policy, s)
    ]
    chains = {"in": Chain("input", "drop", _prologue(policy, "in"))}
    if policy.defaults.outbound == "drop":
        chains["out"] = Chain("output", "drop", _prologue(policy, "out"))
    if policy.containers is not None:
        chains["containers"], chains["routed"] = _container_chains(policy)
    limit_sets: list[dict[str, Any]] = []
    cap_sets: list[dict[str, Any]] = []
    taken: set[str] = {str(s["name"]) for s in sets}  # meters are sets too, in the same table
    for rule in updatable_denies(policy):
        label = deny_label(rule)
        chains[rule.direction].rules.append(
            {
                "origin": rule_heading(rule),
                "statements": _statements(rule, "", policy),
                "comment": quoted(label, MAX_COMMENT),
                "note": empty_note(rule),
            }
        )
    for rule in policy.rules:
        cap = ""
        if rule.connlimit is not None:
            cap = identifier(f"cap_{rule.name}", taken, 40)
            cap_sets += [
                {"name": set_name(cap, f), "type": ADDR_TYPE[f], "size": METER_SIZE}
                for f in rule.families
            ]
        meter = ""
        if rule.limit is not None:
            meter = _meter_name(rule, taken)
            timeout = f"{rule.limit.refill_seconds()}s"
            limit_sets += [
                {"name": set_name(name, f), "type": ADDR_TYPE[f], "timeout": timeout, "size": size}
                for f in rule.families
                for name, size in (
                    (meter, METER_SIZE),
                    (overflow_name(meter), 1 << OVERFLOW_PREFIX),
                )
            ]
        entry = {
            "origin": rule_heading(rule),
            "statements": _statements(rule, meter, policy, cap=cap),
            "comment": f'"{rule_label(rule, MAX_COMMENT)}"',
            "note": empty_note(rule),
        }
        chains[rule.direction].rules.append(entry)
        if "containers" in chains and rule.published():
            published = {**entry, "statements": _statements(rule, meter, policy, published=True)}
            chains["containers"].rules.append(published)
            chains["routed"].rules.append(entry)
    if policy.refuse == "reject":
        chains["in"].epilogue += _refusals(policy)
    if policy.defaults.forward != "ignore":
        chains["forward"] = Chain("forward", policy.defaults.forward)
    for chain in chains.values():
        if policy.log_drops and chain.policy == "drop":
            prefix = quoted(drop_log_prefix(chain.name), 60)
            chain.log = (
                f"limit rate {DROP_LOG_RATE} log prefix {prefix} comment "
                '"log what the policy drops"'
            )
    context = {
        "flush_ruleset": options.flush_ruleset,
        "policy": policy,
        "sets": sets,
        "limit_sets": limit_sets,
        "cap_sets": cap_sets,
        "refusals": {
            "name": NFT_LIMIT,
            "rate": f"{REJECT_RATE}/second burst {REJECT_BURST} packets",
        }
        if policy.refuse == "reject" or any(r.action == "reject" for r in policy.denies)
        else None,
        "chains": list(chains.values()),
    }
    warnings = [
        AH_V6_WARNING.format(rule=r.name, origin=r.origin)
        for r in policy.rules
        if r.proto == "ah" and "ipv6" in r.families
    ]
    return Build(files={"fwgen.nft": OutputFile("ruleset.nft.j2", context)}, warnings=warnings)
