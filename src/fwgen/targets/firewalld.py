"""firewalld: a zone of fwgen's own, the ipsets and policies it needs, and a script that
installs them.

The zone ``fwgen`` (target DROP) admits what the inbound rules admit: ports open to
anyone as ``<port>`` elements, everything else (sources, local addresses, one family,
ICMP types, logging) as rich rules. Port numbers are written out, never firewalld's
service names: a service file under /etc/firewalld/services (or a package update) would
change what the zone admits. A network of more than `IPSET_ABOVE` addresses becomes an
ipset of fwgen's own. Outbound deny is the policy ``fwgen-outbound`` (HOST to ANY,
target DROP) holding the outbound rules; ``forward: accept`` the policy
``fwgen-forward`` (ANY to ANY, ACCEPT). firewalld rejects what no zone or policy
forwards, so ``forward: drop`` needs nothing, and ``ignore`` leaves forwarding to
firewalld and the programs that add zones and policies to it.

Deny and reject rules are rich rules at negative priorities, the default's rejects
(``refuse: reject``) rich rules after every allow, and a connection cap is rendered
without the cap, warned (see `fwgen.targets.firewalld_deny`).

The profile names no interface, so the script makes ``fwgen`` the default zone: every
interface no zone claims is in it. Before anything changes the script refuses when
another zone (not Docker's or libvirt's) holds an interface or a source, since that
traffic would bypass fwgen's zone, or any other zone holds an interface a zone of
fwgen's is bound to (a glob's zone would take it); it stages every file, checks, renames,
and puts the old files back on any failure (see templates/firewalld/install.sh.j2).

firewalld itself accepts, before any zone: loopback, established and related traffic
(so an echo request after a ping's first is never counted by a limit), connections its
NAT translated, and, in its own policy ``allow-host-ipv6``, neighbour solicitations and
advertisements, router advertisements and redirects from anyone. Linux drops neighbour
discovery whose hop limit is not 255 (RFC 4861), so those need no hop-limit match.
It drops conntrack-invalid packets whatever ``drop_invalid`` says (stricter).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fwgen.errors import RenderError
from fwgen.policy.ir import Family, Policy, Rule, few
from fwgen.targets import Build, OutputFile, RenderOptions, refuse_what_the_platform_accepts
from fwgen.targets.firewalld_deny import (
    connlimit_warning,
    deny_heading,
    deny_lines,
    refusal_lines,
)
from fwgen.targets.firewalld_xml import (
    ICMP_FAMILY,
    Peer,
    attrs,
    elements,
    link_scope_peers,
    rich_rule,
    xml_comment,
    xml_text,
)
from fwgen.targets.refusal import REFUSED
from fwgen.targets.text import drop_log_prefix, empty_note, identifier, plain_ascii, rule_heading

ZONE = "fwgen"
OUTBOUND = "fwgen-outbound"
FORWARD = "fwgen-forward"
SCRIPT = "fwgen-firewalld.sh"
IPSET_ABOVE = 16  # a network of more addresses (of one family) becomes an ipset
IPSET_ENTRIES_MAX = 20_000  # in all ipsets: what firewalld reloads in time (see below)
# Zones that container and VM engines bind their own bridges to: left as they are.
ENGINE_ZONES = ("docker", "libvirt", "libvirt-routed")
# Neighbour discovery that firewalld's own policy allow-host-ipv6 admits from anyone.
HOST_IPV6 = ("nd-neighbor-solicit", "nd-neighbor-advert", "nd-router-advert")
ECHO_REQUEST = f"<icmp-type{attrs(name='echo-request')}/>"
ALL_ICMPV6 = f"<protocol{attrs(value='ipv6-icmp')}/>"
DROP_LOG_LIMIT = "5/s"  # firewalld's limit has no burst; the rate of text.DROP_LOG_RATE


@dataclass
class _Ipset:
    name: str
    family: Family
    entries: tuple[str, ...]
    origin: str

    @property
    def file(self) -> str:
        return f"ipsets/{self.name}.xml"


@dataclass
class _Writer:
    """Turns the Policy's rules into XML lines, collecting ipsets and warnings."""

    policy: Policy
    warnings: list[str] = field(default_factory=list)
    ipsets: dict[tuple[str, Family], _Ipset] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)
    bases: dict[str, str] = field(default_factory=dict)

    def ipset(self, set_name: str, family: Family) -> str:
        """The name of the set's ipset of one family: ``fwgen-NAME-v4``, NAME made of
        lowercase letters, digits and ``-``, one per set (both families share it)."""
        if (set_name, family) not in self.ipsets:
            found = self.policy.address_set(set_name)
            if set_name not in self.bases:
                self.bases[set_name] = identifier(set_name.lower(), self.taken, 16)
            base = self.bases[set_name].replace("_", "-")
            name = f"fwgen-{base}-{'v4' if family == 'ipv4' else 'v6'}"
            self.ipsets[set_name, family] = _Ipset(name, family, found.family(family), found.origin)
        return self.ipsets[set_name, family].name

    def peers(self, rule: Rule, family: Family) -> list[Peer]:
        return self.peers_of(rule.remote, family)

    def peers_of(self, set_name: str | None, family: Family) -> list[Peer]:
        """Anyone (None), the set's addresses of *family*, or its ipset above IPSET_ABOVE."""
        if set_name is None:
            return [Peer()]
        addresses = self.policy.address_set(set_name).family(family)
        if len(addresses) > IPSET_ABOVE:
            return [Peer(ipset=self.ipset(set_name, family))]
        return [Peer(address=a) for a in addresses]

    def matched(self, rule: Rule) -> list[str]:
        """The XML elements of what the rule matches besides addresses, warning where
        firewalld cannot say it exactly (ICMP types it cannot name: see `link_scoped`)."""
        where = f"{rule.name} ({rule.origin})"
        found, unnamed = elements(rule)
        if unnamed and not link_scope_peers(self.policy, rule):
            self.warnings.append(
                f"{where}: firewalld has no ICMP type for {', '.join(unnamed)}; not admitted "
                "(stricter than the profile)"
            )
        if rule.limit is not None:
            self.warnings.append(self.limit_warning(rule))
        if rule.connlimit is not None:
            self.warnings.append(connlimit_warning(rule))
        return found

    def link_scoped(self, rule: Rule) -> list[str]:
        """The ICMPv6 types firewalld cannot name (MLD), with peers on the link only
        (`link_scope_peers`): all ICMPv6 with those peers but echo requests, which are
        dropped unless a rule admits them from anyone (admitted from some, it is warned)."""
        unnamed, peers = elements(rule)[1], link_scope_peers(self.policy, rule)
        if not unnamed or not peers:
            return []
        echo = [
            r
            for r in self.policy.rules
            if r.direction == rule.direction
            and r.proto == "icmpv6"
            and (not r.icmp_types or "echo-request" in r.icmp_types)
        ]
        if echo and not any(r.remote is None and not r.local for r in echo):
            self.warnings.append(
                f"{rule.name} ({rule.origin}): firewalld has no ICMP type for "
                f"{', '.join(unnamed)}; admitted as all ICMPv6 with {few(peers)}, which lets "
                "echo requests through there too, wider than the profile"
            )
        out = []
        for address in peers:
            peer = Peer(address=address)
            if not echo:
                out += rich_rule("ipv6", peer, "", ECHO_REQUEST, rule, "drop")
            out += rich_rule("ipv6", peer, "", ALL_ICMPV6, rule)
        return out

    @staticmethod
    def limit_warning(rule: Rule) -> str:
        where = f"{rule.name} ({rule.origin})"
        if rule.proto in ICMP_FAMILY:
            return (
                f"{where}: not rate limited: firewalld accepts a ping's echo requests after "
                f"the first as established, ahead of any zone, and its rich-rule limit is "
                f"one bucket for every source; the {rule.limit} limit is not applied"
            )
        return (
            f"{where}: not rate limited: firewalld's rich-rule limit is one bucket shared by "
            f"every source, which one flood would empty for all (the admins too); the "
            f"{rule.limit} limit per source is not applied, its sources are admitted unlimited"
        )

    def lines(self, rule: Rule) -> list[str]:
        """The rule as firewalld elements: ``<port>``s (or a ``<protocol>``) when it opens
        ports (a protocol) to anyone over both families; rich rules otherwise."""
        found = self.matched(rule)
        if not rule.families:
            return []
        scoped = self.link_scoped(rule)
        if not found:
            return scoped
        anyone = rule.remote is None and not rule.local and len(rule.families) == 2
        if anyone and rule.proto not in ICMP_FAMILY and not rule.log:
            return found  # <port> or <protocol> elements of the zone or policy
        if anyone and rule.proto not in ICMP_FAMILY:
            return [line for e in found for line in rich_rule(None, Peer(), "", e, rule)]
        out = []
        for family in rule.families:
            for peer in self.peers(rule, family):
                for local in rule.local_of(family) or [""]:
                    for element in found:
                        out += rich_rule(family, peer, local, element, rule)
        return out + scoped

    def entries(self, rules: list[Rule]) -> list[dict[str, Any]]:
        return [
            {
                "heading": xml_comment(rule_heading(rule)),
                "lines": self.lines(rule),
                "note": xml_comment(empty_note(rule)),
            }
            for rule in rules
        ]

    def deny_entries(self, rules: list[Rule]) -> list[dict[str, Any]]:
        """Deny and reject rules, ahead of every allow (`firewalld_deny`)."""
        return [
            {
                "heading": xml_comment(deny_heading(rule)),
                "lines": deny_lines(rule, self.peers),
                "note": xml_comment(empty_note(rule)),
            }
            for rule in rules
        ]

    def refusals(self) -> list[dict[str, Any]]:
        """The default's rejects (``options.refuse: reject``), after every allow."""
        if self.policy.refuse != "reject":
            return []
        log = _drop_log_element("in") if self.policy.log_drops else ""
        lines = refusal_lines(
            ("ipv4", "ipv6"), lambda f: self.peers_of(self.policy.refuse_from, f), log
        )
        return [{"heading": xml_comment(REFUSED), "lines": lines, "note": ""}]


