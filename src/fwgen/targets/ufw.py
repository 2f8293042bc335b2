"""ufw: a bash script that converges an active or inactive ufw.

What ufw's command line can say (allow rules by port and address) are ``ufw``
commands: wanted rules are added first (ufw skips rules it has), then rules fwgen
added earlier and no longer wants are deleted, then the defaults are set and ufw is
enabled: there is never a moment without the firewall. fwgen's rules carry a
``fwgen: NAME [TAG]`` comment, TAG a hash of the rule, so a changed rule is a new
rule and the old one is recognised as stale.

What it cannot say (ICMP types, ping off, rate limits per source with their own rate
and burst, hop limits) goes, as the iptables target writes it, into a marked block of
``/etc/ufw/before.rules`` and ``before6.rules``, in ufw's own chains, ahead of
ufw's rules: the way ufw's documentation has admins change ICMP handling. The script
replaces the block and reloads ufw only when the block changed; everything else in
those files stays as it is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from fwgen.errors import RenderError
from fwgen.policy.ir import Direction, Family, Policy, Rule
from fwgen.policy.owned import CONTAINER_CHAINS, CONTAINERS, DOCKER_USER
from fwgen.targets import Build, OutputFile, RenderOptions, refuse_what_the_platform_accepts
from fwgen.targets.coexist import FIRST, STALE, container_lines, declared_check
from fwgen.targets.hashlimits import expiry_warnings, meters, trackers
from fwgen.targets.iptables import ICMP_MATCH, port_groups, prologue, refusal_lines, rule_lines
from fwgen.targets.text import CHAIN_NAMES, comment_line, empty_note, plain_ascii, rule_heading

BEFORE_FILES: dict[Family, str] = {"ipv4": "before.rules", "ipv6": "before6.rules"}
AFTER_FILES: dict[Family, str] = {"ipv4": "after.rules", "ipv6": "after6.rules"}
INIT_FILE = "before.init"  # run by ufw before it loads its rules, at boot too
ANY = {"ipv4": "0.0.0.0/0", "ipv6": "::/0"}
SPEC_CHARS = "A-Za-z0-9 .:/,_+-"
MAX_RULES = 5_000  # `ufw allow` takes a fraction of a second each: 5,000 is half an hour
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
    ways = [""] if rule.direction == "in" else [" out"]
    if rule.interfaces:  # ufw's glob is iptables' final +
        names = [name.replace("*", "+") for name in rule.interfaces]
        ways = [f" {rule.direction} on {name}" for name in names]
    out = []
    for way in ways:
        for peer in _peers(rule, policy):
            for local in _locals(rule, _family(peer)):
                for group in port_groups(rule.ports):
                    src, dst = (peer, local) if rule.direction == "in" else (local, peer)
                    ports = ",".join(group)
                    out.append((way, f"proto {rule.proto} from {src} to {dst} port {ports}"))
    return out


@dataclass
class _UfwRule:
    """One ufw rule, standing for every port rule of the Policy that ufw sees as it.

    The Policy allows what any of them allows; it is logged if any of them asks for a log.
    """

    name: str
    way: str
    match: str
    log: bool

    def spec(self) -> str:
        return f"allow{self.way}{' log' if self.log else ''} {self.match}"

    def tag(self) -> str:
        return hashlib.sha256(self.spec().encode()).hexdigest()[:10]

    def command(self) -> str:
        label = plain_ascii(f"fwgen: {self.name} [{self.tag()}]", 200)
        return f"ufw {self.spec()} comment '{label}'"


@dataclass
class _Block:
    """fwgen's block of one of ufw's before or after files: the lines between the markers."""

    family: Family
    file: str
    lines: list[str]
    # ufw's chains the block uses, declared when `iptables-restore --test` checks it alone
    uses: str = "before-input before-output before-forward logging-deny"

    @property
    def delimiter(self) -> str:
        """The here-document's end: no line of the block (all start with ``#``, ``:`` or
        ``-A``) is it."""
        return "FWGEN_" + self.file.upper().replace(".", "_")

    @property
    def prefix(self) -> str:
        return "ufw" if self.family == "ipv4" else "ufw6"

    @property
    def restore(self) -> str:
        """What checks the block alone; ``before.init``'s is checked by ``sh -n``."""
        if self.file == INIT_FILE:
            return ""
        return "iptables-restore" if self.family == "ipv4" else "ip6tables-restore"

    def chain(self, direction: str) -> str:
        return f"{self.prefix}-before-{CHAIN_NAMES[direction]}"

    def drop(self, chain: str, match: str) -> list[str]:
        """Dropped as ufw drops: through its logging chain (silent unless `ufw logging`)."""
        return [f"-A {chain} {match} -j {self.prefix}-logging-deny", f"-A {chain} {match} -j DROP"]


