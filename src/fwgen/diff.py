"""A semantic diff of what two Policies allow: rules opened, closed, widened or narrowed."""

from __future__ import annotations

import ipaddress
from typing import Any

from fwgen.check import Finding, check_policy
from fwgen.explain import rule_row
from fwgen.policy import Policy, Rule
from fwgen.portdb import Catalogue

COMPARED = ("ports", "sources", "families", "limit", "log")


def _key(rule: Rule) -> tuple[str, str, str]:
    return (rule.direction, rule.service or rule.name, rule.proto)


def _entry(row: dict[str, Any], findings: list[Finding]) -> dict[str, Any]:
    out = {
        k: row[k]
        for k in (
            "direction",
            "service",
            "protocol",
            "ports",
            "sources",
            "families",
            "limit",
            "log",
            "risk",
            "exposure",
        )
    }
    out["findings"] = [f"{f.level} {f.code}: {f.message}" for f in findings]
    return out


def _span(ports: str) -> tuple[int, int]:
    """``"8000-8080"`` or ``"443"`` → (first, last)."""
    low, _, high = ports.partition("-")
    return int(low), int(high or low)


def _within(inner: list[str], outer: list[str], key: str) -> bool:
    """Whether everything *inner* admits, *outer* admits too (addresses, ports or families)."""
    if "any" in outer:
        return True
    if "any" in inner:
        return False
    if key == "sources":
        outer_nets = [ipaddress.ip_network(o) for o in outer]
        return all(
            any(n.version == o.version and n.subnet_of(o) for o in outer_nets)  # type: ignore[arg-type]
            for n in map(ipaddress.ip_network, inner)
        )
    if key == "ports":
        spans = [_span(p) for p in outer if p[0].isdigit()]
        for p in inner:
            if not p[0].isdigit():
                return set(inner) <= set(outer)  # ICMP types
            low, high = _span(p)
            if not any(a <= low and high <= b for a, b in spans):
                return False
        return True
    return set(inner) <= set(outer)


def _verdict(before: dict[str, Any], after: dict[str, Any]) -> str:
    """widened, narrowed or changed: what the new rule admits against the old one."""
    keys = ("sources", "ports", "families")
    wider = not all(_within(after[k], before[k], k) for k in keys) or bool(
        before["limit"] and not after["limit"]
    )
    narrower = not all(_within(before[k], after[k], k) for k in keys) or bool(
        after["limit"] and not before["limit"]
    )
    return (
        "widened" if wider and not narrower else "narrowed" if narrower and not wider else "changed"
    )


def diff_policies(old: Policy, new: Policy, ports: Catalogue) -> dict[str, list[dict[str, Any]]]:
    """``{"added": [...], "removed": [...], "changed": [...]}``, one entry per rule."""
    old_rows = {_key(r): rule_row(old, r, ports) for r in old.rules}
    new_rows = {_key(r): rule_row(new, r, ports) for r in new.rules}
    old_findings = {(f.code, f.service, tuple(f.ports)) for f in check_policy(old, ports)}
    new_findings: dict[str, list[Finding]] = {}
    for f in check_policy(new, ports):
        if (f.code, f.service, tuple(f.ports)) not in old_findings:
            new_findings.setdefault(f.location, []).append(f)
    result: dict[str, list[dict[str, Any]]] = {"added": [], "removed": [], "changed": []}
    for key, row in new_rows.items():
        found = new_findings.get(row["origin"], [])
        if key not in old_rows:
            result["added"].append(_entry(row, found))
        elif any(old_rows[key][k] != row[k] for k in COMPARED):
            before = _entry(old_rows[key], [])
            after = _entry(row, found)
            result["changed"].append(
                {
                    "service": row["service"],
                    "protocol": row["protocol"],
                    "direction": row["direction"],
                    "change": _verdict(before, after),
                    "before": before,
                    "after": after,
                }
            )
    for key, row in old_rows.items():
        if key not in new_rows:
            result["removed"].append(_entry(row, []))
    return result


def _describe(entry: dict[str, Any]) -> str:
    ports = ",".join(entry["ports"]) or "-"
    way = "from" if entry["direction"] == "in" else "to"
    srcs = ", ".join(entry["sources"])
    extra = f" (risk {entry['risk']}, {entry['exposure']})" if entry["risk"] else ""
    limit = f", limit {entry['limit']}" if entry["limit"] else ""
    return f"{entry['service']} {ports}/{entry['protocol']} {way} {srcs} [{'+'.join(entry['families'])}]{limit}{extra}"


def as_text(result: dict[str, list[dict[str, Any]]], markdown: bool = False) -> str:
    lines = []
    bullet = "- " if markdown else ""
    if markdown:
        lines.append("### fwgen: firewall changes\n")
    for entry in result["added"]:
        lines.append(f"{bullet}{'**opens**' if markdown else '+ opens'} {_describe(entry)}")
        lines += [f"{'  - ' if markdown else '    '}{f}" for f in entry["findings"]]
    for entry in result["removed"]:
        lines.append(f"{bullet}{'**closes**' if markdown else '- closes'} {_describe(entry)}")
    for entry in result["changed"]:
        verb = entry["change"]
        lines.append(
            f"{bullet}{f'**{verb}**' if markdown else '~ ' + verb} {_describe(entry['before'])}"
        )
        lines.append(
            f"{'  ' if markdown else '    '}{'→' if markdown else '->'} {_describe(entry['after'])}"
        )
        lines += [f"{'  - ' if markdown else '    '}{f}" for f in entry["after"]["findings"]]
    if not any(result.values()):
        lines.append("no change in what is allowed")
    return "\n".join(lines) + "\n"
