"""Profile → Policy: look up services, expand networks, normalise, merge duplicates, sort."""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from fwgen.errors import FwgenError, ResolveError, did_you_mean, raise_collected
from fwgen.policy import denies
from fwgen.policy.accepted import Accepted, accepted_for
from fwgen.policy.clienthost import dhcp_rules, multicast_replies
from fwgen.policy.interfaces import Interfaces, split_overrides
from fwgen.policy.ir import (
    FAMILIES,
    PORTED,
    Defaults,
    Family,
    Limit,
    Policy,
    PortRange,
    Rule,
)
from fwgen.policy.networks import Networks
from fwgen.profile import icmp
from fwgen.profile.fields import parse_port
from fwgen.profile.load import Located, MergedProfile, load_profile
from fwgen.profile.models import InboundRule, OutboundRule
from fwgen.profile.options import Options
from fwgen.profile.portdb import Catalogue, catalogue
from fwgen.profile.services import Service
from fwgen.read.paths import Boundary, Origins

PING_LIMIT = Limit(rate=5, unit="second", burst=5)
PROTOCOLS = ("icmp", "icmpv6", "tcp", "udp", "sctp", "esp", "ah", "gre")
PROTO_ORDER = {"all": -1} | {proto: n for n, proto in enumerate(PROTOCOLS)}  # all: a deny


def resolve_profile(
    ref: str,
    overrides: Mapping[str, Sequence[str]] | None = None,
    ports: Catalogue | None = None,
    root: Path | None = None,
    boundary: Boundary | None = None,
    allow_outside: tuple[Path, ...] = (),
    origins: Origins | None = None,
    set_at: Mapping[str, Located[Any]] | None = None,
) -> Policy:
    """Load the profile *ref* (a name or a path, relative to *root*) and resolve it to a Policy.

    Files the profile names stay inside *boundary*, and are named by *origins* (see
    `load_profile`). *set_at* says where each of the *overrides* is written (a manifest's
    ``set:``); without it, they come from ``--set``."""
    merged = load_profile(ref, root, boundary, allow_outside, origins)
    return resolve(merged, overrides or {}, ports or catalogue(), set_at)


def resolve(
    merged: MergedProfile,
    overrides: Mapping[str, Sequence[str]],
    ports: Catalogue,
    set_at: Mapping[str, Located[Any]] | None = None,
) -> Policy:
    resolver = _Resolver(merged, overrides, ports, set_at or {})
    return resolver.policy()


