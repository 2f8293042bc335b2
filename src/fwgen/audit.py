"""Compare a host's reality with its profile, and draft a profile from a running host.

Inputs are what admins already collect: an nmap XML report taken from outside
(``nmap -oX``), and ``ss -tulnH`` (or ``ss -tulpnH``) output taken on the host.
"""

from __future__ import annotations

import ipaddress
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path

from fwgen.errors import FwgenError
from fwgen.policy import Family, Policy, Rule
from fwgen.portdb import Catalogue, Service

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Observed:
    """One port seen on the host: by a scan (state open/closed/filtered) or listening."""

    family: Family
    proto: str
    port: int
    state: str
    address: str = ""
    process: str = ""


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


# ---------------------------------------------------------------- reading


def read_nmap(path: Path) -> tuple[list[Observed], dict[str, set[int]]]:
    """Ports nmap reported for every host in the file, and the ports it scanned per protocol."""
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise FwgenError("scan file not found", path=str(path)) from None
    except (ET.ParseError, OSError) as exc:
        raise FwgenError(f"not an nmap XML report: {exc}", path=str(path)) from None
    if root.tag != "nmaprun":
        raise FwgenError(
            "not an nmap XML report (expected <nmaprun>; run nmap with -oX)", path=str(path)
        )
    scanned: dict[str, set[int]] = {}
    for info in root.iter("scaninfo"):
        scanned.setdefault(info.get("protocol", ""), set()).update(
            _port_list(info.get("services", ""))
        )
    seen = []
    for host in root.iter("host"):
        address = next(
            (a for a in host.iter("address") if a.get("addrtype") in ("ipv4", "ipv6")), None
        )
        if address is None:
            continue
        family: Family = "ipv6" if address.get("addrtype") == "ipv6" else "ipv4"
        for port in host.iter("port"):
            state = port.find("state")
            seen.append(
                Observed(
                    family=family,
                    proto=port.get("protocol", ""),
                    port=int(port.get("portid", "0")),
                    state=(state.get("state", "") if state is not None else "").split("|")[0],
                    address=address.get("addr", ""),
                )
            )
    return seen, scanned


def _port_list(text: str) -> set[int]:
    ports: set[int] = set()
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        ports.update(range(int(low), int(high or low) + 1))
    return ports


SS_LINE = re.compile(
    r"^(?P<proto>tcp|udp)\s+\S+\s+\d+\s+\d+\s+(?P<local>\S+):(?P<port>\d+|\*)\s+\S+(?:\s+(?P<process>.*))?$"
)


