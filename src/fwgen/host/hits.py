"""The counters of fwgen's live rules (`fwgen hits`): nftables' per-rule counters in
``table inet fwgen``, iptables' rule counters (``iptables-save -c``). What the kernel
returns is read as untrusted: a rule whose counter or comment is not what fwgen writes
is left out and said, and a counter is credited only to a rule that is one of those
fwgen rendered, in fwgen's own chain (`fwgen.host.ownrules`): another program's rule
carrying the comment of a rule of fwgen's is counted apart, as not fwgen's."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fwgen.errors import FwgenError
from fwgen.host.backends import run
from fwgen.host.ownrules import Owned, SavedRule, owned_rules, parse_rules, window
from fwgen.host.shadowmark import loaded_at, nft_objects, number
from fwgen.policy.shadowed import Counted
from fwgen.read.yamlsource import read_text

COUNTED_VERDICTS = ("ACCEPT", "RETURN")  # RETURN: the container chains' accept
NFT_CHAIN = re.compile(r"\s*chain (\S+) \{")
NFT_ACCEPT = re.compile(r"\s*(.*\S)\s+accept comment \"([^\"]*)\"")
FOREIGN = (
    "{} rules outside fwgen's own carry the comment of one of its rules (another "
    "program's?); not counted"
)


def _add(counted: Counted, label: str, packets: int, size: int) -> None:
    old = counted.by_label.get(label, (0, 0))
    counted.by_label[label] = (old[0] + packets, old[1] + size)


def nft_expected(rendered: str) -> dict[str, list[tuple[str, bool]]]:
    """The accept rules of each chain of a rendered ruleset, in order: (label, whether it
    counts)."""
    out: dict[str, list[tuple[str, bool]]] = {}
    chain = None
    for line in rendered.splitlines():
        found = NFT_CHAIN.fullmatch(line)
        if found is not None:
            chain = out.setdefault(found.group(1), [])
        elif line.strip() == "}":
            chain = None
        elif chain is not None and (rule := NFT_ACCEPT.fullmatch(line)) is not None:
            chain.append((rule.group(2), rule.group(1).endswith(" counter")))
    return {name: rules for name, rules in out.items() if rules}


Accept = tuple[tuple[Any, bool], tuple[int, int] | None]  # ((comment, counts), numbers)


def _accept(rule: dict[str, Any]) -> Accept | None:
    """((comment, whether it counts), (packets, bytes)) of a rule that accepts; None for
    another. The numbers are None when the rule has no counter, or one that does not hold
    what a counter holds."""
    expr: list[Any] = rule["expr"] if isinstance(rule.get("expr"), list) else []
    if not any(isinstance(e, dict) and "accept" in e for e in expr):
        return None  # the drops and rejects: no counter of a profile's rule
    counters = [e["counter"] for e in expr if isinstance(e, dict) and "counter" in e]
    comment = rule.get("comment") if isinstance(rule.get("comment"), str) else None
    if not counters:
        return (comment, False), None
    first = counters[0] if isinstance(counters[0], dict) else {}
    packets, size = number(first.get("packets")), number(first.get("bytes"))
    return (comment, True), (packets, size) if packets is not None and size is not None else None


def parse_nft(text: str, now: float, rendered: str) -> Counted | None:
    """The counters in `nft -j list table inet fwgen` of the rules of *rendered* (the
    ruleset fwgen renders for the profile), or None without that table."""
    objects = nft_objects(text)
    if not any(
        isinstance(o.get("table"), dict)
        and o["table"].get("name") == "fwgen"
        and o["table"].get("family") == "inet"
        for o in objects
    ):
        return None
    counted = Counted("nftables", None)
    expected = nft_expected(rendered)
    labels = {label for rules in expected.values() for label, counts in rules if counts}
    loaded: dict[str, list[Accept]] = {}
    foreign = bad = 0
    for o in objects:
        found = o.get("set")
        if isinstance(found, dict) and (found.get("name"), found.get("table")) == (
            "loaded",
            "fwgen",
        ):
            counted.loaded_at = loaded_at(found, now)
        rule = o.get("rule")
        entry = _accept(rule) if isinstance(rule, dict) else None
        if entry is None or not isinstance(rule, dict):
            continue
        if (rule.get("family"), rule.get("table")) != ("inet", "fwgen") or not isinstance(
            rule.get("chain"), str
        ):
            foreign += entry[0][0] in labels
            continue
        loaded.setdefault(rule["chain"], []).append(entry)
    for chain, there in loaded.items():
        want = expected.get(chain, [])
        at = window(want, [key for key, _ in there])
        if at is None:
            if want:
                counted.ignored.append(
                    f"chain {chain} of table inet fwgen does not hold the rules fwgen renders "
                    "for this profile (another ruleset, or a rule added or changed); its "
                    "rules are not counted"
                )
            else:
                foreign += sum(comment in labels for (comment, _), _ in there)
            continue
        others = there[:at] + there[at + len(want) :]
        foreign += sum(comment in labels for (comment, _), _ in others)
        for (comment, counts), numbers in there[at : at + len(want)]:
            if counts and numbers is None:
                bad += 1
            elif counts and numbers is not None:
                _add(counted, comment, *numbers)
    if bad:
        counted.ignored.append(
            f"{bad} counted rules of table inet fwgen with unexpected contents left out"
        )
    if foreign:
        counted.ignored.append(FOREIGN.format(foreign))
    return counted


def _family_rules(
    saved: list[SavedRule], rendered: Mapping[str, str], likely: str
) -> tuple[str, Owned]:
    """The family of one ``iptables-save`` output (the one whose rendered rules it holds
    most of; *likely* when it holds none) and which of its rules are fwgen's."""
    scored = [
        (family, owned_rules(parse_rules(text), saved, COUNTED_VERDICTS))
        for family, text in rendered.items()
    ]
    return max(scored, key=lambda found: (len(found[1].rules), found[0] == likely))


