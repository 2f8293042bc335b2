"""Compare a host's reality with its profile, and draft a profile from a running host.

Inputs are what admins already collect: an nmap XML report taken from outside
(``nmap -oX``), and ``ss -tulnH`` (or ``ss -tulpnH``) output taken on the host.
"""

from __future__ import annotations

import bisect
import io
import ipaddress
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from fwgen.errors import FwgenError
from fwgen.policy import Family, Policy, Rule
from fwgen.portdb import Catalogue, Service
from fwgen.yamlsource import check_text, lines, read_text

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


MAX_INPUT = 64 * 1024 * 1024  # nmap XML of a /16 with every port is well under this
MAX_HOST_ELEMENTS = 1_000_000  # one host with every port, each with its service, is ~400,000


def read_nmap(path: Path, shown: str | None = None) -> tuple[list[Observed], dict[str, set[int]]]:
    """Ports nmap reported for every host in the file, and the ports it scanned per protocol.

    The report is read like every other input (a regular file, bounded, printable text);
    a document type with entity declarations is refused, since nmap never writes one and
    entities are how XML expands a small file into a huge one.
    """
    shown = shown or str(path)
    text = read_text(path, shown, what="scan", limit=MAX_INPUT)
    if "<!ENTITY" in text:
        raise FwgenError(
            "the scan declares XML entities, which nmap never writes; give nmap's own -oX output",
            path=shown,
            line=text.count("\n", 0, text.index("<!ENTITY")) + 1,
        )
    scanned: dict[str, list[tuple[int, int]]] = {}
    seen: list[Observed] = []
    events = ET.iterparse(io.BytesIO(text.encode()), events=("start", "end"))
    try:
        _, root = next(events)
        if root.tag != "nmaprun":
            raise FwgenError(
                "not an nmap XML report (expected <nmaprun>; run nmap with -oX)", path=shown
            )
        open_elements, in_host = [root], 0
        for event, element in events:
            if event == "start":
                open_elements.append(element)
                if element.tag == "host" or in_host:
                    in_host += 1  # elements read inside the <host> being read
                if in_host > MAX_HOST_ELEMENTS:
                    raise FwgenError(
                        f"a <host> of more than {MAX_HOST_ELEMENTS:,} elements; is this nmap's "
                        "own -oX output?",
                        path=shown,
                    )
                continue
            open_elements.pop()
            if element.tag == "scaninfo":
                spans = scanned.setdefault(element.get("protocol", ""), [])
                spans += _port_spans(element.get("services", ""), shown)
            elif element.tag == "host":
                seen += _host_ports(element, shown)
                in_host = 0  # hosts do not nest in nmap's reports
            if open_elements and not in_host and len(open_elements[-1]) > 64:
                open_elements[-1].clear()  # what is read is let go: memory stays small
    except ET.ParseError as exc:
        raise FwgenError(
            f"not an nmap XML report: {str(exc).partition(':')[0]}",
            path=shown,
            line=exc.position[0],
        ) from None
    except StopIteration:
        raise FwgenError("not an nmap XML report: the file is empty", path=shown) from None
    return seen, {proto: _expand(spans) for proto, spans in scanned.items()}


def _host_ports(host: ET.Element, shown: str) -> list[Observed]:
    address = next((a for a in host.iter("address") if a.get("addrtype") in ("ipv4", "ipv6")), None)
    if address is None:
        return []
    family: Family = "ipv6" if address.get("addrtype") == "ipv6" else "ipv4"
    out = []
    for port in host.iter("port"):
        state = port.find("state")
        out.append(
            Observed(
                family=family,
                proto=port.get("protocol", ""),
                port=_port_number(port.get("portid", ""), shown, "portid"),
                state=(state.get("state", "") if state is not None else "").split("|")[0],
                address=address.get("addr", ""),
            )
        )
    return out


def _port_number(text: str, shown: str, what: str, line: int | None = None) -> int:
    """A port number 0-65535 from a report (nmap can scan port 0); else a one-line error."""
    if text.isascii() and text.isdigit() and len(text) <= 5 and int(text) <= 65535:
        return int(text)
    quoted = text if len(text) <= 20 else text[:17] + "..."
    raise FwgenError(f"{what} {quoted!r} is not a port number (0-65535)", path=shown, line=line)


def _port_spans(text: str, shown: str) -> list[tuple[int, int]]:
    """nmap's ``services="1-1000,8080"`` as (first, last) spans of real port numbers."""
    spans = []
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        first = _port_number(low, shown, "scaninfo services")
        spans.append((first, _port_number(high, shown, "scaninfo services") if high else first))
    return spans


def _expand(spans: list[tuple[int, int]]) -> set[int]:
    """The ports of overlapping spans, each counted once (at most the 65,536 there are)."""
    ports: set[int] = set()
    end = -1
    for first, last in sorted(spans):
        if last > end:
            ports.update(range(max(first, end + 1), last + 1))
            end = last
    return ports