def _drop_log_element(chain: str) -> str:
    prefix = plain_ascii(drop_log_prefix(chain), 60)
    limit = f"<limit{attrs(value=DROP_LOG_LIMIT)}/>"
    return f"<log{attrs(prefix=prefix, level='info')}>{limit}</log>"


def _drop_log(chain: str) -> list[str]:
    """A rich rule after every other (priority 32767: firewalld's _post chain) that logs
    what falls through to the target, rate limited."""
    return ['<rule priority="32767">', f"  {_drop_log_element(chain)}", "</rule>"]


def _refuse(policy: Policy, options: RenderOptions) -> None:
    refuse_what_the_platform_accepts(
        policy, "firewalld", "firewalld accepts loopback and established traffic ahead of any zone"
    )
    if policy.containers is not None:
        raise RenderError(
            f"firewalld: containers: {policy.containers} cannot be expressed: firewalld accepts "
            "every forwarded connection the engine's NAT translated (ct status dnat) ahead of "
            "any zone or policy, so published ports would stay open to everyone; use nftables "
            "or iptables, or remove containers:"
        )
    if options.flush_ruleset:
        raise RenderError(
            "firewalld: --flush-ruleset cannot be expressed: the other zones and policies are "
            "the distribution's and other programs'; fwgen replaces only its own; render "
            "without --flush-ruleset"
        )


