"""What a Policy allows, one row per rule: the table behind `fwgen explain` and `fwgen diff`."""

from __future__ import annotations

from typing import Any

from fwgen.policy import Policy, Rule
from fwgen.portdb import Catalogue


def sources(policy: Policy, rule: Rule) -> list[str]:
    """The remote addresses of a rule for its families, or ["any"]."""
    addresses = policy.remote_addresses(rule)
    return ["any"] if addresses is None else addresses


def rule_row(policy: Policy, rule: Rule, ports: Catalogue) -> dict[str, Any]:
    service = ports.get(rule.service) if rule.service else None
    return {
        "direction": rule.direction,
        "service": rule.service or rule.name,
        "protocol": rule.proto,
        "ports": [str(p) for p in rule.ports] or list(rule.icmp_types),
        "network": rule.remote or "any",
        "sources": sources(policy, rule),
        "families": list(rule.families),
        "limit": str(rule.limit) if rule.limit else None,
        "log": rule.log,
        "risk": service.risk if service else None,
        "exposure": service.exposure if service else None,
        "origin": rule.origin,
    }


def explain(policy: Policy, ports: Catalogue) -> list[dict[str, Any]]:
    return [rule_row(policy, rule, ports) for rule in policy.rules]


def table_rows(rows: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    def short(values: list[str]) -> str:
        return (
            ", ".join(values)
            if len(values) <= 3
            else f"{', '.join(values[:2])} +{len(values) - 2} more"
        )

    return [
        (
            r["direction"],
            r["service"],
            short(r["ports"]) or "-",
            r["protocol"],
            r["network"],
            "+".join(f.replace("ipv", "v") for f in r["families"]) or "none",
            r["limit"] or "-",
            r["risk"] or "-",
            r["exposure"] or "-",
            r["origin"],
        )
        for r in rows
    ]


TABLE_HEADERS = (
    "DIR",
    "SERVICE",
    "PORTS",
    "PROTO",
    "FROM/TO",
    "FAMILIES",
    "LIMIT",
    "RISK",
    "EXPOSURE",
    "ORIGIN",
)
