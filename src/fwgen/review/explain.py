"""What a Policy allows: the settings that change what is admitted, then one row per rule:
the table behind `fwgen explain` and `fwgen diff`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fwgen.policy.ir import Policy, Rule
from fwgen.profile.portdb import Catalogue


def _either(yes: str, no: str) -> Callable[[Any], str]:
    return lambda value: yes if value else no


def _budget(family: str, bits: int, every: int) -> str:
    shared = f": the addresses of one /{bits} share one budget" if bits < every else ""
    return f"rate limits count {family} sources by /{bits}{shared}"


# What each value of a setting (`fwgen.policy.ir.SETTINGS`) means, in the words `explain` and
# `diff` show.
SETTINGS: dict[str, Callable[[Any], str]] = {
    "inbound": {
        "drop": "inbound only as the rules allow",
        "accept": "everything inbound",
    }.__getitem__,
    "outbound": {
        "drop": "outbound only as the rules allow",
        "accept": "every outbound connection is allowed",
    }.__getitem__,
    "forward": {
        "drop": "forwarded traffic is dropped",
        "accept": "all forwarded traffic is accepted",
        "ignore": "forwarded traffic is left to other programs' rules",
    }.__getitem__,
    "loopback": _either("loopback traffic is accepted", "loopback traffic goes through the rules"),
    "established": _either(
        "replies and related traffic are accepted",
        "replies go through the rules: dropped unless a rule admits them",
    ),
    "drop_invalid": _either(
        "packets conntrack finds invalid are dropped",
        "packets conntrack finds invalid go on to the rules",
    ),
    "limit_prefix_v4": lambda bits: _budget("IPv4", bits, 32),
    "limit_prefix_v6": lambda bits: _budget("IPv6", bits, 128),
    "containers": lambda engine: (
        f"inbound rules also govern connections to {engine}'s published ports"
        if engine
        else "no container engine: published ports are left to the engine's own rules"
    ),
    "coexist": _either(
        "iptables: fwgen's own chains beside other programs' chains",
        "iptables: the filter table is replaced, other programs' chains with it",
    ),
    "log_drops": _either("dropped packets are logged", "dropped packets are not logged"),
}


def settings(policy: Policy) -> list[dict[str, Any]]:
    return [
        {"setting": name, "value": policy.setting(name), "meaning": meaning(policy.setting(name))}
        for name, meaning in SETTINGS.items()
    ]


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
        "network": policy.remote_words(rule),
        "sources": sources(policy, rule),
        "host": list(rule.local) or ["any"],
        "interfaces": list(rule.interfaces) if rule.on else ["any"],
        "on": list(rule.on),
        "families": list(rule.families),
        "limit": str(rule.limit) if rule.limit else None,
        "log": rule.log,
        "risk": service.risk if service else None,
        "exposure": service.exposure if service else None,
        "origin": rule.origin,
    }


def explain(policy: Policy, ports: Catalogue) -> dict[str, list[dict[str, Any]]]:
    return {
        "settings": settings(policy),
        "rules": [rule_row(policy, rule, ports) for rule in policy.rules],
    }


def shown_value(value: Any) -> str:
    """A setting's value as a profile writes it: ``false``, ``none``, ``drop``, ``64``."""
    return "none" if value is None else str(value).lower()


def settings_lines(policy: Policy) -> list[str]:
    return [f"{s['setting']}: {shown_value(s['value'])} ({s['meaning']})" for s in settings(policy)]


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
            short(r["host"]),
            _on(r, short),
            "+".join(f.replace("ipv", "v") for f in r["families"]) or "none",
            r["limit"] or "-",
            r["risk"] or "-",
            r["exposure"] or "-",
            r["origin"],
        )
        for r in rows
    ]


def _on(row: dict[str, Any], short: Callable[[list[str]], str]) -> str:
    """The interfaces of a row, after the groups that name them: ``private: eth1``."""
    if not row["on"] or row["on"] == row["interfaces"]:
        return short(row["interfaces"])
    return f"{short(row['on'])}: {short(row['interfaces']) or 'none'}"


TABLE_HEADERS = (
    "DIR",
    "SERVICE",
    "PORTS",
    "PROTO",
    "FROM/TO",
    "HOST",
    "ON",
    "FAMILIES",
    "LIMIT",
    "RISK",
    "EXPOSURE",
    "ORIGIN",
)
