"""The Policy: the resolved, normalised allow-list that every target renders from.

Small frozen models. Nothing here points back at YAML; origins are plain
``file:line`` strings.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from fwgen.policy.frozen import Frozen, dumps, field
from fwgen.profile import icmp
from fwgen.profile.addresses import Runs, parse_network, runs

Family = Literal["ipv4", "ipv6"]
FAMILIES: tuple[Family, ...] = ("ipv4", "ipv6")
Direction = Literal["in", "out"]
Proto = Literal["tcp", "udp", "icmp", "icmpv6", "sctp", "esp", "ah", "gre", "all"]  # all: a deny
Verdict = Literal["accept", "drop", "reject"]
PORTED: tuple[Proto, ...] = ("tcp", "udp", "sctp")  # the protocols a rule gives ports

SECONDS = {"second": 1, "minute": 60, "hour": 3600}
EVERY_ADDRESS: dict[Family, str] = {"ipv4": "0.0.0.0/0", "ipv6": "::/0"}
# Addresses for documentation and examples (RFC 5737, RFC 3849, RFC 9637): no real host
# has one, so a rule whose only sources are here admits no one.
DOCUMENTATION = runs(
    parse_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20")
)
VERSION: dict[Family, int] = {"ipv4": 4, "ipv6": 6}
# The settings that change what a Policy admits, by the names `explain` and `diff` show
# (``outbound`` is ``defaults.outbound``). tests/test_review.py walks the models for more.
SETTINGS = (
    "inbound",
    "outbound",
    "forward",
    "loopback",
    "established",
    "drop_invalid",
    "limit_prefix_v4",
    "limit_prefix_v6",
    "containers",
    "coexist",
    "log_drops",
    "refuse",
)


# Fields of a Policy that its digests leave out while they have these values, so that
# the digests of profiles without them stay what they were.
OPTIONAL: dict[str, Any] = {"containers": None, "coexist": False, "refuse": "drop"}
OPTIONAL |= {"refuse_from": None, "denies": ()}


class PortRange(Frozen):
    start: int
    end: int

    def __str__(self) -> str:
        return str(self.start) if self.start == self.end else f"{self.start}-{self.end}"


class Limit(Frozen):
    """At most ``rate`` new connections per ``unit`` from each source (an address, or for
    IPv6 a prefix: see `Policy.limit_prefix`), ``burst`` of them at once."""

    rate: int
    unit: Literal["second", "minute", "hour"]
    burst: int

    def __str__(self) -> str:
        burst = f" burst {self.burst}" if self.burst != self.rate else ""
        return f"{self.rate}/{self.unit}{burst}"

    def refill_seconds(self) -> int:
        """How long an idle source takes to earn its whole burst back: its bucket may be
        forgotten after that, never before (a forgotten source starts with a full burst)."""
        seconds = SECONDS[self.unit]
        return max(seconds, -(-self.burst * seconds // self.rate))


class AddressSet(Frozen):
    """A named set of networks, split by family, collapsed and sorted."""

    name: str
    ipv4: tuple[str, ...] = ()
    ipv6: tuple[str, ...] = ()
    origin: str
    # What the profile wrote for it: a network's name, or a rule's own `from:`/`to:` list.
    # Messages name this, never a generated name; no ruleset shows it (nor the digest).
    written: tuple[str, ...] = field(default=(), exclude=True)
    CACHED: ClassVar[dict[str, frozenset[str]]] = {"by_version": frozenset({"ipv4", "ipv6"})}

    @functools.cached_property
    def by_version(self) -> dict[int, Runs]:
        """The addresses as `Runs`, by IP version: kept from the intervals the set was made
        of (`fwgen.policy.networks.address_set_of`), else parsed once here."""
        return runs(parse_network(text) for text in (*self.ipv4, *self.ipv6))

    def runs(self, family: Family) -> Runs:
        return self.by_version[VERSION[family]]

    def family(self, family: Family) -> tuple[str, ...]:
        return self.ipv4 if family == "ipv4" else self.ipv6

    def words(self) -> str:
        """How a message names the set: the network the profile named, or the list of
        addresses and networks a rule wrote; never the name fwgen made up for that list."""
        if self.written in ((), (self.name,)):
            return f"network '{self.name}'"
        return f"the list [{few(list(self.written))}]"


class InterfaceGroup(Frozen):
    """A named list of the host's interfaces (``interfaces:``, ``--set``): globs end in ``*``."""

    name: str
    interfaces: tuple[str, ...] = ()
    origin: str
    placeholder: bool = False  # empty as the profile wrote it, not as a site set it


