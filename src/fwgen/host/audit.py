"""Compare a host's reality (`fwgen.host.observed`) with its profile.

nmap reports a port that gave no answer as ``open|filtered`` (every UDP port a firewall
drops looks so): that is no evidence of an open port, so it is never drift; an allowed
port in that state is reported as not confirmed open.
"""

from __future__ import annotations

import bisect
import ipaddress
from dataclasses import asdict, dataclass

from fwgen.host.observed import Observed, loopback
from fwgen.policy.ir import Family, Policy, Rule
from fwgen.profile.portdb import Catalogue
from fwgen.profile.services import Service

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Item:
    level: str  # error (drift), warning, info
    kind: str
    family: str
    proto: str
    port: int
    service: str | None
    message: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# ---------------------------------------------------------------- judging


def _rules_for(policy: Policy, family: str, proto: str, port: int, address: str) -> list[Rule]:
    """The inbound rules that admit *port* to *address* of the host (any for ``*``)."""
    return [
        r
        for r in policy.rules
        if r.direction == "in"
        and r.proto == proto
        and family in r.families
        and any(p.start <= port <= p.end for p in r.ports)
        and _to_host(r, address)
    ]


def _to_host(rule: Rule, address: str) -> bool:
    """Whether *rule* admits connections to *address* of the host: always without
    ``host:``; a wildcard listener (``*``, ``0.0.0.0``, ``::``) is reached at them."""
    address = address.partition("%")[0]
    if not rule.local or address in WILDCARDS:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return True  # a name, not an address: the rule may well be for it
    return any(ip in ipaddress.ip_network(a) for a in rule.local)


WILDCARDS = ("", "*", "0.0.0.0", "::")


