"""`fwgen hits`: the live counters of a ruleset, mapped back to its rules and profile lines.

A rule's counter is found by its label (`fwgen.policy.owned.rule_label`): the comment its
accept carries. Rules of one profile line (dns's 53/tcp and 53/udp) are one entry. A rule
that admitted nothing since the ruleset was loaded is a candidate for removal or
narrowing: FW023, in text, JSON and SARIF alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fwgen.errors import split_location
from fwgen.policy.ir import Policy
from fwgen.policy.owned import LABEL_LIMITS, rule_label, ufw_label
from fwgen.policy.shadowed import Counted
from fwgen.review.check import Finding, as_sarif
from fwgen.review.shadowreport import when

UNUSED = "FW023"


@dataclass
class Hit:
    name: str
    origin: str
    direction: str
    connections: int = 0
    bytes: int = 0
    labels: list[str] = field(default_factory=list)
    missing: bool = False  # no rule of this label is loaded: the live ruleset is another one


def hits(policy: Policy, counted: Counted) -> list[Hit]:
    """One entry per profile line (name and origin), in the Policy's order."""
    limit = LABEL_LIMITS[counted.target]
    out: dict[tuple[str, str], Hit] = {}
    for rule in policy.rules:
        if not rule.families:
            continue
        hit = out.setdefault((rule.name, rule.origin), Hit(rule.name, rule.origin, rule.direction))
        labels = [rule_label(rule, limit)]
        if counted.target == "ufw":  # its block's rules, or ufw's own
            labels.append(ufw_label(rule))
        hit.labels += [label for label in labels if label not in hit.labels]
    for hit in out.values():
        found = [counted.by_label[label] for label in hit.labels if label in counted.by_label]
        hit.missing = not found
        hit.connections = sum(f[0] for f in found)
        hit.bytes = sum(f[1] for f in found)
    return list(out.values())


def _since(counted: Counted) -> str:
    if counted.loaded_at is None and counted.target == "nftables":
        return "since the ruleset was loaded (when is unknown: it has no `loaded` set; render it again)"
    if counted.loaded_at is None:
        return f"since the ruleset was loaded ({counted.target} keeps no load time)"
    return f"since the ruleset was loaded, {when(counted.loaded_at)}"


def findings(found: list[Hit], counted: Counted) -> list[Finding]:
    return [
        Finding(
            code=UNUSED,
            level="info",
            message=f"{hit.name}: no new connection {_since(counted)}; remove or narrow the rule "
            "if nothing needs it",
            location=hit.origin,
        )
        for hit in found
        if hit.connections == 0 and not hit.missing
    ]


def as_text(found: list[Hit], counted: Counted) -> str:
    lines = [f"{counted.target}: counters {_since(counted)}"]
    for hit in found:
        if hit.missing:
            what = "not in the live ruleset (is another ruleset loaded?)"
        else:
            what = f"{hit.connections:,} new connection{'s' if hit.connections != 1 else ''}"
            what += "  <- no hits: remove or narrow it?" if hit.connections == 0 else ""
        lines.append(f"{hit.name} ({hit.origin}, {hit.direction}bound): {what}")
    lines += [f"note: {text}" for text in counted.ignored]
    return "\n".join(lines) + "\n"


def as_json(found: list[Hit], counted: Counted) -> dict[str, object]:
    return {
        "target": counted.target,
        "loaded_at": counted.loaded_at,
        "notes": counted.ignored,
        "rules": [
            {
                "name": h.name,
                "origin": h.origin,
                "file": split_location(h.origin)[0],
                "line": split_location(h.origin)[1],
                "direction": h.direction,
                "connections": h.connections,
                "first_packet_bytes": h.bytes,
                "in_live_ruleset": not h.missing,
                "unused": h.connections == 0 and not h.missing,
            }
            for h in found
        ],
    }


def as_hits_sarif(found: list[Hit], counted: Counted, version: str) -> dict[str, object]:
    return as_sarif(findings(found, counted), version)