def interfaces_within(inner: Sequence[str], outer: Sequence[str]) -> bool:
    """Whether every interface of *inner* is one of *outer*: a glob (``wg*``) holds every
    name it starts, a narrower glob too."""
    return all(
        any(i == o or (o.endswith("*") and i.startswith(o[:-1])) for o in outer) for i in inner
    )


class Rule(Frozen):
    """One rule: an accept rule (`Policy.rules`), or a drop or reject rule
    (`Policy.denies`, proto ``all`` when it names no protocol). ``remote`` names an
    AddressSet (None: any address). ``interfaces``: the only interfaces it applies on,
    arriving (in) or leaving (out); a final ``*`` matches every name it starts; empty:
    every interface."""

    action: Verdict = "accept"
    direction: Direction
    proto: Proto
    ports: tuple[PortRange, ...] = ()
    icmp_types: tuple[str, ...] = ()
    remote: str | None = None
    local: tuple[str, ...] = ()
    interfaces: tuple[str, ...] = ()
    # What the profile wrote under `interface:` (groups' names, interfaces), for messages.
    on: tuple[str, ...] = field(default=(), exclude=True)
    families: tuple[Family, ...]
    limit: Limit | None = None
    connlimit: int | None = None  # concurrent connections per source (see Policy.limit_prefix)
    log: bool = False
    name: str
    service: str | None = None
    comment: str = ""
    origin: str
    risky: str = ""  # a known backdoor service this rule opens, e.g. "back-orifice (Back Orifice)"
    acknowledged: str = ""  # the profile's `allow_risky:` reason
    # `fwgen check` findings the profile accepts for this rule: ((code, service, reason), ...),
    # service "" for whatever a rule of one port opens (`fwgen.profile.accept`). They change no
    # ruleset, so the digest (and every rendered byte) leaves them out.
    accepted: tuple[tuple[str, str, str], ...] = field(default=(), exclude=True)
    # Where the same rule is written again (the Policy keeps one): `fwgen check` FW007.
    repeated: tuple[str, ...] = field(default=(), exclude=True)

    def plain(self) -> dict[str, Any]:
        """The action and connlimit only where a rule has them (digests stay as they were)."""
        data = super().plain()
        if self.action == "accept":
            del data["action"]
        if self.connlimit is None:
            del data["connlimit"]
        return data

    def identity(self) -> tuple[Any, ...]:
        """What the rule's JSON holds but its name, comment and origin, as a key: rules
        equal in it are one rule written twice."""
        return tuple(map(self.__dict__.__getitem__, IDENTITY))

    def published(self) -> bool:
        """Whether the rule also admits connections DNATed to containers: TCP and UDP
        inbound rules do (ICMP is never DNATed to a published port)."""
        return self.direction == "in" and self.proto in ("tcp", "udp")

    def idle(self) -> bool:
        """Whether the rule is on interface groups that are all empty (so matches nothing)."""
        return bool(self.on) and not self.interfaces

    def on_words(self) -> str:
        """Where the rule admits, as the profile wrote it: `` on private`` or ""."""
        return f" on {', '.join(self.on)}" if self.on else ""

    def local_of(self, family: Family) -> list[str]:
        """The rule's local addresses of one family."""
        return [a for a in self.local if (":" in a) == (family == "ipv6")]


IDENTITY = tuple(name for name in Rule.SHOWN if name not in ("name", "comment", "origin"))


class Defaults(Frozen):
    inbound: Literal["drop"] = "drop"
    outbound: Literal["accept", "drop"] = "accept"
    forward: Literal["drop", "accept", "ignore"] = "drop"


