"""iptables: iptables-restore files ``rules.v4`` and ``rules.v6`` (the iptables-persistent names).

``iptables-restore`` replaces the whole filter table of its family, so this target
owns that table; the header says so. In both modes fwgen's rules live in chains of its
own (``FWGEN-INPUT``, ...) that the built-in chains jump to: a whole-table load
declares the jumps itself, the coexist loader puts them in place (see `coexist`), so a
host moved from one mode to the other keeps no rule of the old profile. Address sets larger than IPSET_FROM per family
go into an ``ipsets`` file for ``ipset restore`` (loaded first), matched with one
``-m set`` rule each, so rule count and per-packet cost do not grow with the list.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from itertools import product
from typing import Any

from fwgen.policy.ir import PORTED, Direction, Family, Policy, PortRange, Proto, Rule
from fwgen.policy.owned import CONTAINER_CHAINS, DOCKER_USER, LABEL_LIMITS, rule_label
from fwgen.profile.fields import PORTLESS
from fwgen.profile.icmp import ICMP_TYPES, ICMPV6_TYPES, hop_limit
from fwgen.targets import Build, OutputFile, RenderOptions, refuse_flushing_containers
from fwgen.targets import coexist as coexist_chains
from fwgen.targets.blocklists import blocklist_sets, need_blocklists, updatable_denies
from fwgen.targets.hashlimits import Meter, expiry_warnings, limited_lines, meters, trackers
from fwgen.targets.refusal import (
    REFUSED,
    Answer,
    answers,
    deny_label,
    ipt_answer,
    refused_sources,
)
from fwgen.targets.text import (
    DROP_LOG_LIMIT,
    ESTABLISHED,
    drop_log_prefix,
    empty_note,
    queries_left_to_limits,
    quoted,
    rule_heading,
)

FILES: dict[Family, str] = {"ipv4": "rules.v4", "ipv6": "rules.v6"}
FORWARD_CHAIN = coexist_chains.FORWARD_CHAIN
# The built-in chain each of fwgen's chains is jumped to from (whole-table mode), whose
# name its drop log carries
BUILTIN_OF = {
    coexist_chains.OWN_CHAINS["in"]: "INPUT",
    coexist_chains.OWN_CHAINS["out"]: "OUTPUT",
    FORWARD_CHAIN: "FORWARD",
}
ICMP_MATCH = {  # -p, the match, its type option
    "ipv4": ("icmp", "-m icmp", "--icmp-type"),
    "ipv6": ("ipv6-icmp", "-m icmp6", "--icmpv6-type"),
}
ICMP_PROTO: dict[Family, Proto] = {"ipv4": "icmp", "ipv6": "icmpv6"}
# What --flush-ruleset empties besides the filter table, as `flush ruleset` does for nft.
OTHER_TABLES = {
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
}
FLUSHED = "the nat, mangle and raw tables"
MULTIPORT_MAX = 15  # a range counts as two
IPSET_FROM = 16  # address sets larger than this (per family) become ipsets: O(1) per packet
IPSET_FILE = "ipsets"
LOADER = "fwgen-iptables.sh"  # loads the files beside other programs' chains (coexist)
IPSET_MAX_NAME = 31  # ipset's IPSET_MAXNAMELEN, less the terminating NUL
IPSET_SWAP = "-n"  # the ipsets file fills NAME-n and swaps it with NAME
MAX_COMMENT = LABEL_LIMITS["iptables"]


def port_groups(ports: tuple[PortRange, ...]) -> list[list[str]]:
    """Ports in groups that fit one ``-m multiport`` match (15 slots, a range takes 2)."""
    groups: list[list[str]] = [[]]
    used = 0
    for port in ports:
        cost = 1 if port.start == port.end else 2
        if used + cost > MULTIPORT_MAX:
            groups.append([])
            used = 0
        groups[-1].append(str(port.start) if cost == 1 else f"{port.start}:{port.end}")
        used += cost
    return groups


def _proto_matches(rule: Rule, family: Family) -> list[str]:
    """The protocol part of each rule line: one per port group or ICMP type."""
    if rule.proto == "all":
        return [""]
    if rule.proto == "ah" and family == "ipv6":  # an extension header: -p never sees it
        return ["-m ah"]
    if rule.proto in PORTLESS:
        return [f"-p {PORTLESS[rule.proto]}"]
    if rule.proto in PORTED:
        out = []
        for group in port_groups(rule.ports):
            if len(group) == 1 and ":" not in group[0]:
                out.append(f"-p {rule.proto} -m {rule.proto} --dport {group[0]}")
            else:
                out.append(f"-p {rule.proto} -m multiport --dports {','.join(group)}")
        return out
    if family == "ipv4":
        return [f"-p icmp -m icmp --icmp-type {ICMP_TYPES[t]}" for t in rule.icmp_types]
    return [
        f"-p ipv6-icmp -m icmp6 --icmpv6-type {ICMPV6_TYPES[t]}"
        + (f" -m hl --hl-eq {hop_limit(t)}" if hop_limit(t) else "")
        for t in rule.icmp_types
    ]


def prologue(
    policy: Policy, direction: Direction, family: Family, chain: str, icmp_only: bool = False
) -> list[str]:
    """What every chain a profile filters starts with: loopback, the established
    shortcut (without the ICMP queries a rule rate-limits: `Policy.limited_queries`)
    and invalid packets. With *icmp_only*, the same for ICMP alone (ufw's block)."""
    proto, match, option = ICMP_MATCH[family]
    numbers = ICMP_TYPES if family == "ipv4" else ICMPV6_TYPES
    icmp = f" -p {proto}" if icmp_only else ""
    out = []
    if policy.loopback:
        way = "-i" if direction == "in" else "-o"
        out.append(f'-A {chain} {way} lo{icmp} -m comment --comment "loopback" -j ACCEPT')
    if policy.established:
        state = "-m conntrack --ctstate ESTABLISHED,RELATED"
        everything = f"-m comment --comment {quoted(ESTABLISHED, MAX_COMMENT)} -j ACCEPT"
        types = policy.limited_queries(direction).get(ICMP_PROTO[family], ())
        if not types:
            out.append(f"-A {chain}{icmp} {state} {everything}")
        else:
            if not icmp_only:
                out.append(f"-A {chain} ! -p {proto} {state} {everything}")
            others = "".join(f" {match} ! {option} {numbers[t]}" for t in types)
            comment = quoted(queries_left_to_limits(ICMP_PROTO[family], types), MAX_COMMENT)
            out.append(
                f"-A {chain} -p {proto}{others} {state} -m comment --comment {comment} -j ACCEPT"
            )
    if policy.drop_invalid:
        out.append(
            f'-A {chain}{icmp} -m conntrack --ctstate INVALID -m comment --comment "invalid packets" -j DROP'
        )
    return out


def ipset_names(set_names: Iterable[str]) -> dict[str, str]:
    """The ipset base name of each address set: ``fwgen-NAME``, completed by ``-v4``/``-v6``.

    ipset names have at most 31 characters, and the ipsets file fills each set under a
    temporary ``BASE-v4-n``, so a base has at most 26. A longer NAME keeps its first 11
    characters and ends in ``-`` and a hash of all of it. Set names have no ``-``, so a
    shortened base never equals a whole one; should two hashes agree, the later name
    (in sorted order) hashes again with a counter.
    """
    room = IPSET_MAX_NAME - len(IPSET_SWAP) - len("-v4")
    taken: set[str] = set()
    out = {}
    for name in sorted(set(set_names)):
        base, n = f"fwgen-{name}", 0
        while len(base) > room or base in taken:
            n += 1
            digest = hashlib.sha256((name if n == 1 else f"{name}#{n}").encode()).hexdigest()
            base = f"fwgen-{name[: room - len('fwgen--') - 8]}-{digest[:8]}"
        taken.add(base)
        out[name] = base
    return out


def ipset_name(base: str, family: Family) -> str:
    return base + ("-v4" if family == "ipv4" else "-v6")


# Every set is created with the same settings, whatever its size: `create NAME ... -exist`
# fails when a set of that name exists with other settings, so sizing sets to their lists
# would stop the next load once a list grows. The hash grows by itself from its initial
# size; maxelem holds the most addresses a profile may have (see resolve).
IPSET_HASHSIZE = 1024
IPSET_MAXELEM = 1 << 21


def _ipsets(policy: Policy) -> list[dict[str, Any]]:
    """The address sets, per family, that are too large for one rule per address, and
    those of deny and reject rules, which `--sets-only` updates (`blocklists`)."""
    used = {r.remote for r in policy.rules if r.remote}
    denied = blocklist_sets(policy)
    large = [
        (address_set, family)
        for address_set in policy.sets
        for family in FILES
        if address_set.name in denied
        or (address_set.name in used and len(address_set.family(family)) > IPSET_FROM)
    ]
    bases = ipset_names(s.name for s, _ in large)
    out = []
    for address_set, family in large:
        elements = address_set.family(family)
        out.append(
            {
                "key": (address_set.name, family),
                "name": ipset_name(bases[address_set.name], family),
                "family": "inet" if family == "ipv4" else "inet6",
                "hashsize": IPSET_HASHSIZE,
                "maxelem": IPSET_MAXELEM,
                "elements": elements,
            }
        )
    return out


def rule_lines(
    rule: Rule,
    family: Family,
    policy: Policy,
    meter: Meter | None,
    ipsets: dict[tuple[str, str], str],
    chain: str,
    published: bool = False,
    verdict: str = "ACCEPT",
) -> list[str]:
    """The rule lines for one family (a limited rule's: `hashlimits.limited_lines`). *published*: for
    connections DNATed to containers, matched on their original destination address
    and port. *verdict*: RETURN in the container chains (see `coexist`)."""
    peer, local = ("-s", "-d") if rule.direction == "in" else ("-d", "-s")
    remotes = [""]
    if rule.remote is not None and (rule.remote, family) in ipsets:
        way = "src" if rule.direction == "in" else "dst"
        remotes = [f"-m set --match-set {ipsets[rule.remote, family]} {way} "]
    elif rule.remote is not None:
        remotes = [f"{peer} {a} " for a in policy.address_set(rule.remote).family(family)]
    locals_ = [f"{local} {a} " for a in rule.local_of(family)] or [""]
    way = "-i" if rule.direction == "in" else "-o"
    # iptables' glob is a final +
    interfaces = [f"{way} {i.replace('*', '+')} " for i in rule.interfaces] or [""]
    protos = _proto_matches(rule, family)
    if published:  # one conntrack match: the original destination and port
        dests = [f"--ctorigdst {a} " for a in rule.local_of(family)] or [""]
        ports = [str(p).replace("-", ":") for p in rule.ports]
        locals_ = [""]
        protos = [
            f"-p {rule.proto} -m conntrack --ctstate DNAT {d}--ctorigdstport {p}"
            for d in dests
            for p in ports
        ]
    targets = [ipt_answer(a, family, verdict) for a in answers(rule.proto, rule.action)]
    label = deny_label(rule) if rule.action != "accept" else rule_label(rule, MAX_COMMENT)
    comment = f" -m comment --comment {quoted(label, MAX_COMMENT)}"
    out = []
    for interface, remote, dest, proto in product(interfaces, remotes, locals_, protos):
        match = f"-A {chain} {interface}{remote}{dest}{proto}".rstrip()
        prefix = quoted(f"fwgen {rule.direction} {rule.name}: ", 28)
        log = f"-j LOG --log-prefix {prefix}" if rule.log else ""
        if rule.connlimit is not None:
            out.append(f"{match}{cap_match(rule, family, policy)}{comment} {CAP_TARGET}")
        if meter is not None:
            target = f"-j {targets[0][1]}"
            out += limited_lines(rule, family, policy, meter, match, comment, log, target)
            continue
        if log:
            out.append(f"{match}{comment} {log}")
        out += [f"{match}{extra}{comment} -j {target}" for extra, target in targets]
    return out


CAP_TARGET = "-j REJECT --reject-with tcp-reset"


def cap_match(rule: Rule, family: Family, policy: Policy) -> str:
    """What finds a connection over a rule's cap (`Rule.connlimit`): new, from a source
    (or its prefix, as the rate limits count) with that many open already."""
    way = "saddr" if rule.direction == "in" else "daddr"
    return (
        f" -m conntrack --ctstate NEW -m connlimit --connlimit-above {rule.connlimit}"
        f" --connlimit-mask {policy.limit_prefix(family)} --connlimit-{way}"
    )


def refusal_lines(policy: Policy, family: Family, chain: str) -> list[str]:
    """The default's rejects (`options.refuse`), at the end of INPUT (`refusal`)."""
    if policy.refuse != "reject":
        return []
    sources = refused_sources(policy, family)
    comment = f" -m comment --comment {quoted(REFUSED, MAX_COMMENT)}"
    out = []
    for source in [""] if sources is None else [f" -s {a}" for a in sources]:
        for proto, how in (
            ("tcp", "tcp-reset"),
            ("udp", "port-unreachable"),
            ("", "admin-prohibited"),
        ):
            extra, target = ipt_answer(Answer(how, limited=True), family)
            match = f" -p {proto}" if proto else ""
            out.append(f"-A {chain}{source}{match}{extra}{comment} -j {target}")
    return out


# ufw's files: a section there that declares DOCKER-USER empties it at each ufw load.
UFW_RULE_FILES = tuple(f"/etc/ufw/{n}.rules" for n in ("before", "before6", "after", "after6"))


def own_chains(policy: Policy) -> list[str]:
    """The chains fwgen's files declare (so empty and fill at each load): its own only."""
    out = [
        c
        for d, c in coexist_chains.OWN_CHAINS.items()
        if d == "in" or policy.defaults.outbound == "drop"
    ]
    return out + (list(CONTAINER_CHAINS) if policy.containers is not None else [])


def _sets_only(policy: Policy) -> Build:
    """The ``ipsets`` file of the blocklists alone: each filled and swapped in."""
    names = need_blocklists(policy, "iptables")
    ipsets = [s for s in _ipsets(policy) if s["key"][0] in names]
    return Build(
        files={
            IPSET_FILE: OutputFile("ipsets.j2", {"sets": ipsets, "trackers": [], "sets_only": True})
        }
    )


def build(policy: Policy, options: RenderOptions) -> Build:
    if options.sets_only:
        return _sets_only(policy)
    refuse_flushing_containers(policy, options, "iptables")
    warnings = expiry_warnings(policy)
    coexist = policy.coexist and not options.flush_ruleset
    if policy.defaults.forward == "ignore" and not coexist:
        warnings.append(
            "forward: ignore cannot be expressed: iptables-restore replaces the whole filter table; "
            "FORWARD is left at ACCEPT with no rules of fwgen's"
        )
    files = {}
    ipsets = _ipsets(policy)
    in_ipsets = {s["key"]: s["name"] for s in ipsets}
    limits = trackers(policy)
    if ipsets or limits:
        context = {"sets": ipsets, "trackers": [t[2] for t in limits], "sets_only": False}
        files[IPSET_FILE] = OutputFile("ipsets.j2", context)
    names = meters(policy)
    forward = {"drop": "DROP", "accept": "ACCEPT", "ignore": "ACCEPT"}[policy.defaults.forward]
    output = "DROP" if policy.defaults.outbound == "drop" else "ACCEPT"
    names_of = coexist_chains.OWN_CHAINS
    log_forward = forward == "DROP" and policy.log_drops and not coexist
    declared = own_chains(policy) + ([FORWARD_CHAIN] if log_forward else [])
    for family, filename in FILES.items():
        chains: list[dict[str, Any]] = [
            {
                "name": chain,
                "prologue": prologue(policy, direction, family, chain),
                "rules": [],
                "epilogue": refusal_lines(policy, family, chain) if direction == "in" else [],
            }
            for direction, chain in names_of.items()
            if direction == "in" or output == "DROP"
        ]
        for rule in (*updatable_denies(policy), *policy.rules):
            if rule.families and family not in rule.families:
                continue
            lines = rule_lines(
                rule,
                family,
                policy,
                names.get(id(rule)),
                in_ipsets,
                names_of[rule.direction],
            )
            entry = {
                "origin": rule_heading(rule),
                "lines": lines if rule.families else [],
                "note": empty_note(rule),
            }
            chains[0 if rule.direction == "in" else 1]["rules"].append(entry)
        # FORWARD's drop log, in a whole-table load only: in its own chain, which the
        # coexist loader deletes (the coexist mode leaves FORWARD to others)
        if log_forward:
            chains.append({"name": FORWARD_CHAIN, "prologue": [], "rules": [], "epilogue": []})
        containers: list[str] = []
        if coexist and policy.containers is not None:
            containers = coexist_chains.container_lines(
                policy,
                family,
                lambda rule, f, chain, published: rule_lines(
                    rule, f, policy, names.get(id(rule)), in_ipsets, chain, published, "RETURN"
                ),
                lambda chain, match: [f"-A {chain} {match} -j DROP"],
            )
        for chain in chains:
            prefix = quoted(drop_log_prefix(BUILTIN_OF[str(chain["name"])]), 28)
            chain["log"] = (
                f"-A {chain['name']} -m limit --limit {DROP_LOG_LIMIT} -m comment --comment "
                f'"log what the policy drops" -j LOG --log-prefix {prefix}'
                if policy.log_drops
                else ""
            )
        context = {
            "policy": policy,
            "family": family,
            "forward": forward,
            "output": output,
            "chains": chains,
            "ipsets": [s["name"] for s in ipsets if s["key"][1] == family]
            + [name for f, name, _ in limits if f == family],
            "other_tables": OTHER_TABLES if options.flush_ruleset else {},
            "flushed": FLUSHED,
            "coexist": coexist,
            "own_chains": declared,
            "jumps": [] if coexist else [f"-A {BUILTIN_OF[c]} -j {c}" for c in declared],
            "containers": containers,
        }
        files[filename] = OutputFile("rules.j2", context)
    if coexist:
        loader: dict[str, Any] = {
            "policy": policy,
            "own_chains": own_chains(policy),
            "stale_chains": [c for c in coexist_chains.LOADED_CHAINS if c not in declared],
            "jumps": coexist_chains.jumps(policy),
            "docker_user": DOCKER_USER if policy.containers == "docker" else "",
            # fwgen relies on no chain of others without containers: nothing to check
            "functions": [
                coexist_chains.OURS,
                coexist_chains.whole_table_check(),
                coexist_chains.STALE,
                *(
                    [coexist_chains.FIRST, coexist_chains.declared_check(skip_block=False)]
                    if policy.containers is not None
                    else []
                ),
            ],
            "ufw_files": UFW_RULE_FILES if policy.containers is not None else (),
            "ipsets": bool(ipsets or limits),
            "commands": {"ipv4": "iptables", "ipv6": "ip6tables"},
            "files": FILES,
        }
        files[LOADER] = OutputFile("apply.sh.j2", loader)
    return Build(files=files, warnings=warnings)
