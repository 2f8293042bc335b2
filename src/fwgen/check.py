"""Findings about what a resolved profile opens, from the port database and the Policy.

Each finding has a stable code, a level, a message, the file:line it is about,
and the service and ports concerned.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from fwgen.errors import split_location
from fwgen.policy import Policy, PortRange, Rule, few, set_hint, whole_family_warning
from fwgen.portdb import Catalogue

Level = Literal["error", "warning", "info"]
REMOTE_MANAGEMENT = ("ssh", "ssh-alt", "rdp", "winrm", "winrm-https")

# code: (level, short description) — the codes are stable; SARIF lists them as rules.
CODES: dict[str, tuple[Level, str]] = {
    "FW001": ("error", "A known backdoor or trojan port is opened"),
    "FW002": ("warning", "A LAN-only service is reachable from any address or a public range"),
    "FW003": ("warning", "A cleartext service is opened where a safer one exists"),
    "FW004": ("info", "A high-risk service is opened"),
    "FW005": ("warning", "A critical-risk service is opened"),
    "FW006": ("warning", "No remote-management service is reachable on a server profile"),
    "FW007": ("warning", "A rule is shadowed by or duplicates another rule"),
    "FW008": ("warning", "A rule's address set is empty, so it matches nothing"),
    "FW009": ("warning", "Outbound is default-deny but DNS is not allowed out"),
    "FW010": ("info", "A cleartext service is opened beside its safer replacement"),
    "FW011": ("warning", "An address list adds up to every address of a family"),
    "FW012": ("warning", "A rule admits only documentation addresses (placeholders)"),
    "FW014": (
        "warning",
        "Outbound is default-deny but DHCP is not allowed out (address not static)",
    ),
    "FW015": (
        "warning",
        "Forwarding is ignored without `containers:`: published container ports bypass inbound",
    ),
}
# What a DHCP client sends: (protocol, port, family, name).
DHCP_OUT = (("udp", 67, "ipv4", "DHCP (67/udp)"), ("udp", 547, "ipv6", "DHCPv6 (547/udp)"))
HOST_CODES = ("FW006", "FW009", "FW011", "FW014", "FW015")  # about the whole profile, not one rule


def acceptable_codes() -> list[str]:
    """The codes a rule's ``accept:`` may name (`refuse_accepting` refuses the others)."""
    return [code for code in CODES if code != "FW001" and code not in HOST_CODES]


def refuse_accepting(code: str) -> None:
    """A ValueError when a rule's ``accept:`` names *code*, which it cannot accept."""
    from fwgen.errors import did_you_mean

    if code not in CODES:
        raise ValueError(f"unknown finding code '{code}'{did_you_mean(code, CODES)}")
    if code == "FW001":
        raise ValueError(
            'a backdoor port (FW001) is acknowledged with `allow_risky: "why"` on the rule, '
            "not with accept"
        )
    if code in HOST_CODES:
        raise ValueError(
            f"finding {code} is about the whole profile, not one rule; it cannot be accepted here"
        )


@dataclass(frozen=True)
class Finding:
    code: str
    level: Level
    message: str
    location: str
    service: str | None = None
    ports: list[str] = field(default_factory=list)
    accepted: str | None = None  # why the profile accepts it (then it is info)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _ports(rule: Rule) -> list[str]:
    return [f"{p}/{rule.proto}" for p in rule.ports]


def _covers(ranges: tuple[PortRange, ...], start: int, end: int) -> bool:
    return any(r.start <= start and end <= r.end for r in ranges)


LINK_SCOPE = (ipaddress.ip_network("224.0.0.0/24"), ipaddress.ip_network("ff02::/16"))


def _public(policy: Policy, rule: Rule) -> str | None:
    """How a rule reaches beyond trusted networks: 'any', a public range, or None.

    A rule that only accepts link-scope multicast (mDNS, SSDP) stays on the LAN.
    """
    if rule.local and all(
        any(ipaddress.ip_address(a) in n for n in LINK_SCOPE) for a in rule.local
    ):
        return None
    if rule.remote is None:
        return "any address"
    remote = policy.address_set(rule.remote)
    for text in (*remote.ipv4, *remote.ipv6):
        net = ipaddress.ip_network(text)
        if not (net.is_private or net.is_link_local or net.is_loopback):
            return f"the public range {text}"
    return None


def _finding(
    code: str, message: str, rule: Rule | None, location: str, service: str | None = None
) -> Finding:
    return Finding(
        code=code,
        level=CODES[code][0],
        message=message,
        location=location,
        service=service,
        ports=_ports(rule) if rule is not None else [],
    )


