"""Findings about what a resolved profile opens, from the port database and the Policy.

Each finding has a stable code, a level, a message, the file:line it is about,
and the service and ports concerned.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field, replace

from fwgen.errors import split_location
from fwgen.policy.accepted import reason_for
from fwgen.policy.ir import FAMILIES, Policy, Rule, few, set_hint, whole_family_warning
from fwgen.profile.codes import CODES, Level
from fwgen.profile.portdb import Catalogue
from fwgen.review import netneeds
from fwgen.review.denycheck import deny_problems
from fwgen.review.oninterfaces import empty_group_message, lone_interfaces, lone_message
from fwgen.review.shadows import Shadows

REMOTE_MANAGEMENT = ("ssh", "ssh-alt", "rdp", "winrm", "winrm-https")


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
    for family in FAMILIES:
        for text, net in remote.runs(family).networks():
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
    shadows = Shadows(policy)
    lone = lone_interfaces(policy)
    for rule in policy.rules:
        if rule.idle():
            found = [_finding("FW019", empty_group_message(policy, rule), rule, rule.origin)]
            findings += _accepted(rule, found)
            continue
        if not rule.families:
            findings.append(
                _finding(
                    "FW008",
                    f"{rule.name}: {policy.address_set(rule.remote or '').words()} is empty, "
                    "so this rule matches nothing",
                    rule,
                    rule.origin,
                )
            )
            continue
        found = _shadow_findings(shadows, rule) + _placeholder_findings(policy, rule)
        if rule.origin in lone:
            found.append(
                _finding("FW020", lone_message(policy, rule, lone[rule.origin]), rule, rule.origin)
            )
        if rule.direction == "in" and rule.proto in ("tcp", "udp"):
            found = _service_findings(policy, rule, ports) + found
        findings += _accepted(rule, found)
    for problem in deny_problems(policy):
        found = [_finding(problem.code, problem.message, problem.rule, problem.location)]
        findings += _accepted(problem.rule, found) if problem.code == "FW021" else found
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
    findings += [_finding(p.code, p.message, None, p.location) for p in netneeds.problems(policy)]
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
    return sorted(_once(findings), key=_order)


def _once(findings: list[Finding]) -> list[Finding]:
    """Each finding once: a rule written once may be one Rule per protocol or family
    (dns is 53/tcp and 53/udp), each with the same finding; their ports are joined."""
    joined: dict[tuple[object, ...], Finding] = {}
    for f in findings:
        key = (f.code, f.level, f.message, f.location, f.service, f.accepted)
        kept = joined.setdefault(key, f)
        if kept is not f:
            ports = kept.ports + [p for p in f.ports if p not in kept.ports]
            joined[key] = replace(kept, ports=ports)
    return list(joined.values())


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
    accepted = (
        (*rule.accepted, ("FW001", "", rule.acknowledged)) if rule.acknowledged else rule.accepted
    )
    out = []
    for f in findings:
        why = reason_for(accepted, f.code, f.service)
        out.append(f if why is None else replace(f, level="info", accepted=why))
    return out


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


def _shadow_findings(shadows: Shadows, rule: Rule) -> list[Finding]:
    """FW007: a rule whose traffic another, unconditional rule already accepts, and the
    rules written more than once (the Policy keeps one of them)."""
    out = [
        _finding(
            "FW007",
            f"{rule.name} duplicates {rule.name} ({rule.origin}), which already accepts this "
            "traffic",
            rule,
            origin,
            rule.service,
        )
        for origin in rule.repeated
    ]
    found = shadows.find(rule)
    if found is not None:
        other = found.other
        verb = "duplicates" if found.same else "is shadowed by"
        out.append(
            _finding(
                "FW007",
                f"{rule.name} {verb} {other.name} ({other.origin}), which already accepts "
                "this traffic",
                rule,
                rule.origin,
                rule.service,
            )
        )
    return out


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