# What ufw's stock before.rules and before6.rules accept from anyone, ahead of the
# user's rules, besides ICMP (which the block decides before them): DHCP and DHCPv6
# replies, mDNS and SSDP. Each match, as those files write it, and its port.
STOCK_ACCEPTS: dict[Family, tuple[tuple[str, int], ...]] = {
    "ipv4": (
        ("-p udp -m udp --sport 67 --dport 68", 68),
        ("-d 224.0.0.251/32 -p udp -m udp --dport 5353", 5353),
        ("-d 239.255.255.250/32 -p udp -m udp --dport 1900", 1900),
    ),
    "ipv6": (
        ("-s fe80::/10 -d fe80::/10 -p udp -m udp --sport 547 --dport 546", 546),
        ("-d ff02::fb/128 -p udp -m udp --dport 5353", 5353),
        ("-d ff02::f/128 -p udp -m udp --dport 1900", 1900),
    ),
}


def _stock_accepts(policy: Policy, block: _Block) -> list[str]:
    """ufw's stock accepts, decided as the Policy decides them: its rules that admit any
    of that traffic (here too, as the iptables target writes them), then the rest of it
    dropped (but for loopback and established traffic, which ufw accepts next, as the
    Policy does), ahead of the stock lines, which are left as they are."""
    chain, stock = block.chain("in"), STOCK_ACCEPTS[block.family]
    ports = ", ".join(f"udp {port}" for _, port in stock)
    out = [f"# ufw's own rules accept {ports} from anyone; here, as the profile says"]
    for rule in policy.rules:
        if (
            rule.direction == "in"
            and rule.proto == "udp"
            and block.family in rule.families
            and not _in_block(rule)
            and any(r.start <= port <= r.end for _, port in stock for r in rule.ports)
        ):
            out.append(f"# {rule_heading(rule)}")
            out += rule_lines(rule, block.family, policy, None, {}, chain)
    for match, _ in stock:  # loopback and established traffic: ufw's own lines accept them
        out += block.drop(chain, f"! -i lo {match} -m conntrack ! --ctstate ESTABLISHED,RELATED")
    return out


def _in_block(rule: Rule) -> bool:
    """What ufw's command line cannot say: ICMP, SCTP, rate limits of their own rate and
    burst, connection caps; and, to keep every protocol in one place, ESP, AH and GRE."""
    return rule.proto not in ("tcp", "udp") or rule.limit is not None or rule.connlimit is not None


# Deny and reject rules in the block come before ufw's own established accept, so they
# see new connections only, as on every target (`fwgen.policy.denies`).
NEW_ONLY = {"in": "! -i lo", "out": "! -o lo"}


def _denies_in_block(policy: Policy, block: _Block, direction: Direction) -> list[str]:
    """The deny and reject rules of one direction, first in the block."""
    out = []
    for rule in policy.denies:
        if rule.direction == direction and block.family in rule.families:
            # a rule on interfaces names its own (one -i/-o a rule): loopback is none of them
            way = "" if rule.interfaces else f" {NEW_ONLY[direction]}"
            chain = f"{block.chain(direction)}{way} -m conntrack ! --ctstate ESTABLISHED,RELATED"
            out.append(f"# {rule_heading(rule)}")
            out += rule_lines(rule, block.family, policy, None, {}, chain)
    return out


