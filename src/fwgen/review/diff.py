"""A semantic diff of what two Policies allow: rules opened, closed, widened or narrowed, and
every setting that changes what is admitted (defaults, conntrack, limits, containers)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from fwgen.policy.denies import VERBS
from fwgen.policy.ir import SECONDS, Policy, Rule, few, interfaces_within
from fwgen.profile.portdb import Catalogue
from fwgen.review.check import Finding, check_policy
from fwgen.review.explain import SETTINGS, rule_row, shown_value

# What a rule admits, compared between the two sides (`_key` pairs the rules up first).
COMPARED = ("ports", "sources", "host", "interfaces", "families", "limit", "connlimit", "log")
# How wide each value of a setting is, a bigger number admitting more. None: either may
# admit what the other does not (coexist keeps or drops other programs' chains, which
# may accept, like Docker's, or refuse, like fail2ban's bans).
WIDTH: dict[str, Callable[[Any], int] | None] = {
    "inbound": {"drop": 0, "accept": 1}.__getitem__,
    "outbound": {"drop": 0, "accept": 1}.__getitem__,
    "forward": {"drop": 0, "ignore": 1, "accept": 2}.__getitem__,
    "loopback": int,
    "established": int,
    "drop_invalid": lambda value: int(not value),
    "limit_prefix_v4": int,  # longer prefixes: more sources, each with a whole budget
    "limit_prefix_v6": int,
    "containers": lambda value: int(value is None),  # published ports left to the engine
    "coexist": None,
    "log_drops": None,
    "refuse": None,  # reject or drop: what is refused is not admitted either way
}
ADMITS_NOTHING = (
    "log_drops",
    "refuse",
)  # settings that change what is logged, not what is admitted
Rows = dict[tuple[str, str, str], list[dict[str, Any]]]


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
            "host",
            "interfaces",
            "families",
            "limit",
            "connlimit",
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
    if key in ("sources", "host"):
        outer_nets = [ipaddress.ip_network(o) for o in outer]
        return all(
            any(n.version == o.version and n.subnet_of(o) for o in outer_nets)  # type: ignore[arg-type]
            for n in map(ipaddress.ip_network, inner)
        )
    if key == "interfaces":  # a glob (wg*) holds every name it starts
        return interfaces_within(inner, outer)
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


def _pace_within(inner: tuple[float, int] | None, outer: tuple[float, int] | None) -> bool:
    """Whether a limit of (connections a second, burst) *inner* admits no more than *outer*
    (None: no limit)."""
    if outer is None:
        return True
    return inner is not None and inner[0] <= outer[0] and inner[1] <= outer[1]


def _cap_within(inner: int | None, outer: int | None) -> bool:
    """Whether a connection cap admits no more than another (None: no cap)."""
    return outer is None or (inner is not None and inner <= outer)


def _verdict(before: dict[str, Any], after: dict[str, Any]) -> tuple[str, bool]:
    """widened, narrowed or changed: what the new rule admits against the old one; and
    whether it admits anything the old one did not."""
    keys = ("sources", "host", "interfaces", "ports", "families")
    wider = (
        not all(_within(after[k], before[k], k) for k in keys)
        or not _pace_within(after["pace"], before["pace"])
        or not _cap_within(after["connlimit"], before["connlimit"])
    )
    narrower = (
        not all(_within(before[k], after[k], k) for k in keys)
        or not _pace_within(before["pace"], after["pace"])
        or not _cap_within(before["connlimit"], after["connlimit"])
    )
    return ("changed" if wider == narrower else "widened" if wider else "narrowed"), wider


def _rows(policy: Policy, ports: Catalogue, ways: set[str]) -> Rows:
    """Every rule's row of the directions *ways*, grouped by what names it: a profile may
    have several rules of one name (ssh from admins, and ssh from anywhere), and none of
    them may hide another."""
    rows: Rows = {}
    for rule in policy.rules:
        if rule.direction in ways:
            row = rule_row(policy, rule, ports)
            limit = rule.limit
            row["pace"] = (limit.rate / SECONDS[limit.unit], limit.burst) if limit else None
            rows.setdefault(_key(rule), []).append(row)
    return rows


def _open_ways(*policies: Policy) -> set[str]:
    """The directions whose default is accept on either side: their rules admit nothing
    more on that side, so the change of the default says it all (`_settings`)."""
    return {
        way
        for policy in policies
        for way, default in (("in", policy.defaults.inbound), ("out", policy.defaults.outbound))
        if default == "accept"
    }


def _admits(row: dict[str, Any]) -> tuple[object, ...]:
    """What a row admits (`COMPARED`), hashable: equal for identical rules."""
    return tuple(tuple(v) if isinstance(v, list) else v for v in (row[k] for k in COMPARED))


def _pair(
    before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[dict[str, Any], dict[str, Any]]]]:
    """Rules of one name: (added, removed, changed pairs). Identical rules cancel out; one
    rule left on each side is a change of that rule, anything else is opened or closed."""
    twins: dict[tuple[object, ...], list[int]] = {}
    for i, old in reversed(list(enumerate(before))):
        twins.setdefault(_admits(old), []).append(i)  # the first one last, to pop it first
    added, cancelled = [], set()
    for row in after:
        same = twins.get(_admits(row))
        if same:
            cancelled.add(same.pop())
        else:
            added.append(row)
    left = [old for i, old in enumerate(before) if i not in cancelled]
    if len(left) == 1 and len(added) == 1:
        return [], [], [(left[0], added[0])]
    return added, left, []


def _only(policy: Policy, way: str) -> str:
    """What the rules of one direction allow, when its default is drop."""
    rules = [r for r in policy.rules if r.direction == way]
    shown = [f"{r.service or r.name} {','.join(map(str, r.ports)) or '-'}/{r.proto}" for r in rules]
    return few(list(dict.fromkeys(shown))) or "nothing"


def _settings(old: Policy, new: Policy) -> list[dict[str, Any]]:
    """Each setting that differs: its values, what the new one means, and widened, narrowed
    or changed."""
    out = []
    for name, width in WIDTH.items():
        was, now = old.setting(name), new.setting(name)
        if was == now:
            continue
        change, wider = "changed", name not in ADMITS_NOTHING  # docker -> podman: either
        if width is not None and width(now) != width(was):
            change = "widened" if width(now) > width(was) else "narrowed"
            wider = change == "widened"
        meaning = SETTINGS[name](now)
        if name in ("inbound", "outbound"):
            side = new if now == "drop" else old
            when = "now" if side is new else "before"
            meaning += f"; {when} only: {_only(side, name.removesuffix('bound'))}"
        out.append(
            {
                "setting": name,
                "change": change,
                "widens": wider,
                "before": was,
                "after": now,
                "meaning": meaning,
            }
        )
    return out


def diff_policies(
    old: Policy, new: Policy, old_ports: Catalogue, new_ports: Catalogue | None = None
) -> dict[str, list[dict[str, Any]]]:
    """``{"settings": [...], "added": [...], "removed": [...], "changed": [...],
    "findings": [...]}``: one entry per setting that differs and per rule, then the new
    findings no entry shows (about the whole host, or a rule that did not change). Each
    side is read with its own port database."""
    new_ports = new_ports or old_ports
    ways = {"in", "out"} - _open_ways(old, new)
    old_rows, new_rows = _rows(old, old_ports, ways), _rows(new, new_ports, ways)
    old_findings = {(f.code, f.service, tuple(f.ports)) for f in check_policy(old, old_ports)}
    new_findings: dict[str, list[Finding]] = {}
    for f in check_policy(new, new_ports):
        if (f.code, f.service, tuple(f.ports)) not in old_findings:
            new_findings.setdefault(f.location, []).append(f)
    result: dict[str, list[dict[str, Any]]] = {
        "settings": _settings(old, new),
        "added": [],
        "removed": [],
        "changed": [],
        "findings": [],
    }
    shown: set[str] = set()
    for key in sorted(old_rows.keys() | new_rows.keys()):
        added, removed, changed = _pair(old_rows.get(key, []), new_rows.get(key, []))
        result["added"] += [_entry(row, new_findings.get(row["origin"], [])) for row in added]
        shown |= {row["origin"] for row in added} | {row["origin"] for _, row in changed}
        result["removed"] += [_entry(row, []) for row in removed]
        for was, row in changed:
            before = _entry(was, [])
            after = _entry(row, new_findings.get(row["origin"], []))
            change, wider = _verdict({**was, **before}, {**row, **after})
            result["changed"].append(
                {
                    "service": row["service"],
                    "protocol": row["protocol"],
                    "direction": row["direction"],
                    "change": change,
                    "widens": wider,
                    "before": before,
                    "after": after,
                }
            )
    result["blocks"], result["unblocks"] = _denies(old, new)
    result["findings"] = [
        {"location": f.location, "level": f.level, "code": f.code, "message": f.message}
        for location, found in new_findings.items()
        if location not in shown
        for f in found
    ]
    return result


def _blocked(policy: Policy, rule: Rule) -> str:
    """What a deny or reject rule blocks, in words: ``reject 22/tcp from 10.0.0.0/8 [ipv4]``."""
    ports = ",".join(map(str, rule.ports)) or ",".join(rule.icmp_types)
    what = f"{ports}/{rule.proto}" if ports else "every protocol"
    way = "from" if rule.direction == "in" else "to"
    sources = policy.remote_addresses(rule) or ["any"]
    return f"{VERBS[rule.action]} {what} {way} {few(sources)} [{'+'.join(rule.families)}]"


def _denies(old: Policy, new: Policy) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(what the new side now blocks, what it no longer blocks), deny by deny."""
    before = {_blocked(old, r): r for r in old.denies}
    after = {_blocked(new, r): r for r in new.denies}
    return (
        [{"blocks": text, "origin": after[text].origin} for text in sorted(after.keys() - before)],
        [{"blocks": text, "origin": before[text].origin} for text in sorted(before.keys() - after)],
    )