class Policy(Frozen):
    """Everything a target needs, and nothing it would have to look up elsewhere."""

    profile: str
    description: str
    files: tuple[str, ...]
    defaults: Defaults
    loopback: bool = True
    established: bool = True
    drop_invalid: bool = True
    log_drops: bool = False
    # What the profile says about the host's addresses (`options.address`). It changes
    # findings, never the ruleset (`dhcp` adds ordinary rules), so the digest leaves it out.
    address: Literal["dhcp", "static"] | None = field(default=None, exclude=True)
    limit_prefix_v4: int = 32
    limit_prefix_v6: int = 64
    # A container engine whose DNATed connections (published ports) the inbound rules govern.
    containers: Literal["docker", "podman"] | None = None
    # iptables: fwgen's own chains, loaded with --noflush, beside other programs' chains.
    coexist: bool = False
    # What the default inbound policy answers (`options.refuse`), and to whom (an
    # AddressSet's name; None: every source).
    refuse: Literal["drop", "reject"] = "drop"
    refuse_from: str | None = None
    sets: tuple[AddressSet, ...] = ()
    # The interface groups the rules name; their interfaces are in the rules themselves.
    interface_groups: tuple[InterfaceGroup, ...] = field(default=(), exclude=True)
    rules: tuple[Rule, ...] = ()
    # Drop and reject rules, evaluated before `rules` (`fwgen.policy.denies`).
    denies: tuple[Rule, ...] = ()
    CACHED: ClassVar[dict[str, frozenset[str]]] = {"sets_by_name": frozenset({"sets"})}

    @functools.cached_property
    def sets_by_name(self) -> dict[str, AddressSet]:
        return {s.name: s for s in self.sets}

    def address_set(self, name: str) -> AddressSet:
        return self.sets_by_name[name]

    def limit_prefix(self, family: Family) -> int:
        """The prefix length rate limits count a source by: whoever holds one IPv6
        address of a /64 holds them all, so by default they share one budget."""
        return self.limit_prefix_v4 if family == "ipv4" else self.limit_prefix_v6

    def limited_queries(self, direction: Direction) -> dict[Proto, tuple[str, ...]]:
        """The ICMP queries (echo requests, ...) some rule of *direction* rate-limits, by
        protocol. Conntrack calls every query of a flow after the first "established"
        (all of a `ping -f`), so the established shortcut must leave these to the rules,
        whose limits count them one by one."""
        out: dict[Proto, tuple[str, ...]] = {}
        for proto in ("icmp", "icmpv6"):
            types = {
                t
                for r in self.rules
                if r.direction == direction and r.proto == proto and r.limit is not None
                for t in r.icmp_types
                if t in icmp.QUERIES
            }
            if types:
                out[proto] = tuple(sorted(types, key=icmp.table(proto).__getitem__))
        return out

    def remote_addresses(self, rule: Rule) -> list[str] | None:
        """The remote addresses a rule admits, over its families; None when it admits any."""
        if rule.remote is None:
            return None
        remote = self.address_set(rule.remote)
        return [a for f in rule.families for a in remote.family(f)]

    def remote_words(self, rule: Rule) -> str:
        """A rule's remote addresses as the profile wrote them: ``admins``,
        ``10.0.0.0/8, ops`` or ``any``; never a name fwgen made up."""
        if rule.remote is None:
            return "any"
        found = self.address_set(rule.remote)
        return few(list(found.written)) or found.name

    def placeholder_sources(self, rule: Rule) -> list[str]:
        """The remote addresses of *rule* when every one is a documentation address
        (`DOCUMENTATION`); empty when it admits any address, none, or one real one."""
        if rule.remote is None:
            return []
        remote = self.address_set(rule.remote)
        found = [remote.runs(f) for f in rule.families]
        if any(found) and all(r.within(DOCUMENTATION[r.version]) for r in found):
            return [a for f in rule.families for a in remote.family(f)]
        return []

    def whole_family_sets(self) -> list[tuple[AddressSet, Family]]:
        """Used address sets that hold every address of a family (see `whole_family_warning`)."""
        used = {r.remote for r in self.rules if r.remote}
        return [
            (s, f)
            for s in self.sets
            if s.name in used
            for f in FAMILIES
            if s.family(f) == (EVERY_ADDRESS[f],)
        ]

    def setting(self, name: str) -> Any:
        """The value of one of `SETTINGS`."""
        return getattr(self.defaults if name in Defaults.FIELDS else self, name)

    def digest(self) -> str:
        """sha256 of the whole policy as rendered, names, comments and origins (file:line)
        included: equal digests, equal rulesets. The container options count only when
        set, so hosts without containers keep their digests."""
        data = self.plain()
        for name, value in OPTIONAL.items():
            if getattr(self, name) == value:
                del data[name]
        # rules on every interface keep the digests they had before rules had interfaces
        for rule, shown in zip(self.rules, data["rules"], strict=True):
            if not rule.interfaces:
                del shown["interfaces"]
        return hashlib.sha256(dumps(data)).hexdigest()

    def admits_digest(self) -> str:
        """sha256 of what the policy admits: its `SETTINGS` and, for each rule, what it
        matches (addresses, not the names of their sets), its limit and whether it logs;
        not names, comments or origins. It stays the same while a change only moves
        lines, renames or rewords: "did this change the firewall?"."""
        rules = sorted(
            # json.dumps of [direction, proto, ports, icmp types, remote addresses, ...],
            # the addresses (a million, in a long list) encoded at the speed of a join
            json.dumps([r.direction, r.proto, [str(p) for p in r.ports], list(r.icmp_types)])[:-1]
            + ", "
            + texts_json(self.remote_addresses(r))
            + ", "
            + json.dumps(
                [
                    list(r.local),
                    list(r.families),
                    r.limit.plain() if r.limit else None,
                    r.log,
                    *([list(r.interfaces)] if r.interfaces else []),
                    # what rules had not before denies and caps counts only where present
                    *([r.action] if r.action != "accept" else []),
                    *([f"connlimit {r.connlimit}"] if r.connlimit else []),
                ]
            )[1:]
            for r in (*self.rules, *self.denies)
        )
        # refuse counts only when set, so other profiles keep their digests
        settings = {name: self.setting(name) for name in SETTINGS if name != "refuse"}
        admitted: dict[str, Any] = {"settings": settings, "rules": rules}
        if self.refuse != "drop":
            refused = self.address_set(self.refuse_from) if self.refuse_from else None
            admitted["refuse"] = [self.refuse, refused and [*refused.ipv4, *refused.ipv6]]
        return hashlib.sha256(json.dumps(admitted, sort_keys=True).encode()).hexdigest()