def _refusal_blocks(policy: Policy, blocks: list[_Block]) -> list[_Block]:
    """The default's rejects (`options.refuse`), in fwgen's block of after.rules and
    after6.rules: ufw-after-input comes after every rule of ufw's, before its policy."""
    if policy.refuse != "reject":
        return []
    out = []
    for family, file in AFTER_FILES.items():
        lines = refusal_lines(
            policy, family, f"{'ufw' if family == 'ipv4' else 'ufw6'}-after-input"
        )
        found = next((b for b in blocks if b.file == file), None)
        if found is not None:
            found.lines += lines
            found.uses += " after-input"
        else:
            out.append(_Block(family, file, lines, uses="after-input"))
    return out


def _rules_in_block(
    policy: Policy, block: _Block, direction: Direction, of_icmp: bool
) -> list[str]:
    """The block's lines for the rules of one direction: its ICMP rules, or its others."""
    names = meters(policy)
    out = []
    for rule in policy.rules:
        if (
            rule.direction == direction
            and block.family in rule.families
            and _in_block(rule)
            and (rule.proto in ("icmp", "icmpv6")) == of_icmp
        ):
            chain, limits = block.chain(direction), names.get(id(rule))
            out.append(f"# {rule_heading(rule)}")
            out += rule_lines(rule, block.family, policy, limits, {}, chain)
    return out


def _blocks(policy: Policy) -> list[_Block]:
    """ICMP, exactly as the Policy says: the iptables target's chain start for ICMP, the
    ICMP rules, and every other ICMP message dropped, before ufw's own rules (which
    accept echo requests and more from anyone); then the rate-limited port rules."""
    directions: list[Direction] = ["in", "out"] if policy.defaults.outbound == "drop" else ["in"]
    blocks = []
    for family, file in BEFORE_FILES.items():
        block = _Block(family, file, [])
        icmp = f"-p {ICMP_MATCH[family][0]}"
        for direction in ("in", "out"):
            block.lines += _denies_in_block(policy, block, direction)
            if direction not in directions:
                continue
            chain = block.chain(direction)
            block.lines += prologue(policy, direction, family, chain, icmp_only=True)
            block.lines += _rules_in_block(policy, block, direction, of_icmp=True)
            block.lines += block.drop(chain, icmp)
            block.lines += _rules_in_block(policy, block, direction, of_icmp=False)
            if direction == "in":
                block.lines += _stock_accepts(policy, block)
        if policy.defaults.forward == "drop":  # ufw's own rules forward ICMP errors and pings
            block.lines += block.drop(block.chain("forward"), icmp)
        blocks.append(block)
    if policy.containers is not None:
        blocks += _container_blocks(policy)
    blocks += _refusal_blocks(policy, blocks)
    # The rate limits' trackers (ipsets) must exist before ufw loads the rules that
    # name them, at every start: fwgen's block of before.init creates them.
    creates = [f'[ "$1" != start ] || ipset -exist {line}' for _, _, line in trackers(policy)]
    blocks.append(_Block("ipv4", INIT_FILE, creates))
    return blocks


def _container_blocks(policy: Policy) -> list[_Block]:
    """The container chains of fwgen's own (see `coexist`), declared (so emptied) and
    filled in a block of ``after.rules`` and ``after6.rules`` each time ufw loads them.
    The script puts the jump from Docker's ``DOCKER-USER`` first; ufw's own chains see
    none of this traffic."""
    if policy.containers != "docker":
        raise RenderError(
            f"ufw: containers: {policy.containers} cannot be expressed: ufw has no chain the "
            "engine evaluates first (Docker's DOCKER-USER); use nftables or iptables"
        )
    names = meters(policy)
    blocks = []
    for family, file in AFTER_FILES.items():
        declared = [f":{chain} - [0:0]" for chain in CONTAINER_CHAINS]
        block = _Block(family, file, declared, uses="logging-deny")

        def lines(rule: Rule, f: Family, chain: str, published: bool) -> list[str]:
            return rule_lines(rule, f, policy, names.get(id(rule)), {}, chain, published, "RETURN")

        block.lines += container_lines(
            policy,
            family,
            lines,
            block.drop,
            log=False,  # ufw-logging-deny logs as `ufw logging` says
        )
        blocks.append(block)
    return blocks