def parse_iptables(texts: list[str], rendered: Mapping[str, str]) -> Counted:
    """The counters in `iptables-save -c -t filter` outputs (IPv4, IPv6), summed, of the
    ACCEPT (RETURN) rules fwgen rendered (*rendered*: the rules file of each family)."""
    counted = Counted("iptables", None)
    foreign = 0
    seen: set[str] = set()
    for i, text in enumerate(texts):
        family, owned = _family_rules(parse_rules(text), rendered, ("ipv4", "ipv6")[i % 2])
        if family in seen:  # the same rules twice would count every connection twice
            raise FwgenError(
                f"two of the outputs hold the {family} rules; give one of `iptables-save -c` "
                "and one of `ip6tables-save -c`"
            )
        seen.add(family)
        foreign += _credit(counted, owned, family)
    if foreign:
        counted.ignored.append(FOREIGN.format(foreign))
    return counted


def _credit(counted: Counted, owned: Owned, family: str) -> int:
    """Add the counters of fwgen's own ACCEPT (RETURN) rules, and say which chains are not
    what fwgen rendered: the number of others' rules carrying the comment of one of its."""
    counted.ignored += [
        f"chain {chain} ({family}) does not hold the rules fwgen renders for this profile "
        "(another ruleset, or a rule inserted among them or changed); its rules are not "
        "counted"
        for chain in owned.differing
    ]
    for rule in owned.rules:
        if rule.verdict in COUNTED_VERDICTS and rule.comment is not None:
            if rule.counters is None:
                counted.ignored.append("rules saved without counters: use iptables-save -c")
                break
            _add(counted, rule.comment, *rule.counters)
    return owned.foreign


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


def parse_ufw(saves: list[str], user_rules: list[str], rendered: str) -> Counted:
    """The counters of fwgen's rules under ufw: those of its block in before.rules and
    after.rules (the ``-A`` lines of *rendered*, fwgen's ufw script) found as in
    `parse_iptables`, and ufw's own rules (``ufw allow ... comment 'fwgen: NAME [tag]'``)
    by their place: the n-th rule of a chain in user.rules (user6.rules) is the n-th of
    that chain in ``iptables-save``."""
    counted = Counted("ufw", None)
    block = [r for r in parse_rules(rendered) if r.chain in UFW_CHAINS]
    foreign = 0
    for family, prefix, save in zip(("ipv4", "ipv6"), ("ufw-", "ufw6-"), saves, strict=False):
        mine = [r for r in block if r.chain.startswith(prefix)]
        owned = owned_rules(mine, parse_rules(save), COUNTED_VERDICTS)
        foreign += _credit(counted, owned, family)
    if foreign:
        counted.ignored.append(FOREIGN.format(foreign))
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


def read(target: str, rendered: Mapping[str, str]) -> Counted:
    """The live counters of fwgen's rules on *target*; *rendered*: the rules fwgen renders
    for the profile, by the family they load into (``inet`` for nftables; ``ipv4`` and
    ``ipv6`` for iptables), or for ufw its script (``ufw``)."""
    if target == "nftables":
        if "fwgen" not in run("nft", "list", "tables", "inet").split():
            raise FwgenError("no table inet fwgen is loaded here: nothing to count")
        text = run("nft", "-j", "list", "table", "inet", "fwgen")
        found = parse_nft(text, time.time(), rendered["inet"])
        if found is None:  # removed between the two commands
            raise FwgenError("no table inet fwgen is loaded here: nothing to count")
        return found
    if target == "iptables":
        return parse_iptables(
            [run(save, "-c", "-t", "filter") for save in ("iptables-save", "ip6tables-save")],
            rendered,
        )
    if target == "ufw":
        saves = [run(save, "-c", "-t", "filter") for save in ("iptables-save", "ip6tables-save")]
        files = [Path("/etc/ufw/user.rules"), Path("/etc/ufw/user6.rules")]
        texts = [read_text(f, str(f), "ufw rules", limit=64 << 20) for f in files]
        return parse_ufw(saves, texts, rendered["ufw"])
    why = (
        "Windows Firewall keeps no per-rule counters: not applicable"
        if target == "windows"
        else "use nftables, iptables or ufw"
    )
    raise FwgenError(
        f"--target {target!r}: fwgen hits reads nftables, iptables or ufw counters ({why})"
    )