def changes(result: dict[str, list[dict[str, Any]]]) -> bool:
    """Whether anything admitted changed (new findings alone are no change)."""
    keys = ("settings", "added", "removed", "changed", "blocks", "unblocks")
    return any(result.get(k) for k in keys)


def widens(result: dict[str, list[dict[str, Any]]]) -> bool:
    """Whether the diff lets anything more in: a rule opened or widened, a deny gone, or
    a setting."""
    return (
        bool(result["added"])
        or bool(result.get("unblocks"))
        or any(c["widens"] for c in (*result["changed"], *result["settings"]))
    )


def _describe(entry: dict[str, Any]) -> str:
    ports = ",".join(entry["ports"]) or "-"
    way = "from" if entry["direction"] == "in" else "to"
    srcs = ", ".join(entry["sources"])
    host = f" on {', '.join(entry['host'])}" if entry["host"] != ["any"] else ""
    if entry["interfaces"] != ["any"]:
        host += f" on interface {', '.join(entry['interfaces']) or 'none (an empty group)'}"
    extra = f" (risk {entry['risk']}, {entry['exposure']})" if entry["risk"] else ""
    limit = f", limit {entry['limit']}" if entry["limit"] else ""
    limit += f", connlimit {entry['connlimit']}" if entry.get("connlimit") else ""
    log = ", logged" if entry["log"] else ""
    return (
        f"{entry['service']} {ports}/{entry['protocol']} {way} {srcs}{host} "
        f"[{'+'.join(entry['families'])}]{limit}{log}{extra}"
    )