SS_LINE = re.compile(
    r"^(?P<proto>tcp|udp)\s+\S+\s+\d+\s+\d+\s+(?P<local>\S+):(?P<port>\d+|\*)\s+\S+(?:\s+(?P<process>.*))?$"
)


def read_ss(text: str, shown: str) -> list[Observed]:
    """Listeners from `ss -tulnH` / `ss -tulpnH` output (a header line is skipped)."""
    out = []
    for number, line in lines(check_text(text, shown)):
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
                _port_number(match["port"], shown, "port", number),
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
    sources = _Sources(policy)
    items = []
    for obs in seen:
        rules = _rules_for(policy, obs.family, obs.proto, obs.port)
        verdicts = [sources.admits(r, origin) for r in rules]
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
            f"the rule admits only {policy.remote_words(rule)}, and the scan came from {source or 'an unknown address'}"
            if not sources.admits(rule, origin)
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
    """A rule name from a program's name: at most 36 characters (room for ``-PORT-PROTO``
    within the 48 a name may have), starting with a letter or digit."""
    name = re.sub(r"[^A-Za-z0-9_.+-]", "-", text).strip("-.+_")[:36].rstrip("-.+_")
    return name if name and name[0].isalnum() else f"port-{name}".strip("-")


def _yaml_name(name: str) -> str:
    """*name* as YAML reads it back as that text: quoted where YAML would read a number,
    a boolean or null (``123``, ``yes``, ``null``, ``0x1f``). Names hold no quotes."""
    return name if yaml.safe_load(name) == name else f"'{name}'"


def serves(service: Service, process: str) -> bool:
    """Whether a program of this name is what usually serves *service* (``sshd`` for ssh,
    ``nginx`` for http); true when ``ss`` did not name the program."""
    if not process:
        return True
    program = process.lower()
    names = {service.name, *service.aliases}
    return program in names or program.removesuffix("d") in names or program in service.processes


def _draft_rule(obs: Observed, service: Service | None, name: str) -> tuple[list[str], bool]:
    """The draft's lines for one listener, and whether they need the `lan` network.

    The port database names the rule when the program listening is what usually serves
    that port, or when ``ss`` did not say; otherwise the rule is *name* (after the program)
    and the comment says what the port database would call the port.
    """
    port = f"{obs.port}/{obs.proto}"
    if service is None:
        return [
            f"  - port: {port}",
            f"    name: {_yaml_name(name)}  # not in the port database",
        ], False
    note = f"{service.title}: risk {service.risk}, exposure {service.exposure}"
    if service.exposure == "never":
        who = f"{obs.process} listens; " if obs.process else ""
        return [
            f"  # - port: {port}  # {who}{service.name} ({note}): a known backdoor port; "
            "investigate, do not open without an allow_risky reason"
        ], False
    if serves(service, obs.process):
        head = [f"  - service: {service.name}  # {note}"]
    else:
        head = [
            f"  - port: {port}",
            f"    name: {_yaml_name(name)}  # {obs.process} listens; the port database calls {port} {service.name} ({note})",
        ]
    lan = service.exposure == "lan-only"
    return head + (["    from: lan"] if lan else []), lan


def _port_rule_names(listeners: list[Observed]) -> dict[Observed, str]:
    """A rule name per listener: the program's name, with the port (and protocol) added
    where one program listens on several ports, so that names stay unique."""
    base = {obs: _rule_name(obs.process or f"port-{obs.port}") for obs in listeners}
    count = Counter(base.values())
    named = {obs: f"{b}-{obs.port}" if count[b] > 1 else b for obs, b in base.items()}
    again = Counter(named.values())
    return {obs: f"{n}-{obs.proto}" if again[n] > 1 else n for obs, n in named.items()}


def discover(listeners: list[Observed], ports: Catalogue) -> str:
    """A draft profile: one inbound rule per non-loopback listener, annotated from the port database."""
    seen: dict[tuple[str, int], Observed] = {}
    for obs in listeners:
        if not _loopback(obs.address):
            seen.setdefault((obs.proto, obs.port), obs)
    drafted: list[tuple[Observed, Service | None]] = []
    services_done: set[str] = set()
    for (proto, port), obs in sorted(seen.items(), key=lambda item: (item[0][1], item[0][0])):
        service = _service(ports, None, proto, port)
        if service is not None and service.exposure != "never" and serves(service, obs.process):
            if service.name in services_done:
                continue
            services_done.add(service.name)
        drafted.append((obs, service))
    names = _port_rule_names(
        [obs for obs, service in drafted if service is None or not serves(service, obs.process)]
    )
    entries: list[str] = []
    needs_lan = False
    for obs, service in drafted:
        rule, lan = _draft_rule(obs, service, names.get(obs, ""))
        entries += rule
        needs_lan = needs_lan or lan
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
    return check_text("\n".join(lines) + "\n", "the draft")
