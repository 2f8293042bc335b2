"""The counters of fwgen's live rules (`fwgen hits`): nftables' per-rule counters in
``table inet fwgen``, iptables' rule counters (``iptables-save -c``). What the kernel
returns is read as untrusted: a rule whose counter or comment is not what fwgen writes
is left out and said."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from fwgen.errors import FwgenError
from fwgen.host.backends import run
from fwgen.policy.owned import CONTAINER_CHAINS
from fwgen.policy.shadowed import Counted

# The chains whose ACCEPT (RETURN in the container chains) rules are fwgen's.
IPTABLES_CHAINS = ("INPUT", "OUTPUT", "FWGEN-INPUT", "FWGEN-OUTPUT", *CONTAINER_CHAINS)
SAVED = re.compile(
    r'^\[(\d+):(\d+)\] -A (\S+) .*-m comment --comment (?:"([ -~]*?)"|([!-~]+)) -j (ACCEPT|RETURN)$'
)


def _count(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 64
    return value if ok else None


def _add(counted: Counted, label: str, packets: int, size: int) -> None:
    old = counted.by_label.get(label, (0, 0))
    counted.by_label[label] = (old[0] + packets, old[1] + size)


def parse_nft(text: str, now: float) -> Counted | None:
    """The counters in `nft -j list table inet fwgen`, or None without that table."""
    try:
        items = json.loads(text)["nftables"]
        assert isinstance(items, list)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise FwgenError("`nft -j list table` gave output that is not nftables JSON") from None
    objects = [i for i in items if isinstance(i, dict) and len(i) == 1]
    if not any(
        isinstance(o.get("table"), dict) and o["table"].get("name") == "fwgen" for o in objects
    ):
        return None
    counted = Counted("nftables", None)
    bad = 0
    for o in objects:
        found = o.get("set")
        if (
            isinstance(found, dict)
            and found.get("name") == "loaded"
            and found.get("table") == "fwgen"
        ):
            counted.loaded_at = _loaded(found, now)
        rule = o.get("rule")
        if not isinstance(rule, dict) or rule.get("table") != "fwgen":
            continue
        expr: list[Any] = rule["expr"] if isinstance(rule.get("expr"), list) else []
        verdicts = [e for e in expr if isinstance(e, dict) and "accept" in e]
        counters = [e["counter"] for e in expr if isinstance(e, dict) and "counter" in e]
        if not verdicts or not counters:
            continue  # the prologue's rules, the drops: no counter of a profile's rule
        comment = rule.get("comment")
        packets = _count(counters[0].get("packets")) if isinstance(counters[0], dict) else None
        size = _count(counters[0].get("bytes")) if isinstance(counters[0], dict) else None
        if not isinstance(comment, str) or packets is None or size is None:
            bad += 1
            continue
        _add(counted, comment, packets, size)
    if bad:
        counted.ignored.append(
            f"{bad} counted rules of table inet fwgen with unexpected contents left out"
        )
    return counted


def _loaded(found: dict[str, Any], now: float) -> float | None:
    timeout = _count(found.get("timeout"))
    for elem in found.get("elem") or []:
        inner = elem.get("elem") if isinstance(elem, dict) else None
        expires = _count(inner.get("expires")) if isinstance(inner, dict) else None
        if timeout and expires is not None and expires <= timeout:
            return now - (timeout - expires)
    return None


def parse_iptables(texts: list[str]) -> Counted:
    """The counters in `iptables-save -c -t filter` outputs (IPv4, IPv6), summed."""
    counted = Counted("iptables", None)
    for text in texts:
        for line in text.splitlines():
            found = SAVED.match(line)
            if found is None or found.group(3) not in IPTABLES_CHAINS:
                continue
            label = found.group(4) if found.group(4) is not None else found.group(5)
            _add(counted, label, int(found.group(1)), int(found.group(2)))
    return counted


def read(target: str) -> Counted:
    """The live counters of fwgen's rules on *target*."""
    if target == "nftables":
        if "fwgen" not in run("nft", "list", "tables", "inet").split():
            raise FwgenError("no table inet fwgen is loaded here: nothing to count")
        found = parse_nft(run("nft", "-j", "list", "table", "inet", "fwgen"), time.time())
        assert found is not None
        return found
    if target == "iptables":
        return parse_iptables(
            [run(save, "-c", "-t", "filter") for save in ("iptables-save", "ip6tables-save")]
        )
    why = (
        "Windows Firewall keeps no per-rule counters: not applicable"
        if target == "windows"
        else "use nftables or iptables"
    )
    raise FwgenError(f"--target {target!r}: fwgen hits reads nftables or iptables counters ({why})")