def check_policy(policy: Policy, ports: Catalogue) -> list[Finding]:
    """Every finding for one Policy, in rule order, then host-wide ones."""
    findings: list[Finding] = []
    inbound = [r for r in policy.rules if r.direction == "in"]
    shadows = _Shadows(policy.rules)
    for rule in policy.rules:
        if not rule.families:
            findings.append(
                _finding(
                    "FW008",
                    f"{rule.name}: network '{rule.remote}' is empty, so this rule matches nothing",
                    rule,
                    rule.origin,
                )
            )
            continue
        found = shadows.findings(rule) + _placeholder_findings(policy, rule)
        if rule.direction == "in" and rule.proto in ("tcp", "udp"):
            found = _service_findings(policy, rule, ports) + found
        findings += _accepted(rule, found)
    top = f"{policy.files[-1]}:1"
    findings += [
        _finding(
            "FW011",
            whole_family_warning(address_set, family),
            None,
            address_set.origin if split_location(address_set.origin)[1] else top,
        )
        for address_set, family in policy.whole_family_sets()
    ]
    opens_tcp = any(r.proto == "tcp" and r.families for r in inbound)
    managed = any(r.service in REMOTE_MANAGEMENT and r.families for r in inbound)
    if opens_tcp and not managed:
        findings.append(
            _finding(
                "FW006",
                "no remote-management service (ssh, rdp, winrm) is reachable: applying this "
                "ruleset remotely will lock you out",
                None,
                top,
            )
        )
    if policy.defaults.outbound == "drop" and not _lets_out(policy, "udp", 53):
        findings.append(
            _finding(
                "FW009",
                "outbound is default-deny but DNS (53/udp) is not allowed out: name lookups will fail",
                None,
                top,
            )
        )
    findings += _dhcp_findings(policy, top)
    if policy.defaults.forward == "ignore" and policy.containers is None:
        findings.append(
            _finding(
                "FW015",
                "forward: ignore leaves forwarded traffic to others: on a host that runs "
                "Docker or Podman, every published port (`-p 8080:80`), and every container "
                "a neighbour routes to, is reachable from anywhere, whatever the inbound rules "
                "say; set `options: {containers: docker}` (or podman) to make the inbound rules "
                "govern them",
                None,
                top,
            )
        )
    return sorted(findings, key=_order)


def _lets_out(policy: Policy, proto: str, port: int, family: str | None = None) -> bool:
    """Whether an outbound rule allows *port*/*proto* (to some address, of *family*)."""
    return any(
        r.direction == "out"
        and r.proto == proto
        and _covers(r.ports, port, port)
        and (family is None or family in r.families)
        for r in policy.rules
    )


def _dhcp_findings(policy: Policy, top: str) -> list[Finding]:
    """Outbound deny without DHCP cuts off a host that takes its address from DHCP when
    its lease runs out; `options.address` says whether that is the case."""
    if policy.defaults.outbound != "drop" or policy.address == "static":
        return []
    missing = [
        name for proto, port, family, name in DHCP_OUT if not _lets_out(policy, proto, port, family)
    ]
    if not missing:
        return []
    return [
        _finding(
            "FW014",
            f"outbound is default-deny but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not allowed out: a host that takes its "
            "address from DHCP loses it when the lease runs out; set `options: {address: dhcp}` "
            "to let DHCP out, or `address: static` if the addresses are set by hand",
            None,
            top,
        )
    ]


def _placeholder_findings(policy: Policy, rule: Rule) -> list[Finding]:
    """A rule whose sources are only documentation addresses admits no one (a lock-out
    when it is the way in for the admins)."""
    addresses = policy.placeholder_sources(rule)
    if not addresses or rule.remote is None:
        return []
    found = policy.address_set(rule.remote)
    if found.origin == rule.origin:  # written in the rule itself
        where, fix = "", "write the real ones in the profile"
    else:
        where, fix = f", from network '{found.name}'", f"set the real ones ({set_hint(found.name)})"
    return [
        _finding(
            "FW012",
            f"{rule.name} admits only documentation addresses ({few(addresses)}{where}), "
            f"placeholders that match no real host; {fix} before applying this ruleset",
            rule,
            rule.origin,
            rule.service,
        )
    ]


def _accepted(rule: Rule, findings: list[Finding]) -> list[Finding]:
    """The rule's findings, those it accepts (`accept:`, `allow_risky:`) made info with why."""
    reasons = dict(rule.accepted)
    if rule.acknowledged:
        reasons["FW001"] = rule.acknowledged
    return [
        replace(f, level="info", accepted=reasons[f.code]) if f.code in reasons else f
        for f in findings
    ]


def _order(finding: Finding) -> tuple[str, int, str]:
    path, line = split_location(finding.location)
    return (path, line or 0, finding.code)


