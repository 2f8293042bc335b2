"""The counters of fwgen's live rules (`fwgen hits`): nftables' per-rule counters in
``table inet fwgen``, iptables' rule counters (``iptables-save -c``). What the kernel
returns is read as untrusted: a rule whose counter or comment is not what fwgen writes
is left out and said."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from fwgen.errors import FwgenError
from fwgen.host.backends import run
from fwgen.host.shadowmark import loaded_at, nft_objects, number
from fwgen.policy.owned import CONTAINER_CHAINS
from fwgen.policy.shadowed import Counted
from fwgen.read.yamlsource import read_text

# The chains whose ACCEPT (RETURN in the container chains) rules are fwgen's.
IPTABLES_CHAINS = ("INPUT", "OUTPUT", "FWGEN-INPUT", "FWGEN-OUTPUT", *CONTAINER_CHAINS)
SAVED = re.compile(
    r'^\[(\d+):(\d+)\] -A (\S+) .*-m comment --comment (?:"([ -~]*?)"|([!-~]+)) -j (ACCEPT|RETURN)$'
)


def _add(counted: Counted, label: str, packets: int, size: int) -> None:
    old = counted.by_label.get(label, (0, 0))
    counted.by_label[label] = (old[0] + packets, old[1] + size)


def parse_nft(text: str, now: float) -> Counted | None:
    """The counters in `nft -j list table inet fwgen`, or None without that table."""
    objects = nft_objects(text)
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
            counted.loaded_at = loaded_at(found, now)
        rule = o.get("rule")
        if not isinstance(rule, dict) or rule.get("table") != "fwgen":
            continue
        expr: list[Any] = rule["expr"] if isinstance(rule.get("expr"), list) else []
        verdicts = [e for e in expr if isinstance(e, dict) and "accept" in e]
        counters = [e["counter"] for e in expr if isinstance(e, dict) and "counter" in e]
        if not verdicts or not counters:
            continue  # the prologue's rules, the drops: no counter of a profile's rule
        comment = rule.get("comment")
        packets = number(counters[0].get("packets")) if isinstance(counters[0], dict) else None
        size = number(counters[0].get("bytes")) if isinstance(counters[0], dict) else None
        if not isinstance(comment, str) or packets is None or size is None:
            bad += 1
            continue
        _add(counted, comment, packets, size)
    if bad:
        counted.ignored.append(
            f"{bad} counted rules of table inet fwgen with unexpected contents left out"
        )
    return counted


def parse_iptables(texts: list[str], chains: tuple[str, ...] = IPTABLES_CHAINS) -> Counted:
    """The counters in `iptables-save -c -t filter` outputs (IPv4, IPv6), summed, of the
    ACCEPT (RETURN) rules of *chains*."""
    counted = Counted("iptables", None)
    for text in texts:
        for line in text.splitlines():
            found = SAVED.match(line)
            if found is None or found.group(3) not in chains:
                continue
            label = found.group(4) if found.group(4) is not None else found.group(5)
            _add(counted, label, int(found.group(1)), int(found.group(2)))
    return counted


UFW_CHAINS = tuple(
    f"{prefix}-{where}-{hook}"
    for prefix in ("ufw", "ufw6")
    for where in ("before", "after")
    for hook in ("input", "output", "forward")
)
USER_CHAINS = ("ufw-user-input", "ufw-user-output", "ufw6-user-input", "ufw6-user-output")
TUPLE = re.compile(r"^### tuple ### .* comment=([0-9a-f]+)$")
UFW_LABEL = re.compile(r"^(fwgen: [ -~]+) \[[0-9a-f]+\]$")
COUNTED = re.compile(r"^\[(\d+):(\d+)\] -A (\S+) ")


def parse_ufw(saves: list[str], user_rules: list[str]) -> Counted:
    """The counters of fwgen's rules under ufw: those of its block in before.rules and
    after.rules by their comments (as `parse_iptables`), and ufw's own rules (``ufw allow
    ... comment 'fwgen: NAME [tag]'``) by their place: the n-th rule of a chain in
    user.rules (user6.rules) is the n-th of that chain in ``iptables-save``."""
    counted = parse_iptables(saves, UFW_CHAINS)
    counted.target = "ufw"
    for save, rules in zip(saves, user_rules, strict=True):
        loaded: dict[str, list[tuple[int, int]]] = {}
        for line in save.splitlines():
            found = COUNTED.match(line)
            if found and found.group(3) in USER_CHAINS:
                loaded.setdefault(found.group(3), []).append(
                    (int(found.group(1)), int(found.group(2)))
                )
        written: dict[str, list[tuple[str | None, bool]]] = {}
        label: str | None = None
        for line in rules.splitlines():
            tuple_line = TUPLE.match(line)
            if tuple_line or line.startswith("###") or not line.strip():
                label = _ufw_label(tuple_line.group(1)) if tuple_line else None
                continue
            parts = line.split()
            if len(parts) > 1 and parts[0] == "-A" and parts[1] in USER_CHAINS:
                written.setdefault(parts[1], []).append((label, line.endswith("-j ACCEPT")))
        for chain, lines in written.items():
            counters = loaded.get(chain, [])
            if len(counters) != len(lines):
                counted.ignored.append(
                    f"{chain}: ufw's rules file and the loaded rules differ; its rules are not counted"
                )
                continue
            for (name, accepts), (packets, size) in zip(lines, counters, strict=True):
                if name is not None and accepts:
                    _add(counted, name, packets, size)
    return counted


def _ufw_label(text: str) -> str | None:
    """``fwgen: NAME`` from a tuple's hex comment, or None when it is not fwgen's."""
    try:
        found = UFW_LABEL.match(bytes.fromhex(text).decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None
    return found.group(1) if found else None


def read(target: str) -> Counted:
    """The live counters of fwgen's rules on *target*."""
    if target == "nftables":
        if "fwgen" not in run("nft", "list", "tables", "inet").split():
            raise FwgenError("no table inet fwgen is loaded here: nothing to count")
        found = parse_nft(run("nft", "-j", "list", "table", "inet", "fwgen"), time.time())
        if found is None:  # removed between the two commands
            raise FwgenError("no table inet fwgen is loaded here: nothing to count")
        return found
    if target == "iptables":
        return parse_iptables(
            [run(save, "-c", "-t", "filter") for save in ("iptables-save", "ip6tables-save")]
        )
    if target == "ufw":
        saves = [run(save, "-c", "-t", "filter") for save in ("iptables-save", "ip6tables-save")]
        files = [Path("/etc/ufw/user.rules"), Path("/etc/ufw/user6.rules")]
        texts = [read_text(f, str(f), "ufw rules", limit=64 << 20) for f in files]
        return parse_ufw(saves, texts)
    why = (
        "Windows Firewall keeps no per-rule counters: not applicable"
        if target == "windows"
        else "use nftables, iptables or ufw"
    )
    raise FwgenError(
        f"--target {target!r}: fwgen hits reads nftables, iptables or ufw counters ({why})"
    )
