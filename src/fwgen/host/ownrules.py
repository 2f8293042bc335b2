"""Which of the loaded rules are the ones fwgen rendered (`fwgen hits`).

A counter is credited to a profile's rule only when its rule sits in a chain fwgen
renders, among the rules fwgen rendered there, as one unbroken run in their order.
A rule another program adds, even one carrying the comment of a rule of fwgen's, is
not fwgen's: it is counted apart and said. A chain whose loaded rules do not hold what
fwgen rendered (a rule inserted among them, one changed) is not counted at all.

iptables rules are compared by what they match, as ``iptables-save`` prints them:
it reorders a match's options, abbreviates rates (``5/sec``), leaves out defaults
(``--hashlimit-htable-expire``), writes ``/32`` after an address and names protocols
by /etc/protocols; those differences are evened out, nothing else. Every line is read in linear time, whatever it holds.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

# One token of an iptables-save line: a double-quoted string (\" and \\ inside), or a
# run of anything else but blanks and quotes, or a lone quote.
TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[^\s"]+|"')
COUNTERS = re.compile(r"\[(\d+):(\d+)\]")
ADDRESSES = ("-s", "-d")
STATES = ("--ctstate", "--state")
RATES = ("--hashlimit-upto", "--hashlimit-above", "--limit")
UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day"}
# Protocols by number: iptables-save names a number it finds in the host's /etc/protocols.
PROTOCOL_NUMBERS = {
    "icmp": "1",
    "tcp": "6",
    "udp": "17",
    "dccp": "33",
    "gre": "47",
    "esp": "50",
    "ah": "51",
    "ipv6-icmp": "58",
    "icmpv6": "58",
    "sctp": "132",
    "udplite": "136",
}
# Options iptables-save leaves out when they hold their default (a hash table's tuning).
TUNING = ("--hashlimit-htable-expire", "--hashlimit-htable-gcinterval", "--hashlimit-htable-size")
VERDICT_OPTIONS = ("-j", "-g")


@dataclass(frozen=True)
class SavedRule:
    """One ``-A CHAIN ...`` line: what it matches (its key), its verdict and comment, and
    the counters before it (None in a rendered file)."""

    chain: str
    key: tuple[tuple[bool, str, tuple[str, ...]], ...]
    verdict: str
    comment: str | None
    counters: tuple[int, int] | None


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] == '"':
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token


def _value(option: str, value: str) -> str:
    if option in ADDRESSES:
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            return value
    if option == "-p":
        return PROTOCOL_NUMBERS.get(value.lower(), value)
    if option in STATES:
        return ",".join(sorted(value.split(",")))
    if option in RATES and "/" in value:
        number, _, unit = value.partition("/")
        return f"{number}/{UNITS.get(unit[:1], unit)}"
    return value


def parse_rule(line: str) -> SavedRule | None:
    """The rule of an ``iptables-save [-c]`` or ``iptables-restore`` line, or None when
    the line is no ``-A`` rule."""
    counters = None
    found = COUNTERS.match(line)
    if found is not None:
        counters = (int(found.group(1)), int(found.group(2)))
        line = line[found.end() :]
    tokens = TOKEN.findall(line)  # quoted: a value, even one that starts with "-"
    if len(tokens) < 2 or tokens[0] != "-A":
        return None
    options: list[tuple[bool, str, tuple[str, ...]]] = []
    negated, i = False, 2
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token == "!":
            negated = True
            continue
        values = []
        while i < len(tokens) and tokens[i] != "!" and not tokens[i].startswith("-"):
            values.append(_value(token, _unquote(tokens[i])))
            i += 1
        options.append((negated, _unquote(token), tuple(values)))
        negated = False
    verdict = next((" ".join(v) for _, o, v in options if o in VERDICT_OPTIONS), "")
    comment = next((v[0] for _, o, v in options if o == "--comment" and len(v) == 1), None)
    key = tuple(sorted(o for o in options if o[1] not in TUNING))
    return SavedRule(_unquote(tokens[1]), key, verdict, comment, counters)


def parse_rules(text: str) -> list[SavedRule]:
    return [rule for line in text.splitlines() if (rule := parse_rule(line)) is not None]


def window(rendered: Sequence[Hashable], loaded: Sequence[Hashable]) -> int | None:
    """Where *rendered* is in *loaded* as one unbroken run, when it is there exactly once;
    else None. Linear: each distinct rendered item is one character, anything else another,
    and `str.find` looks for the run."""
    if not rendered or len(set(rendered)) >= 0x10FFFF:
        return None
    codes: dict[Hashable, str] = {}
    for item in rendered:
        codes.setdefault(item, chr(len(codes) + 1))
    needle = "".join(codes[item] for item in rendered)
    haystack = "".join(codes.get(item, "\0") for item in loaded)
    at = haystack.find(needle)
    if at < 0 or haystack.find(needle, at + 1) >= 0:
        return None
    return at


@dataclass
class Owned:
    """The loaded rules found to be fwgen's, the chains that are not what fwgen rendered,
    and how many rules elsewhere carry the comment of one of fwgen's."""

    rules: list[SavedRule]
    differing: list[str]
    foreign: int


def owned_rules(
    rendered: list[SavedRule], loaded: list[SavedRule], verdicts: tuple[str, ...]
) -> Owned:
    """Which of *loaded* (one family's ``iptables-save -c``) are the *rendered* rules; of
    the others, those with one of *verdicts* are counted as foreign."""
    chains: dict[str, list[SavedRule]] = {}
    for rule in rendered:
        chains.setdefault(rule.chain, []).append(rule)
    labels = {r.comment for r in rendered if r.comment is not None}
    by_chain: dict[str, list[SavedRule]] = {}
    for rule in loaded:
        by_chain.setdefault(rule.chain, []).append(rule)
    out = Owned([], [], 0)
    ours: set[int] = set()
    for chain, rules in chains.items():
        if not any(r.verdict in verdicts for r in rules):
            continue  # nothing of it would be counted (a chain of drops)
        there = by_chain.get(chain, [])
        at = window([(r.key, r.verdict) for r in rules], [(r.key, r.verdict) for r in there])
        if at is None:
            out.differing.append(chain)
            continue
        out.rules += there[at : at + len(rules)]
        ours.update(id(r) for r in there[at : at + len(rules)])
    out.foreign = sum(
        1
        for r in loaded
        if id(r) not in ours
        and r.comment in labels
        and r.verdict in verdicts
        and r.chain not in out.differing
    )
    return out