def texts_json(texts: list[str] | None) -> str:
    """``json.dumps(texts)``, the same text, made by one join where no text holds anything
    JSON escapes (addresses never do: checked, else json.dumps does it)."""
    if not texts:
        return json.dumps(texts)
    joined = '", "'.join(texts)
    if (
        joined.isascii()
        and "\\" not in joined
        and joined.count('"') == 2 * (len(texts) - 1)  # only the separators' quotes
        and not joined.encode().translate(None, _JSON_PLAIN)  # no control character, no DEL
    ):
        return f'["{joined}"]'
    return json.dumps(texts)


_JSON_PLAIN = bytes(range(32, 127))  # what json.dumps writes as it is, quotes and \\ aside


def whole_family_warning(address_set: AddressSet, family: Family) -> str:
    """`any` is how a profile says "everyone"; a list (a file, ranges, ``--set``) that
    adds up to 0.0.0.0/0 or ::/0 is more likely a mistake than a wish."""
    return (
        f"{address_set.words()} ({address_set.origin}) holds every "
        f"{'IPv4' if family == 'ipv4' else 'IPv6'} address ({EVERY_ADDRESS[family]}); "
        "write `any` if everyone is meant, or fix the list"
    )


def set_hint(name: str) -> str:
    """How a user gives a network its real addresses."""
    return f"--set {name}=CIDR[,CIDR...]"


def few(addresses: list[str]) -> str:
    return ", ".join(addresses[:3]) + (f" +{len(addresses) - 3} more" if len(addresses) > 3 else "")