def _host_ipv6_warnings(policy: Policy) -> list[str]:
    """firewalld's allow-host-ipv6 admits neighbour discovery from anyone: a real widening
    only when the profile does not admit it from anyone itself."""
    admitted = {
        t
        for r in policy.rules
        if r.direction == "in" and r.proto == "icmpv6" and r.remote is None and not r.local
        for t in r.icmp_types or HOST_IPV6
    }
    missing = [t for t in HOST_IPV6 if t not in admitted]
    if not missing:
        return []
    return [
        f"firewalld's own policy allow-host-ipv6 admits {', '.join(missing)} from anyone "
        "(and redirects), ahead of fwgen's zone; the profile does not admit them from anyone"
    ]


def _policy(
    name: str, target: str, ingress: str, egress: str, what: str, priority: int = -1
) -> dict[str, Any]:
    return {
        "name": name,
        "file": f"policies/{name}.xml",
        "open": f"<policy{attrs(target=target, priority=priority)}>",
        "short": xml_text(name),
        "description": xml_text(f"fwgen: {what}"),
        "zones": [f"<ingress-zone{attrs(name=ingress)}/>", f"<egress-zone{attrs(name=egress)}/>"],
        "entries": [],
        "log": [],
    }


def _patterns(policy: Policy) -> list[str]:
    """The interface names (a final ``*``: every name it starts) rules are limited to,
    each to be bound to a zone of its own; refused where one could hold another's
    interfaces, since firewalld puts an interface in one zone only."""
    names = sorted({i for r in (*policy.rules, *policy.denies) if r.families for i in r.interfaces})
    for wide in (n for n in names if n.endswith("*")):
        for other in names:
            if other != wide and other.startswith(wide[:-1]):
                raise RenderError(
                    f"firewalld: interfaces {wide} and {other} overlap: firewalld puts an "
                    "interface in one zone, and fwgen makes a zone for each name rules are "
                    "limited to; name the interfaces so that none holds another"
                )
    return names


