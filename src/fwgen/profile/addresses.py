"""Address lists at scale: parse, deduplicate and collapse networks as integer intervals.

``ipaddress`` objects are exact but slow in bulk; a threat feed of 100,000 entries
is parsed with ``inet_pton`` into (first, last) integers, sorted, merged and
written back as the fewest CIDR blocks.
"""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

from fwgen.errors import ProfileError, printable
from fwgen.read.yamlsource import lines, read_text

BITS = {4: 32, 6: 128}
PREFIX_BITS: dict[str, int] = {"ipv4": 32, "ipv6": 128}  # by address family
FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}
Interval = tuple[int, int, int]  # version, first, last
MAX_LIST_BYTES = 32 * 1024 * 1024
MAX_ENTRIES = 1_000_000  # addresses from list files, over all the lists of one profile


def parse_network(text: str) -> Interval:
    """``192.0.2.7``, ``10.0.0.0/8`` or ``2001:db8::/32`` → interval.

    Strict, because a typo here widens a firewall rule: host bits set
    (``203.0.113.77/24``), netmask notation, zone ids (``fe80::1%eth0``),
    and IPv4-mapped IPv6 addresses are errors that say what to write instead.
    """
    text = text.strip()
    if "," in text:  # `from: 10.0.0.0/8, 192.168.1.0/24` is one YAML string
        listed = _short(", ".join(p.strip() for p in text.split(",") if p.strip()))
        raise ValueError(
            f"'{_short(text)}' holds several addresses in one string; write a YAML list: [{listed}]"
        )
    address, slash, prefix = text.partition("/")
    version = 6 if ":" in address else 4
    bits = BITS[version]
    if "%" in address:
        raise ValueError(
            f"'{_short(text)}': a zone id (%...) names an interface, which a firewall address "
            "cannot; write the address without it"
        )
    try:
        value = int.from_bytes(socket.inet_pton(FAMILY[version], address), "big")
    except (OSError, ValueError):
        raise ValueError(f"invalid address or CIDR '{_short(text)}'") from None
    if version == 6 and value >> 32 == 0xFFFF:
        raise ValueError(
            f"'{_short(text)}': IPv4-mapped IPv6 addresses never appear in IPv6 packets, so "
            "a rule would match nothing; write the IPv4 address instead"
        )
    if not slash:
        return version, value, value
    if "." in prefix or (":" in prefix):
        raise ValueError(f"'{_short(text)}': netmask notation is not supported; write /N")
    if not (prefix.isascii() and prefix.isdigit()) or len(prefix) > 3 or int(prefix) > bits:
        raise ValueError(f"invalid address or CIDR '{_short(text)}'; the prefix is 0-{bits}")
    host = (1 << (bits - int(prefix))) - 1
    if value & host:
        first = network_text((version, value & ~host, (value & ~host) | host))
        single = network_text((version, value, value))
        raise ValueError(
            f"'{_short(text)}': host bits set; did you mean {first} or {single}/{bits}?"
        )
    return version, value, value | host


def _short(text: str) -> str:
    """*text* fit to quote in a one-line message."""
    text = printable(text)
    return text if len(text) <= 60 else text[:57] + "..."


def network_text(interval: Interval) -> str:
    """One CIDR block (or single address) as text, as the rulesets write it."""
    v4, v6 = _collapse([interval])
    (text,) = v4 or v6
    return text


@contextlib.contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Pause the cycle collector while building tuples of ints and strings, which
    cannot form cycles: its passes added about a tenth to 100,000 entries."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def collapse(intervals: Iterable[Interval]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Sorted, deduplicated, merged CIDR blocks per family: (ipv4, ipv6)."""
    with no_cycle_collection():
        return _collapse(intervals)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, with overlapping and adjacent intervals of a family joined."""
    with no_cycle_collection():
        return _merge(intervals)


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    runs: list[list[int]] = []
    for version, first, last in sorted(intervals):
        if runs and runs[-1][0] == version and first <= runs[-1][2] + 1:
            runs[-1][2] = max(runs[-1][2], last)
        else:
            runs.append([version, first, last])
    return [(v, f, la) for v, f, la in runs]


def _collapse(intervals: Iterable[Interval]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    out: dict[int, list[str]] = {4: [], 6: []}
    merged: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
    for version, first, last in _merge(intervals):
        merged[version].append((first, last))
    for version, runs in merged.items():
        bits, family = BITS[version], FAMILY[version]
        width = bits // 8
        texts = out[version]
        for first, last in runs:
            if first == last:  # a single address: the common case in large feeds
                text = socket.inet_ntop(family, first.to_bytes(width, "big"))
                texts.append(
                    str(ipaddress.IPv6Address(first)) if "." in text and version == 6 else text
                )
                continue
            while first <= last:
                size = first & -first or 1 << bits
                while size > last - first + 1:
                    size >>= 1
                text = socket.inet_ntop(family, first.to_bytes(width, "big"))
                if version == 6 and "." in text:  # ::ffff:a.b.c.d: write it as ipaddress does
                    text = str(ipaddress.IPv6Address(first))
                prefix = bits - size.bit_length() + 1
                texts.append(text if prefix == bits else f"{text}/{prefix}")
                first += size
    return tuple(out[4]), tuple(out[6])


def read_list(path: Path, shown: str, budget: int = MAX_ENTRIES) -> list[Interval]:
    """An address-list file: one address or CIDR per line, ``#`` comments; at most
    *budget* entries (the rest of the Policy's `MAX_ENTRIES`), parsed line by line so
    an oversized list stops at its first entry too many."""
    text = read_text(path, shown, what="address list", limit=MAX_LIST_BYTES)
    out: list[Interval] = []
    with no_cycle_collection():
        for number, line in lines(text):
            entry = line.partition("#")[0].strip()
            if not entry:
                continue
            if len(out) == budget:
                raise ProfileError(
                    f"more than {MAX_ENTRIES:,} addresses in this profile's lists; fwgen stops "
                    "there to keep rendering and loading fast: merge the list into wider networks",
                    path=shown,
                    line=number,
                )
            if "," in entry:
                raise ProfileError(
                    "several addresses on one line; write one address or CIDR per line",
                    path=shown,
                    line=number,
                )
            try:
                out.append(parse_network(entry))
            except ValueError as exc:
                raise ProfileError(str(exc), path=shown, line=number) from None
    return out