def merge_ranges(ranges: list[tuple[int, int]]) -> tuple[PortRange, ...]:
    """Sorted, with overlapping and adjacent ranges joined."""
    out: list[list[int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return tuple(PortRange(start=s, end=e) for s, e in out)


class _Resolver:
    def __init__(
        self,
        merged: MergedProfile,
        overrides: Mapping[str, Sequence[str]],
        ports: Catalogue,
        set_at: Mapping[str, Located[Any]],
    ):
        self.merged = merged
        self.ports = ports
        self.errors: list[FwgenError] = []
        networks, groups = split_overrides(merged, overrides)
        self.networks = Networks(merged, networks, set_at, self.errors)
        self.interfaces = Interfaces(merged, groups, set_at, self.errors)
        self.options = Options(**{k: v.value for k, v in merged.options.items()})
        self.spec_connlimit: int | None = None

    # rules --------------------------------------------------------------

    def rules(self, where: Located[InboundRule] | Located[OutboundRule]) -> list[Rule]:
        spec = where.value
        self.spec_connlimit = spec.connlimit
        if isinstance(spec, InboundRule):
            direction, peers, key = "in", spec.from_, "from"
        else:
            direction, peers, key = "out", spec.to, "to"
        label = spec.name or (spec.service[0] if spec.service else "icmp")
        if spec.action != "allow" and not spec.kinds():
            label = spec.name or spec.action
        remote = self.networks.address_set(peers, f"{label}_{key}", where, key)
        base: dict[str, Any] = {
            "action": denies.VERDICTS[spec.action],
            "direction": direction,
            "remote": remote,
            "limit": Limit(
                rate=spec.limit.rate,
                unit=spec.limit.unit,
                burst=spec.limit.burst or spec.limit.rate,
            )
            if spec.limit
            else None,
            "log": spec.log,
            "interfaces": self.interfaces.of(spec.interface),
            "on": tuple(spec.interface),
            "origin": f"{where.file}:{where.line}",
            "acknowledged": spec.allow_risky or "",
        }
        services = [s for s in map(self.ports.get, spec.service) if s is not None]
        base["accepted"] = self._accepted(where, services, None)
        out = []
        for i, name in enumerate(spec.service):
            service = self.ports.get(name)
            if service is None:
                sub = ("service", i) if len(spec.service) > 1 else ("service",)
                self.errors.append(
                    where.error(
                        f"unknown service '{name}'{did_you_mean(name, self.ports.names())}",
                        *sub,
                        kind=ResolveError,
                    )
                )
                continue
            by_proto: dict[str, list[tuple[int, int]]] = {}
            for port in service.ports:
                by_proto.setdefault(port.proto, []).append((port.start, port.end))
            for proto, ranges in by_proto.items():
                out.append(
                    self._rule(
                        base,
                        proto=proto,
                        ports=merge_ranges(ranges) if proto in PORTED else (),
                        name=spec.name or service.name,
                        service=service.name,
                        comment=spec.comment or service.title,
                        local=self._host(where, service.destinations if direction == "in" else ()),
                        only=service.family,
                        accepted=self._accepted(where, services, service),
                    )
                )
        by_proto = {}
        for text in spec.port:
            proto, start, end = parse_port(text)
            by_proto.setdefault(proto, []).append((start, end))
        for proto, ranges in sorted(by_proto.items()):
            out.append(
                self._rule(
                    base,
                    proto=proto,
                    ports=merge_ranges(ranges),
                    name=spec.name,
                    comment=spec.comment or "",
                    local=self._host(where),
                )
            )
        for proto in spec.protocol:
            out.append(
                self._rule(
                    base,
                    proto=proto,
                    name=spec.name or proto,
                    comment=spec.comment or "",
                    local=self._host(where),
                )
            )
        for proto in ("icmp", "icmpv6"):
            types = getattr(spec, proto)
            known = icmp.table(proto)
            bad = [t for t in types if t not in known]
            for t in bad:
                self.errors.append(
                    where.error(
                        f"unknown {proto} type '{t}'{did_you_mean(t, known)}",
                        proto,
                        kind=ResolveError,
                    )
                )
            if types and not bad:
                ordered = tuple(sorted(set(types), key=known.__getitem__))
                out.append(
                    self._rule(
                        base,
                        proto=proto,
                        icmp_types=ordered,
                        name=spec.name or proto,
                        comment=spec.comment or "",
                        local=self._host(where),
                    )
                )
        everything = denies.every_protocol(where)
        if everything is not None:
            out.append(self._rule(base, **everything, local=self._host(where)))
        self.errors += denies.connlimit_errors(where, out)
        for rule in out:
            source_set = self.networks.sets.get(rule.remote or "")
            if (
                not rule.families
                and not rule.idle()  # not on an empty interface group
                and source_set is not None
                and (source_set.ipv4 or source_set.ipv6)
            ):
                have, need = ("IPv4", "IPv6") if source_set.ipv4 else ("IPv6", "IPv4")
                self.errors.append(
                    where.error(
                        f"{rule.name} ({rule.proto}) needs {need} "
                        f"sources, but {source_set.words()} has only {have} addresses",
                        key,
                        kind=ResolveError,
                    )
                )
        return out

    def _host(
        self, where: Located[InboundRule] | Located[OutboundRule], fixed: tuple[str, ...] = ()
    ) -> tuple[str, ...]:
        """The host addresses an inbound rule is for: its `host`, or a service's own."""
        host = tuple(where.value.host) if isinstance(where.value, InboundRule) else ()
        if host and fixed:
            self.errors.append(
                where.error(
                    f"this service has its own destinations ({', '.join(fixed)}); leave out `host`",
                    "host",
                    kind=ResolveError,
                )
            )
        return fixed or host

    def _accepted(
        self, where: Located[Any], services: list[Service], opened: Service | None
    ) -> Accepted:
        """What the rule's `accept:` accepts for *opened* (None: a port or ICMP rule)."""
        try:
            return accepted_for(where.value.accept, services, opened, self.ports)
        except ValueError as error:
            if opened is None:  # once per rule
                self.errors.append(where.error(str(error), "accept", kind=ResolveError))
            return ()

    def _rule(self, base: dict[str, Any], **fields: Any) -> Rule:
        families = set(FAMILIES)
        if fields["proto"] == "icmp":
            families = {"ipv4"}
        elif fields["proto"] == "icmpv6":
            families = {"ipv6"}
        if base["remote"] is not None:
            remote = self.networks.sets[base["remote"]]
            families &= {f for f in FAMILIES if remote.family(f)}
        if base["on"] and not base["interfaces"]:  # an empty interface group
            families = set()
        only = fields.pop("only", None)
        if only:
            families &= {only}
        local = tuple(fields.pop("local", ()))
        if local:
            families &= {"ipv4" if ipaddress.ip_network(a).version == 4 else "ipv6" for a in local}
        ordered: tuple[Family, ...] = tuple(f for f in FAMILIES if f in families)
        connlimit = self.spec_connlimit if fields["proto"] == "tcp" else None
        return Rule(**{**base, **fields}, local=local, families=ordered, connlimit=connlimit)

    def builtin_rules(self) -> list[Rule]:
        out = []
        if self.options.ping:
            origin = self.merged.options["ping"]
            for proto in ("icmp", "icmpv6"):
                out.append(
                    Rule(
                        direction="in",
                        proto=proto,
                        icmp_types=("echo-request",),
                        families=("ipv4",) if proto == "icmp" else ("ipv6",),
                        limit=PING_LIMIT,
                        name="ping",
                        comment="echo request, rate limited",
                        origin=f"{origin.file}:{origin.line}",
                    )
                )
        if isinstance(self.merged.outbound, list):
            where = self.merged.outbound_origin
            out.append(
                Rule(
                    direction="out",
                    proto="icmpv6",
                    icmp_types=icmp.OUTBOUND_ESSENTIAL_V6,
                    families=("ipv6",),
                    name="ipv6-essentials",
                    comment="neighbour discovery and MLD, needed with outbound deny",
                    origin=f"{where.file}:{where.line}" if where else "fwgen",
                )
            )
        return out

    def client_rules(self) -> list[Rule]:
        """DHCP for ``address: dhcp``, and multicast replies with outbound deny (clienthost)."""
        outbound = self.merged.outbound
        deny = isinstance(outbound, list)
        specs: list[Located[InboundRule] | Located[OutboundRule]] = []
        if self.options.address == "dhcp":
            specs += dhcp_rules(self.merged.options["address"], deny)
        out = [r for loc in specs for r in self.rules(loc)]
        if isinstance(outbound, list):
            replies = multicast_replies(self.merged.inbound, outbound, self.ports)
            out += [r for loc in replies for r in self.rules(loc) if r.proto == "udp"]
        return out

    def _forward(self) -> Literal["drop", "accept", "ignore"]:
        """With a container engine, forwarded traffic is the engine's, but for the
        connections it DNATs from outside, which the inbound rules govern."""
        if self.options.containers is None:
            return self.options.forward
        coexist = self.merged.options.get("coexist")
        if coexist is not None and coexist.value is False:
            self.errors.append(
                coexist.error(
                    "coexist: false with options.containers would make the iptables target "
                    "replace the engine's chains and leave every published port open; leave "
                    "`coexist` out (containers turn it on)",
                    kind=ResolveError,
                )
            )
        where = self.merged.options.get("forward")
        files = self.merged.files
        engine = self.merged.options["containers"].doc.path
        # an extended profile's `forward` yields; the same or a later file's is a conflict
        if (
            where is not None
            and where.value != "ignore"
            and files.index(where.doc.path) >= files.index(engine)
        ):
            self.errors.append(
                where.error(
                    f"forward: {where.value} would take over the traffic of the containers "
                    f"(options.containers: {self.options.containers}); leave `forward` out "
                    "or write `forward: ignore`",
                    kind=ResolveError,
                )
            )
        return "ignore"

    def _mark_risky(self, rule: Rule) -> Rule:
        """Name the known backdoor services a rule opens; rendering refuses them unless acknowledged."""
        if rule.direction != "in" or rule.proto not in ("tcp", "udp"):
            return rule
        never = self.ports.backdoors_in(rule)
        if not never:
            return rule
        return rule.replace(risky=", ".join(f"{s.name} ({s.title})" for s in never))

    def policy(self) -> Policy:
        rules = [r for loc in self.merged.inbound for r in self.rules(loc)]
        outbound = self.merged.outbound
        if isinstance(outbound, list):
            rules += [r for loc in outbound for r in self.rules(loc)]
        rules += self.builtin_rules() + self.client_rules()
        forward = self._forward()
        raise_collected(self.errors)
        rules = [self._mark_risky(r) for r in rules]
        unique: dict[tuple[Any, ...], Rule] = {}
        for rule in rules:
            key = rule.identity()
            kept = unique.setdefault(key, rule)
            if kept is not rule:  # a repeated rule keeps what each accepts, and says where
                accepted = tuple(sorted({*kept.accepted, *rule.accepted}))
                repeated = kept.repeated + (
                    (rule.origin,) if rule.origin not in (kept.origin, *kept.repeated) else ()
                )
                unique[key] = kept.replace(accepted=accepted, repeated=repeated)
        allows, denied = denies.split(_ordered(unique.values()))
        refuse_from = self._refuse_from()
        self.errors += denies.whole_family_denies(denied, self.networks.sets)
        self.errors += denies.container_errors(self.merged.options, denied, allows)
        raise_collected(self.errors)
        used = {r.remote for r in (*allows, *denied) if r.remote} | {refuse_from}
        opts = self.options
        return Policy(
            profile=self.merged.name,
            description=self.merged.description,
            files=tuple(self.merged.files),
            defaults=Defaults(
                outbound="drop" if isinstance(outbound, list) else "accept", forward=forward
            ),
            containers=opts.containers,
            coexist=opts.containers is not None if opts.coexist is None else opts.coexist,
            loopback=opts.loopback,
            established=opts.established,
            drop_invalid=opts.drop_invalid,
            log_drops=opts.log_drops,
            address=opts.address,
            limit_prefix_v4=opts.limit_prefix_v4,
            limit_prefix_v6=opts.limit_prefix_v6,
            refuse=opts.refuse,
            refuse_from=refuse_from,
            sets=tuple(
                sorted(
                    (s for s in self.networks.sets.values() if s.name in used), key=lambda s: s.name
                )
            ),
            interface_groups=self.interfaces.used_groups(),
            rules=tuple(allows),
            denies=tuple(denied),
        )

    def _refuse_from(self) -> str | None:
        """The address set ``options.refuse_from`` names (None: every source)."""
        where = self.merged.options.get("refuse_from")
        if where is None or self.options.refuse_from is None:
            return None
        if self.options.refuse != "reject":
            self.errors.append(
                where.error("refuse_from needs refuse: reject; leave it out", kind=ResolveError)
            )
            return None
        return self.networks.address_set(list(where.value), "refuse_from", where, 0)


def _rule_order(rule: Rule) -> tuple[Any, ...]:
    first = rule.ports[0].start if rule.ports else -1
    return (rule.direction != "in", PROTO_ORDER[rule.proto], first, rule.remote or "", rule.name)


def _ordered(rules: Iterable[Rule]) -> list[Rule]:
    """Sorted by `_rule_order`, then by their JSON: made only for the rules that tie."""
    out: list[Rule] = []
    for _, tied in itertools.groupby(sorted(rules, key=_rule_order), key=_rule_order):
        group = list(tied)
        out += sorted(group, key=Rule.json) if len(group) > 1 else group
    return out