def _service_findings(policy: Policy, rule: Rule, ports: Catalogue) -> list[Finding]:
    out = [
        _finding(
            "FW001",
            f"{service.name} ({service.title}) is never to be opened: "
            f"{service.description} {service.risk_notes}".strip(),
            rule,
            rule.origin,
            service.name,
        )
        for service in ports.backdoors_in(rule)
    ]
    for service in ports.opened_by(rule):
        what = f"{service.name} ({service.title})"
        if service.exposure == "never":
            continue
        reach = _public(policy, rule)
        if service.exposure == "lan-only" and reach:
            out.append(
                _finding(
                    "FW002",
                    f"{what} belongs on a LAN only but is reachable from {reach}; "
                    "restrict `from:` to your LAN or admin networks",
                    rule,
                    rule.origin,
                    service.name,
                )
            )
        if (
            service.alternative
            and service.category == "web"
            and _opens(policy, ports, service.alternative)
        ):
            out.append(
                _finding(
                    "FW010",
                    f"{what} is open beside {service.alternative}; make sure it only redirects or "
                    "refuses to authenticate in cleartext",
                    rule,
                    rule.origin,
                    service.name,
                )
            )
        elif service.alternative:
            out.append(
                _finding(
                    "FW003",
                    f"{what} is cleartext or obsolete; use {service.alternative} instead",
                    rule,
                    rule.origin,
                    service.name,
                )
            )
        if service.risk in ("high", "critical"):
            code = "FW005" if service.risk == "critical" else "FW004"
            out.append(
                _finding(
                    code,
                    f"{what} is {service.risk} risk: {service.risk_notes}",
                    rule,
                    rule.origin,
                    service.name,
                )
            )
    return out


def _opens(policy: Policy, ports: Catalogue, name: str) -> bool:
    service = ports.get(name)
    return service is not None and any(
        r.direction == "in" and r.service == service.name and r.families for r in policy.rules
    )


class _Shadows:
    """Which rule already accepts another's traffic, looked up among the unconditional
    rules of the same direction and protocol whose sources are any or the same set (the
    only ones that can), so a long profile costs far less than every pair of rules."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.position = {id(rule): i for i, rule in enumerate(rules)}
        self.buckets: dict[tuple[str, str, str | None], list[Rule]] = {}
        for rule in rules:
            if rule.limit is None:
                self.buckets.setdefault((rule.direction, rule.proto, rule.remote), []).append(rule)

    def findings(self, rule: Rule) -> list[Finding]:
        """A rule whose traffic another, unconditional rule already accepts."""
        keys = {(rule.direction, rule.proto, None), (rule.direction, rule.proto, rule.remote)}
        candidates = [o for key in keys for o in self.buckets.get(key, ())]
        for other in sorted(candidates, key=lambda o: self.position[id(o)]):
            if other is rule or (other.local != rule.local and other.local):
                continue
            if not set(rule.families) <= set(other.families):
                continue
            if rule.ports and not all(_covers(other.ports, p.start, p.end) for p in rule.ports):
                continue
            if rule.icmp_types and not set(rule.icmp_types) <= set(other.icmp_types):
                continue
            same = (
                other.remote == rule.remote
                and other.ports == rule.ports
                and other.icmp_types == rule.icmp_types
            )
            if same and self.position[id(other)] > self.position[id(rule)]:
                continue  # report a duplicate once, on the later rule
            verb = "duplicates" if same else "is shadowed by"
            return [
                _finding(
                    "FW007",
                    f"{rule.name} {verb} {other.name} ({other.origin}), which already accepts this traffic",
                    rule,
                    rule.origin,
                    rule.service,
                )
            ]
        return []


SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def as_text(findings: list[Finding]) -> str:
    lines = [
        f"{f.location}: {f.level} {f.code}"
        + (f" [{f.service}]" if f.service else "")
        + f": {f.message}"
        + (f" (accepted: {json.dumps(f.accepted, ensure_ascii=False)})" if f.accepted else "")
        for f in findings
    ]
    counts = {
        level: sum(f.level == level for f in findings) for level in ("error", "warning", "info")
    }
    lines.append(
        ", ".join(
            f"{n} {level}{'s' if n != 1 and level != 'info' else ''}" for level, n in counts.items()
        )
    )
    return "\n".join(lines) + "\n"


def as_json(findings: list[Finding]) -> dict[str, object]:
    return {"findings": [f.as_dict() for f in findings]}


def as_sarif(findings: list[Finding], version: str) -> dict[str, object]:
    """A SARIF 2.1.0 log, so code-scanning tools can annotate the pull request."""
    results = []
    for f in findings:
        path, line = split_location(f.location)
        result: dict[str, object] = {
            "ruleId": f.code,
            # an accepted finding keeps its level; its suppression says why it passes
            "level": SARIF_LEVEL[CODES[f.code][0] if f.accepted else f.level],
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": path},
                        "region": {"startLine": line or 1},
                    }
                }
            ],
        }
        if f.accepted:
            result["suppressions"] = [{"kind": "inSource", "justification": f.accepted}]
        results.append(result)
    rules = [
        {
            "id": code,
            "shortDescription": {"text": text},
            "defaultConfiguration": {"level": SARIF_LEVEL[level]},
        }
        for code, (level, text) in CODES.items()
    ]
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "fwgen", "version": version, "rules": rules}},
                "results": results,
            }
        ],
    }