class _Sources:
    """Whether a rule admits an address: each address set made sorted intervals once, so
    a scan with many open ports against a long list costs a lookup per port."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.spans: dict[tuple[str, Family], tuple[list[int], list[int]]] = {}

    def admits(self, rule: Rule, source: Address | None) -> bool | None:
        """None when the source is unknown and the rule restricted."""
        if rule.remote is None:
            return True
        if source is None:
            return None
        family: Family = "ipv4" if source.version == 4 else "ipv6"
        key = (rule.remote, family)
        if key not in self.spans:
            networks = sorted(
                ipaddress.ip_network(n) for n in self.policy.address_set(rule.remote).family(family)
            )
            self.spans[key] = (
                [int(n.network_address) for n in networks],
                [int(n.broadcast_address) for n in networks],
            )
        starts, ends = self.spans[key]
        at = bisect.bisect_right(starts, int(source)) - 1
        return at >= 0 and int(source) <= ends[at]


def serves(service: Service, process: str) -> bool:
    """Whether a program of this name is what usually serves *service* (``sshd`` for ssh,
    ``nginx`` for http); true when ``ss`` did not name the program."""
    if not process:
        return True
    program = process.lower()
    names = {service.name, *service.aliases}
    return program in names or program.removesuffix("d") in names or program in service.processes


def port_service(
    ports: Catalogue, proto: str, port: int, process: str = "", rule: Rule | None = None
) -> Service | None:
    """The one name audit and discover give a port: the service of the rule that admits it;
    else a known backdoor's entry; else, of the entries naming the port, the one whose
    `processes` (or name) is the program listening; else the narrowest (`specific_first`)."""
    if rule is not None and rule.service:
        return ports.get(rule.service)
    found = ports.named_at(port, port, proto)
    if found and found[0].exposure == "never":
        return found[0]  # a backdoor's port stays one, whoever listens
    usual = [s for s in found if process and serves(s, process)]
    return next(iter(usual or found), None)


def audit_scan(
    policy: Policy,
    ports: Catalogue,
    seen: list[Observed],
    scanned: dict[str, set[int]],
    source: str | None,
) -> list[Item]:
    """Drift (open but not allowed from where the scan came from) and allowed ports found shut."""
    origin = ipaddress.ip_address(source) if source else None
    sources = _Sources(policy)
    items = []
    for obs in seen:
        rules = _rules_for(policy, obs.family, obs.proto, obs.port, obs.address)
        verdicts = [sources.admits(r, origin) for r in rules]
        service = port_service(ports, obs.proto, obs.port, rule=rules[0] if rules else None)
        name = service.name if service else None
        what = f"{obs.port}/{obs.proto} ({obs.family}{', ' + service.name if service else ''})"
        if obs.state == "open":
            if True in verdicts:
                pass
            elif None in verdicts:
                items.append(
                    Item(
                        "warning",
                        "unjudged",
                        obs.family,
                        obs.proto,
                        obs.port,
                        name,
                        f"{what} is open; the profile allows it only from {'; '.join(policy.remote_words(r) for r in rules)}: pass --from to judge",
                    )
                )
            else:
                where = f" from {source}" if source else ""
                items.append(
                    Item(
                        "error",
                        "drift",
                        obs.family,
                        obs.proto,
                        obs.port,
                        name,
                        f"{what} is open{where}, but the profile does not allow it: the firewall is not what the profile says",
                    )
                )
            # a LAN-only service is fine when every rule for it has a `from:` and one admits
            # the scan's source: the scan came from a network the profile opens it to
            lan = all(r.remote for r in rules) and True in verdicts
            if service and (
                service.exposure == "never" or (service.exposure == "lan-only" and not lan)
            ):
                level = "error" if service.exposure == "never" else "warning"
                items.append(
                    Item(
                        level,
                        service.exposure,
                        obs.family,
                        obs.proto,
                        obs.port,
                        name,
                        f"{what} is open and {service.title} is {'a known backdoor port' if service.exposure == 'never' else 'LAN-only'}",
                    )
                )
    states = {(o.address, o.proto, o.port): o.state for o in seen}
    hosts = {(o.family, o.address) for o in seen}
    for rule in policy.rules:
        if rule.direction != "in" or rule.proto not in ("tcp", "udp"):
            continue
        why = (
            f"the rule admits only {policy.remote_words(rule)}, and the scan came from {source or 'an unknown address'}"
            if not sources.admits(rule, origin)
            else "the service is down or not listening on this address"
        )
        for family in sorted({f for f, a in hosts if f in rule.families and _to_host(rule, a)}):
            addresses = [a for f, a in hosts if f == family and _to_host(rule, a)]
            for span in rule.ports:
                for port in range(span.start, min(span.end, span.start + 64) + 1):
                    found = {states.get((a, rule.proto, port)) for a in addresses}
                    if port not in scanned.get(rule.proto, set()) or "open" in found:
                        continue
                    reason = why
                    if "open|filtered" in found:
                        reason = "nmap had no answer (open|filtered): a service that does not answer nmap's probe looks the same as a dropped port; probe it with nmap -sV"
                    items.append(
                        Item(
                            "info",
                            "allowed-not-open",
                            family,
                            rule.proto,
                            port,
                            rule.service or rule.name,
                            f"{port}/{rule.proto} ({family}, {rule.name}) is allowed ({rule.origin}) but was not found open: {reason}",
                        )
                    )
    return items


def audit_listening(policy: Policy, ports: Catalogue, listeners: list[Observed]) -> list[Item]:
    """Listeners the profile does not allow (guarded only by the default policy), and
    allowed services nothing listens for."""
    items = []
    listening: set[tuple[str, str, int]] = set()
    for obs in listeners:
        if loopback(obs.address):
            continue
        unbound = obs.address.partition("%")[0] in ("::", "*")
        wildcard_families = ("ipv4", "ipv6") if unbound else (obs.family,)
        listening.update((f, obs.proto, obs.port) for f in wildcard_families)
        if not any(
            _rules_for(policy, f, obs.proto, obs.port, obs.address) for f in wildcard_families
        ):
            service = port_service(ports, obs.proto, obs.port, obs.process)
            who = f" by {obs.process}" if obs.process else ""
            items.append(
                Item(
                    "info",
                    "listening-not-allowed",
                    obs.family,
                    obs.proto,
                    obs.port,
                    service.name if service else None,
                    f"{obs.address}:{obs.port}/{obs.proto}{who} listens but the profile does not allow it: only the default policy protects it",
                )
            )
    for rule in policy.rules:
        if rule.direction != "in" or rule.proto not in ("tcp", "udp") or rule.local:
            continue
        for family in rule.families:
            if not any(
                (family, rule.proto, p) in listening
                for span in rule.ports
                for p in range(span.start, span.end + 1)
            ):
                items.append(
                    Item(
                        "info",
                        "allowed-not-listening",
                        family,
                        rule.proto,
                        rule.ports[0].start,
                        rule.service or rule.name,
                        f"{rule.name} ({', '.join(map(str, rule.ports))}/{rule.proto}, {family}) is allowed ({rule.origin}) but nothing listens on it",
                    )
                )
    return items


def as_text(items: list[Item]) -> str:
    lines = [f"{i.level}: {i.message}" for i in items]
    drift = sum(i.kind == "drift" for i in items)
    lines.append(f"{drift} drift, {len(items) - drift} other finding(s)")
    return "\n".join(lines) + "\n"