def read_ss(text: str, shown: str) -> list[Observed]:
    """Listeners from `ss -tulnH` / `ss -tulpnH` output (a header line is skipped)."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("Netid"):
            continue
        match = SS_LINE.match(line.strip())
        if not match:
            raise FwgenError(
                "not `ss -tulnH` output (expected: PROTO STATE RECV-Q SEND-Q LOCAL:PORT PEER [PROCESS])",
                path=shown,
                line=number,
            )
        if match["port"] == "*":
            continue
        local = match["local"].strip("[]").split("%")[0]
        family: Family = "ipv6" if ":" in local else "ipv4"
        process = re.search(r'users:\(\("([^"]+)"', match["process"] or "")
        out.append(
            Observed(
                family,
                match["proto"],
                int(match["port"]),
                "listening",
                local,
                process[1] if process else "",
            )
        )
    return out


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------- judging


def _rules_for(policy: Policy, family: str, proto: str, port: int) -> list[Rule]:
    return [
        r
        for r in policy.rules
        if r.direction == "in"
        and r.proto == proto
        and family in r.families
        and any(p.start <= port <= p.end for p in r.ports)
    ]


def _admits(policy: Policy, rule: Rule, source: Address | None) -> bool | None:
    """Whether *rule* admits *source*: None when the source is unknown and the rule restricted."""
    if rule.remote is None:
        return True
    if source is None:
        return None
    family: Family = "ipv4" if source.version == 4 else "ipv6"
    return any(
        source in ipaddress.ip_network(n) for n in policy.address_set(rule.remote).family(family)
    )


def _service(ports: Catalogue, rule: Rule | None, proto: str, port: int) -> Service | None:
    if rule is not None and rule.service:
        return ports.get(rule.service)
    found = ports.named_at(port, port, proto)
    return found[0] if found else None


def audit_scan(
    policy: Policy,
    ports: Catalogue,
    seen: list[Observed],
    scanned: dict[str, set[int]],
    source: str | None,
) -> list[Item]:
    """Drift (open but not allowed from where the scan came from) and allowed ports found shut."""
    origin = ipaddress.ip_address(source) if source else None
    items = []
    for obs in seen:
        rules = _rules_for(policy, obs.family, obs.proto, obs.port)
        verdicts = [_admits(policy, r, origin) for r in rules]
        service = _service(ports, rules[0] if rules else None, obs.proto, obs.port)
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
                        f"{what} is open; the profile allows it only from {', '.join(r.remote or 'any' for r in rules)}: pass --from to judge",
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
            if service and service.exposure in ("never", "lan-only"):
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
    open_ports = {(o.family, o.proto, o.port) for o in seen if o.state == "open"}
    families = {o.family for o in seen}
    for rule in policy.rules:
        if rule.direction != "in" or rule.proto not in ("tcp", "udp"):
            continue
        why = (
            f"the rule admits only {rule.remote}, and the scan came from {source or 'an unknown address'}"
            if not _admits(policy, rule, origin)
            else "the service is down or not listening on this address"
        )
        for family in families & set(rule.families):
            for span in rule.ports:
                for port in range(span.start, min(span.end, span.start + 64) + 1):
                    if (
                        port not in scanned.get(rule.proto, set())
                        or (family, rule.proto, port) in open_ports
                    ):
                        continue
                    items.append(
                        Item(
                            "info",
                            "allowed-not-open",
                            family,
                            rule.proto,
                            port,
                            rule.service or rule.name,
                            f"{port}/{rule.proto} ({family}, {rule.name}) is allowed ({rule.origin}) but was not found open: {why}",
                        )
                    )
    return items


def audit_listening(policy: Policy, ports: Catalogue, listeners: list[Observed]) -> list[Item]:
    """Listeners the profile does not allow (guarded only by the default policy), and
    allowed services nothing listens for."""
    items = []
    listening: set[tuple[str, str, int]] = set()
    for obs in listeners:
        if _loopback(obs.address):
            continue
        wildcard_families = ("ipv4", "ipv6") if obs.address in ("::", "*") else (obs.family,)
        listening.update((f, obs.proto, obs.port) for f in wildcard_families)
        if not any(_rules_for(policy, f, obs.proto, obs.port) for f in wildcard_families):
            service = _service(ports, None, obs.proto, obs.port)
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


# ---------------------------------------------------------------- drafting


def _rule_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.+-]", "-", text).strip("-.+_")[:48]
    return name if name and name[0].isalnum() else f"port-{name}".strip("-")


def discover(listeners: list[Observed], ports: Catalogue) -> str:
    """A draft profile: one inbound rule per non-loopback listener, annotated from the port database."""
    seen: dict[tuple[str, int], Observed] = {}
    for obs in listeners:
        if not _loopback(obs.address):
            seen.setdefault((obs.proto, obs.port), obs)
    entries: list[str] = []
    services_done: set[str] = set()
    needs_lan = False
    for (proto, port), obs in sorted(seen.items(), key=lambda item: (item[0][1], item[0][0])):
        service = _service(ports, None, proto, port)
        if service is not None and service.name in services_done:
            continue
        if service is None:
            name = _rule_name(obs.process or f"port-{port}")
            entries += [
                f"  - port: {port}/{proto}",
                f"    name: {name}  # not in the port database",
            ]
            continue
        services_done.add(service.name)
        note = f"{service.title}: risk {service.risk}, exposure {service.exposure}"
        if service.exposure == "never":
            entries.append(
                f"  # - service: {service.name}  # {note}: a known backdoor port; investigate, do not open"
            )
        elif service.exposure == "lan-only":
            needs_lan = True
            entries += [f"  - service: {service.name}  # {note}", "    from: lan"]
        else:
            entries.append(f"  - service: {service.name}  # {note}")
    lines = [
        "# Drafted by `fwgen discover` from the services listening on a host.",
        "# Review every rule: a listener is not a reason to open a port.",
        "description: Drafted from the services listening on this host",
        "extends: base",
    ]
    if needs_lan:
        lines += [
            "networks:",
            "  lan: []  # fill in the networks that may reach LAN-only services, e.g. [192.0.2.0/24]",
        ]
    lines += ["inbound:" if entries else "inbound: []", *entries]
    return "\n".join(lines) + "\n"