def as_text(result: dict[str, list[dict[str, Any]]], markdown: bool = False) -> str:
    lines = []
    bullet = "- " if markdown else ""
    sub = "  - " if markdown else "    "

    def verb(word: str, sign: str) -> str:
        return f"{bullet}**{word}**" if markdown else f"{sign} {word}"

    if markdown:
        lines.append("### fwgen: firewall changes\n")
    for entry in result["settings"]:
        lines.append(
            f"{verb(entry['change'], '~')} {entry['setting']}: {shown_value(entry['before'])} "
            f"{'→' if markdown else '->'} {shown_value(entry['after'])} ({entry['meaning']})"
        )
    for entry in result["added"]:
        lines.append(f"{verb('opens', '+')} {_describe(entry)}")
        lines += [f"{sub}{f}" for f in entry["findings"]]
    for entry in result["removed"]:
        lines.append(f"{verb('closes', '-')} {_describe(entry)}")
    for entry in result["changed"]:
        lines.append(f"{verb(entry['change'], '~')} {_describe(entry['before'])}")
        lines.append(
            f"{'  ' if markdown else '    '}{'→' if markdown else '->'} {_describe(entry['after'])}"
        )
        lines += [f"{sub}{f}" for f in entry["after"]["findings"]]
    lines += [
        f"{verb('now blocks', '-')} {e['blocks']} ({e['origin']})" for e in result.get("blocks", [])
    ]
    lines += [
        f"{verb('no longer blocks', '+')} {e['blocks']} ({e['origin']})"
        for e in result.get("unblocks", [])
    ]
    lines += [
        f"{verb('new finding', '!')} {f['location']}: {f['level']} {f['code']}: {f['message']}"
        for f in result["findings"]
    ]
    if not changes(result):
        lines.append("no change in what is allowed")
    elif widens(result):
        lines.append(
            f"{'**' if markdown else ''}this change lets more in{'**' if markdown else ''}"
        )
    return "\n".join(lines) + "\n"
