"""The registry of targets: one entry per firewall, declared in one place.

A target is a folder of templates under ``templates/<name>/`` and a small module
here that turns a Policy into template data (quoting, grouping, capability
decisions). Adding a target means adding both and one line to TARGETS.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from fwgen.errors import RenderError

if TYPE_CHECKING:
    from fwgen.policy.ir import Policy


@dataclass
class RenderOptions:
    """What the caller may ask of a target besides the Policy."""

    flush_ruleset: bool = False
    strict: bool = False
    sets_only: bool = False  # only the blocklists' contents (`fwgen.targets.blocklists`)


@dataclass
class OutputFile:
    template: str
    context: dict[str, Any]


@dataclass
class Build:
    """Template data for each output file, and what the target had to approximate."""

    files: dict[str, OutputFile]
    warnings: list[str] = field(default_factory=list)


def refuse_what_the_platform_accepts(policy: Policy, platform: str, why: str) -> None:
    """An error when the profile turns off accepting loopback or established traffic on a
    firewall that accepts it whatever its rules say (*why*): that would be wider than the
    profile, which fwgen never renders."""
    off = [name for name in ("loopback", "established") if not getattr(policy, name)]
    if off:
        raise RenderError(
            f"{platform}: options {' and '.join(off)}: false cannot be expressed: {why}; "
            "use nftables or iptables, or leave the option on"
        )


def refuse_flushing_containers(policy: Policy, options: RenderOptions, platform: str) -> None:
    """--flush-ruleset would remove the container engine's rules, which `containers:`
    leaves the forwarding of containers to."""
    if options.flush_ruleset and policy.containers is not None:
        raise RenderError(
            f"{platform}: --flush-ruleset would remove {policy.containers}'s own rules, which "
            f"containers: {policy.containers} relies on; render without --flush-ruleset"
        )


# What a target expresses unless it says more: a target added without declaring the
# newer matches refuses them (`refuse_what_the_target_lacks`) instead of dropping them.
BASIC_PROTOCOLS = ("tcp", "udp", "icmp", "icmpv6")
EVERY_PROTOCOL = (*BASIC_PROTOCOLS, "sctp", "esp", "ah", "gre")


def refuse_what_the_target_lacks(policy: Policy, target: Target) -> None:
    """An error for the first rule whose protocol or interfaces *target* cannot express:
    leaving the protocol or the interface out would open more than the profile says,
    dropping the rule would be silent."""
    for rule in (*policy.rules, *policy.denies):
        if not rule.families:
            continue
        if rule.proto not in (*target.protocols, "all"):  # all: a deny (deny/reject below)
            raise RenderError(
                f"{target.name}: {rule.name} ({rule.origin}) opens {rule.proto.upper()}, which "
                f"{target.title.split(' (')[0]} cannot express{target.protocol_note}; use "
                "nftables or iptables, or leave the rule out of this host's profile"
            )
        if rule.interfaces and not target.interfaces:
            raise RenderError(
                f"{target.name}: {rule.name} ({rule.origin}) is limited to interfaces "
                f"({', '.join(rule.interfaces)}), which this target cannot express yet; use "
                "nftables, iptables, ufw or windows"
            )


def refuse_what_the_target_does_not_know(
    policy: Policy, target: Target, options: RenderOptions
) -> None:
    """A target that does not declare deny and reject rules, ``refuse: reject``, caps or
    ``--sets-only`` (in its capabilities) would render without them: an error instead."""
    used = {
        "deny/reject": "deny and reject rules"
        if policy.denies
        else "refuse: reject"
        if policy.refuse != "drop"
        else "",
        "connlimit": "connlimit" if any(r.connlimit for r in policy.rules) else "",
    }
    for capability, what in used.items():
        if what and capability not in target.capabilities:
            raise RenderError(
                f"{target.name}: {what} cannot be expressed by this target yet; use nftables, "
                "iptables or ufw, or leave it out"
            )
    if options.sets_only and not target.sets_only:
        raise RenderError(
            f"{target.name}: --sets-only cannot be expressed: "
            f"{target.sets_only_note or 'it has no sets of its own to update'}; render the "
            "whole ruleset"
        )


class TargetModule(Protocol):
    def build(self, policy: Policy, options: RenderOptions) -> Build: ...


@dataclass(frozen=True)
class Target:
    name: str
    title: str
    files: tuple[str, ...]
    capabilities: dict[str, str]
    family_files: dict[str, str] = field(default_factory=dict)
    protocols: tuple[str, ...] = BASIC_PROTOCOLS
    protocol_note: str = ""  # why the others cannot be expressed
    interfaces: bool = False  # whether a rule can be limited to interfaces
    # Whether `render --sets-only` writes the blocklists alone (`targets.blocklists`).
    sets_only: bool = False
    sets_only_note: str = ""  # why not, when the target has sets all the same
    # What the target renders without, with a warning (`fwgen query` decides without it):
    # "limit" (rate limits), "connlimit" (connection caps), "reject" (a silent drop instead).
    lacks: tuple[str, ...] = ()

    def module(self) -> TargetModule:
        module: Any = importlib.import_module(f"fwgen.targets.{self.name}")
        return module  # type: ignore[no-any-return]


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            name="nftables",
            title="Linux nftables (nft -f)",
            files=("fwgen.nft",),
            protocols=EVERY_PROTOCOL,
            interfaces=True,
            sets_only=True,
            capabilities={
                "families": "ipv4+ipv6 in one inet table",
                "port ranges/lists": "yes (anonymous sets)",
                "source sets": "yes (named interval sets)",
                "rate limits": "yes (per source, IPv6 per /64 by default; dynamic sets; "
                "a full meter counts new sources per /16)",
                "logging": "yes",
                "icmp types": "yes",
                "interfaces": "yes (iifname/oifname; a final * matches every name it starts)",
                "protocols": "tcp, udp, sctp with ports; esp, ah, gre (IPv6 AH only directly "
                "after the IPv6 header: warned)",
                "outbound deny": "yes",
                "forward policy": "yes",
                "containers": "yes: published ports and connections routed straight to a "
                "container, in a forward chain of fwgen's table ahead of the engine's "
                "(priority filter - 10)",
                "deny/reject": "yes (before the allows; reject: RST or ICMP, one 20/second budget)",
                "blocklists": "yes (named sets; --sets-only: flush and refill in one transaction)",
                "connlimit": "yes (ct count over, per source or prefix, 65,535 sources)",
            },
        ),
        Target(
            name="iptables",
            title="Linux iptables/ip6tables (iptables-restore, iptables-persistent)",
            files=("rules.v4", "rules.v6", "ipsets", "fwgen-iptables.sh"),
            protocols=EVERY_PROTOCOL,
            interfaces=True,
            family_files={"ipv4": "rules.v4", "ipv6": "rules.v6"},
            sets_only=True,
            capabilities={
                "families": "ipv4 and ipv6 in two files, both always default-deny",
                "port ranges/lists": "yes (multiport, 15 ports a rule, split beyond)",
                "source sets": "yes (one rule per address; ipset above 16)",
                "rate limits": "yes (per source, IPv6 per /64 by default; hashlimit behind an "
                "ipset of 65,536 sources, the rest counted per /16)",
                "logging": "yes (LOG)",
                "icmp types": "yes (ICMPv6 neighbour discovery at hop limit 255)",
                "interfaces": "yes (-i/-o; a glob as iptables' final +)",
                "protocols": "tcp, udp, sctp with ports; esp, ah (ip6tables: -m ah), gre",
                "outbound deny": "yes",
                "forward policy": "drop/accept; ignore approximated (owns the filter table), "
                "exact with coexist",
                "containers": "yes: published ports and connections routed straight to a "
                "container, in fwgen's own FWGEN-CONTAINERS, jumped to first from DOCKER-USER "
                "(Podman: FORWARD) on every load; drop and return only (coexist, --noflush)",
                "deny/reject": "yes (before the allows; REJECT, 20/second per rule)",
                "blocklists": "yes (always ipsets; --sets-only: ipset swap)",
                "connlimit": "yes (connlimit, per source or prefix)",
            },
        ),
        Target(
            name="ufw",
            title="Uncomplicated Firewall (bash script of ufw commands)",
            files=("fwgen-ufw.sh",),
            protocols=EVERY_PROTOCOL,
            interfaces=True,
            capabilities={
                "families": "ipv4+ipv6 (refuses to run with IPV6=no)",
                "port ranges/lists": "yes (15 ports a rule, split beyond)",
                "source sets": "yes (one rule per address)",
                "rate limits": "yes (as iptables, in fwgen's block of before.rules/before6.rules; "
                "its ipsets made by before.init)",
                "logging": "yes (rule log; drops by ufw's logging, set to low if off)",
                "icmp types": "yes (in fwgen's block of before.rules/before6.rules)",
                "interfaces": "yes (allow in/out on IFACE; a glob as +)",
                "protocols": "tcp, udp as ufw rules; sctp, esp, ah, gre in fwgen's block of "
                "before.rules/before6.rules",
                "outbound deny": "yes",
                "forward policy": "yes (default routed)",
                "containers": "docker: fwgen's own FWGEN-CONTAINERS in its block of "
                "after.rules/after6.rules, jumped to first from DOCKER-USER; ufw-docker's "
                "section refused; podman refused",
                "deny/reject": "yes (fwgen's block of before.rules, new connections only)",
                "blocklists": "up to 1,000 addresses (one rule each; no sets, no --sets-only)",
                "connlimit": "yes (connlimit in fwgen's block of before.rules)",
            },
        ),
        Target(
            name="windows",
            title="Windows Firewall (PowerShell, NetSecurity cmdlets)",
            lacks=("limit", "connlimit", "reject"),
            files=("fwgen.ps1",),
            protocols=(*BASIC_PROTOCOLS, "esp", "ah", "gre"),
            protocol_note=" (its ports are for TCP and UDP only)",
            interfaces=True,
            capabilities={
                "families": "ipv4+ipv6 in one rule set",
                "port ranges/lists": "yes",
                "source sets": "yes (-RemoteAddress lists)",
                "rate limits": "no: rendered without the limit, warned",
                "logging": "approximated: per firewall profile, not per rule",
                "icmp types": "yes (Windows itself drops neighbour discovery off hop limit 255)",
                "interfaces": "yes (-InterfaceAlias, * globs)",
                "protocols": "tcp, udp; esp, ah, gre by number; sctp refused (Windows Firewall "
                "filters ports of TCP and UDP only)",
                "outbound deny": "yes",
                "forward policy": "not filtered by these rules (accept warned)",
                "containers": "not applicable (warned): published ports are Windows NAT's",
                "deny/reject": "deny: block rules; reject: a silent block (warned)",
                "blocklists": "yes (-RemoteAddress lists, 1,000 a rule; no --sets-only)",
                "connlimit": "no: rendered without the cap, warned",
            },
        ),
        Target(
            name="firewalld",
            title="firewalld (a zone of fwgen's own, its ipsets and policies, an install script)",
            lacks=("limit", "connlimit"),
            protocols=EVERY_PROTOCOL,
            interfaces=True,
            sets_only_note="firewalld replaces an ipset's entries atomically only by reloading "
            "its whole configuration (firewall-cmd --reload, as fwgen-firewalld.sh does)",
            files=(
                "fwgen-firewalld.sh",
                "zones/fwgen.xml",
                "ipsets/fwgen-*.xml",
                "policies/fwgen-*.xml",
            ),
            capabilities={
                "families": "ipv4+ipv6 in one zone (rich rules take a family where one is meant)",
                "port ranges/lists": "yes (<port> elements; rich rules where restricted)",
                "source sets": "yes (one rich rule per address; ipset above 16)",
                "rate limits": "no: a rich rule's limit is one bucket for every source, so "
                "rules are rendered without their limit, warned",
                "logging": "yes (rich rule log; drops by a last rich rule; forward drops "
                "only by firewalld's LogDenied, warned)",
                "icmp types": "yes, by firewalld's names; MLD (which it cannot name): all ICMPv6 "
                "but echo requests with peers on the link only; neighbour discovery is admitted "
                "by firewalld itself (allow-host-ipv6), the hop limit checked by Linux",
                "interfaces": "yes: a zone fwgen-ifN bound to each name (a final * is firewalld's "
                "+), with those rules and every rule on any interface; overlapping names refused",
                "protocols": "tcp, udp, sctp with ports; esp, ah, gre",
                "outbound deny": "yes (policy fwgen-outbound, HOST to ANY; on an interface, "
                "fwgen-outbound-ifN, HOST to its zone, ahead of it)",
                "forward policy": "drop: firewalld's own; accept: policy fwgen-forward; "
                "ignore: left to firewalld and the programs that add zones to it",
                "containers": "refused: firewalld accepts connections NATed to published ports "
                "ahead of every zone and policy",
                "deny/reject": "yes (rich rules at negative priorities, before every allow; "
                "reject: RST or ICMP, 20/second per rich rule, then dropped; refuse: rich rules "
                "at priority 32000 ahead of the zone's DROP, not %%REJECT%%, which has no limit)",
                "blocklists": "yes (ipsets above 16 addresses, 20,000 entries in all; updated "
                "by the install script's reload, which keeps established connections; no "
                "--sets-only)",
                "connlimit": "no: rendered without the cap, warned",
            },
        ),
    )
}
