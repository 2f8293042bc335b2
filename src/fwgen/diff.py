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


def _rows(policy: Policy, ports: Catalogue) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """Every rule's row, grouped by what names it: a profile may have several rules of one
    name (ssh from admins, and ssh from anywhere), and none of them may hide another."""
    rows: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for rule in policy.rules:
        rows.setdefault(_key(rule), []).append(rule_row(policy, rule, ports))
    return rows


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a[k] == b[k] for k in COMPARED)


def _pair(
    before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[dict[str, Any], dict[str, Any]]]]:
    """Rules of one name: (added, removed, changed pairs). Identical rules cancel out; one
    rule left on each side is a change of that rule, anything else is opened or closed."""
    left = list(before)
    added = []
    for row in after:
        twin = next((old for old in left if _same(old, row)), None)
        if twin is None:
            added.append(row)
        else:
            left.remove(twin)
    if len(left) == 1 and len(added) == 1:
        return [], [], [(left[0], added[0])]
    return added, left, []


def diff_policies(old: Policy, new: Policy, ports: Catalogue) -> dict[str, list[dict[str, Any]]]:
    """``{"added": [...], "removed": [...], "changed": [...]}``, one entry per rule."""
    old_rows, new_rows = _rows(old, ports), _rows(new, ports)
    old_findings = {(f.code, f.service, tuple(f.ports)) for f in check_policy(old, ports)}
    new_findings: dict[str, list[Finding]] = {}
    for f in check_policy(new, ports):
        if (f.code, f.service, tuple(f.ports)) not in old_findings:
            new_findings.setdefault(f.location, []).append(f)
    result: dict[str, list[dict[str, Any]]] = {"added": [], "removed": [], "changed": []}
    for key in sorted(old_rows.keys() | new_rows.keys()):
        added, removed, changed = _pair(old_rows.get(key, []), new_rows.get(key, []))
        result["added"] += [_entry(row, new_findings.get(row["origin"], [])) for row in added]
        result["removed"] += [_entry(row, []) for row in removed]
        for was, row in changed:
            before = _entry(was, [])
            after = _entry(row, new_findings.get(row["origin"], []))
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