def _binding(on: str) -> str:
    """An interface name or glob as firewalld writes it (its wildcard is ``+``)."""
    return on[:-1] + "+" if on.endswith("*") else on


def _glob_warnings(patterns: list[str]) -> list[str]:
    """firewalld sends an interface to the first zone whose name or glob matches it, a
    glob's zone ahead of a zone that holds the interface by name; the install script
    refuses what other zones hold when it runs, not what they get later."""
    return [
        f"interfaces {on}: firewalld sends every interface {on} matches to zone "
        f"{ZONE}-if{n}, ahead of the zone that holds it by name; the install script refuses "
        "while another zone holds one (Docker's docker0, libvirt's virbr0), but an interface "
        "another program adds to its zone later goes to fwgen's"
        for n, on in enumerate(patterns, 1)
        if on.endswith("*")
    ]


def _zone(policy: Policy, writer: _Writer, name: str, on: str) -> dict[str, Any]:
    """A zone (target DROP) of the inbound rules and denies on *on* or on every interface;
    bound to the interfaces *on* names, or, when it names none, the default zone holding
    only those on every interface."""
    rules, denies = (
        [r for r in found if r.direction == "in" and (not r.interfaces or on in r.interfaces)]
        for found in (policy.rules, policy.denies)
    )
    binding = _binding(on)
    where = f": on {on}" if on else ""
    return {
        "file": f"zones/{name}.xml",
        "open": f"<zone{attrs(target='DROP')}>",
        "short": xml_text(name),
        "description": xml_text(f"fwgen: {policy.profile}{where}: {policy.description}"),
        "bindings": [f"<interface{attrs(name=binding)}/>"] if on else [],
        "entries": writer.deny_entries(denies) + writer.entries(rules) + writer.refusals(),
        "log": _drop_log("in") if policy.log_drops else [],
    }


def _refuse_slow_ipsets(ipsets: list[_Ipset]) -> None:
    """An error above IPSET_ENTRIES_MAX entries in all: firewalld 1.3 adds an ipset's
    entries one by one at every reload (20,000 took 9 seconds on a small machine,
    100,000 over 60), longer than firewall-cmd --reload waits for it over D-Bus."""
    total = sum(len(s.entries) for s in ipsets)
    if total > IPSET_ENTRIES_MAX:
        largest = max(ipsets, key=lambda s: len(s.entries))
        raise RenderError(
            f"firewalld: the ipsets would hold {total:,} entries ({largest.origin}: "
            f"{len(largest.entries):,}), more than the {IPSET_ENTRIES_MAX:,} firewalld reloads "
            "in time (it adds them one by one); use nftables or iptables for large lists"
        )