def _check_sizes(policy: Policy, warnings: list[str]) -> None:
    used = {r.remote for r in (*policy.rules, *policy.denies) if r.remote}
    for address_set in policy.sets:
        count = len(address_set.ipv4) + len(address_set.ipv6)
        if address_set.name not in used or count <= WARN_ADDRESSES:
            continue
        message = (
            f"{address_set.words()} ({address_set.origin}) has {count} addresses; ufw has no "
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
            new = _UfwRule(rule.name, way, match, rule.log)
            ufw_rules[way, match] = new
            entry["commands"].append(new)
        else:
            twin.log = twin.log or rule.log
            joined.append(twin.name)
    if joined:
        entry["note"] = comment_line(
            f"merged into {', '.join(sorted(set(joined)))}'s above ({len(joined)} of "
            f"{len(matches)}): ufw keeps one rule per addresses and ports; it logs if any logs"
        )


def build(policy: Policy, options: RenderOptions) -> Build:
    refuse_what_the_platform_accepts(
        policy, "ufw", "ufw's before.rules accept loopback and established traffic first"
    )
    warnings = expiry_warnings(policy)
    _check_sizes(policy, warnings)
    entries = []
    ufw_rules: dict[tuple[str, str], _UfwRule] = {}
    for rule in policy.rules:
        if rule.families and _in_block(rule):
            continue  # in the block, under the same heading
        entry: dict[str, Any] = {
            "origin": rule_heading(rule),
            "commands": [],
            "note": empty_note(rule),
        }
        if rule.families:
            _add_rules(rule, policy, entry, ufw_rules)
        entries.append(entry)
    if len(ufw_rules) > MAX_RULES:
        raise RenderError(
            f"ufw: this profile needs {len(ufw_rules):,} ufw rules (addresses times ports), and "
            f"fwgen stops at {MAX_RULES:,}: ufw runs one command per rule and has no sets; "
            "use nftables or iptables (ipset)"
        )
    for entry in entries:
        entry["commands"] = [ufw_rule.command() for ufw_rule in entry["commands"]]
    forward = {"drop": "deny", "accept": "allow", "ignore": ""}[policy.defaults.forward]
    blocks = _blocks(policy)
    context = {
        "policy": policy,
        "entries": entries,
        "blocks": blocks,
        # after.rules and after6.rules without a block this time: an earlier one taken out
        "leaves": [f for f in AFTER_FILES.values() if f not in {b.file for b in blocks}],
        "tags": sorted({ufw_rule.tag() for ufw_rule in ufw_rules.values()}),
        "outgoing": "deny" if policy.defaults.outbound == "drop" else "allow",
        "routed": forward,
        "log_drops": policy.log_drops,
        "spec_chars": SPEC_CHARS,
        "exclusive": options.flush_ruleset,
        "functions": [FIRST, declared_check(skip_block=True)] if policy.containers else [STALE],
        "docker_user": DOCKER_USER,
        "containers": CONTAINERS,
        "container_chains": CONTAINER_CHAINS,
        "rule_files": [
            f"/etc/ufw/{name}" for name in (*BEFORE_FILES.values(), *AFTER_FILES.values())
        ],
        "trackers": [line for _, _, line in trackers(policy)],
        "init_file": INIT_FILE,
    }
    return Build(files={"fwgen-ufw.sh": OutputFile("apply.sh.j2", context)}, warnings=warnings)