def _outbound(policy: Policy, writer: _Writer, patterns: list[str]) -> list[dict[str, Any]]:
    """With outbound deny, or outbound deny and reject rules: the policy fwgen-outbound
    (target DROP, or CONTINUE when only the denies refuse), and fwgen-outbound-ifN
    (CONTINUE) for the rules and denies limited to an interface."""
    drop = policy.defaults.outbound == "drop"
    outbound = [r for r in policy.rules if r.direction == "out"]
    denies = [r for r in policy.denies if r.direction == "out"]
    if not drop:
        writer.entries(outbound)  # nothing to write (all is accepted); warnings still count
        outbound = []
        if not denies:
            return []
    policies = []
    for n, on in enumerate(patterns, 1):
        rules, refused = ([r for r in found if on in r.interfaces] for found in (outbound, denies))
        if rules or refused:
            what = f"What this host may send on {on}, besides what fwgen-outbound admits"
            out = _policy(f"{OUTBOUND}-if{n}", "CONTINUE", "HOST", f"{ZONE}-if{n}", what, -2)
            out["entries"] = writer.deny_entries(refused) + writer.entries(rules)
            policies.append(out)
    what = "What this host may send: the profile's outbound rules"
    if not drop:
        what = "What this host may not send: the profile's outbound deny and reject rules"
    out = _policy(OUTBOUND, "DROP" if drop else "CONTINUE", "HOST", "ANY", what)
    out["entries"] = writer.deny_entries([r for r in denies if not r.interfaces])
    out["entries"] += writer.entries([r for r in outbound if not r.interfaces])
    out["log"] = _drop_log("out") if policy.log_drops and drop else []
    return [*policies, out]


def build(policy: Policy, options: RenderOptions) -> Build:
    """The default zone ``fwgen`` holds the inbound rules on every interface; each
    interface name rules are limited to gets a zone of its own, ``fwgen-ifN``, bound to
    it, holding those rules and every rule on any interface (and, with outbound deny, a
    policy ``fwgen-out-ifN`` from HOST to it, target CONTINUE, ahead of fwgen-outbound)."""
    _refuse(policy, options)
    writer = _Writer(policy)
    patterns = _patterns(policy)
    zones = [_zone(policy, writer, ZONE, "")]
    zones += [_zone(policy, writer, f"{ZONE}-if{n}", on) for n, on in enumerate(patterns, 1)]
    policies = _outbound(policy, writer, patterns)
    if policy.defaults.forward == "accept":
        policies.append(
            _policy(FORWARD, "ACCEPT", "ANY", "ANY", "forward: accept: this host routes for others")
        )
    warnings = writer.warnings + _host_ipv6_warnings(policy) + _glob_warnings(patterns)
    if policy.log_drops and policy.defaults.forward == "drop":
        warnings.append(
            "log_drops: forwarded packets are rejected by firewalld itself, which logs them only "
            "with LogDenied in firewalld.conf (not fwgen's to change); they are not logged"
        )
    _refuse_slow_ipsets(list(writer.ipsets.values()))
    ipsets: list[dict[str, Any]] = [
        {
            "file": s.file,
            "open": f"<ipset{attrs(type='hash:net')}>",
            "short": xml_text(s.name),
            "description": xml_text(f"fwgen: {s.origin}"),
            "family": f"<option{attrs(name='family', value='inet' if s.family == 'ipv4' else 'inet6')}/>",
            "entries": [xml_text(e) for e in s.entries],
        }
        for s in writer.ipsets.values()
    ]
    files = {z["file"]: OutputFile("zone.xml.j2", {"zone": z}) for z in zones}
    files |= {s["file"]: OutputFile("ipset.xml.j2", {"ipset": s}) for s in ipsets}
    files |= {p["file"]: OutputFile("policy.xml.j2", {"policy_xml": p}) for p in policies}
    script = {
        "zone": ZONE,
        "files": list(files),
        "engine_zones": ENGINE_ZONES,
        "bound": [f"{ZONE}-if{n}:{_binding(on)}" for n, on in enumerate(patterns, 1)],
        "prefix": "fwgen",
    }
    files = {SCRIPT: OutputFile("install.sh.j2", script), **files}
    return Build(files=files, warnings=list(dict.fromkeys(warnings)))
