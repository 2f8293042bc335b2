"""Address lists at scale: parse, deduplicate and collapse networks as integer intervals.

``ipaddress`` objects are exact but slow in bulk; a threat feed of 100,000 entries
is parsed with ``inet_pton`` into (first, last) integers, sorted, merged and
written back as the fewest CIDR blocks.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import gc
import ipaddress
import itertools
import operator
import socket
import struct
import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fwgen.errors import ProfileError, printable
from fwgen.read.yamlsource import lines, read_text

BITS = {4: 32, 6: 128}
PREFIX_BITS: dict[str, int] = {"ipv4": 32, "ipv6": 128}  # by address family
FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}
Interval = tuple[int, int, int]  # version, first, last
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
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
    version, first, last = interval
    (text,) = Runs(version, [first], [last]).texts()
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


@dataclass(frozen=True)
class Runs:
    """The addresses of one family as sorted, disjoint, non-adjacent intervals: what
    warnings, findings and reviews compare, so that no address is parsed twice."""

    version: int
    starts: Sequence[int]
    lasts: Sequence[int]

    def __len__(self) -> int:
        return len(self.starts)

    def intervals(self) -> Iterator[Interval]:
        return zip(itertools.repeat(self.version), self.starts, self.lasts)

    def holds(self, first: int, last: int) -> bool:
        """Whether every address from *first* to *last* is in these runs."""
        i = bisect.bisect_right(self.starts, first) - 1
        return i >= 0 and last <= self.lasts[i]

    def within(self, wider: Runs) -> bool:
        """Whether every address here is in *wider* too."""
        return all(wider.holds(f, la) for f, la in zip(self.starts, self.lasts, strict=True))

    def meets(self, other: Runs) -> bool:
        """Whether some address is in both."""
        small, large = sorted((self, other), key=len)
        for first, last in zip(small.starts, small.lasts, strict=True):
            i = bisect.bisect_right(large.starts, last) - 1
            if i >= 0 and large.lasts[i] >= first:
                return True
        return False

    def blocks(self) -> Iterator[tuple[int, int]]:
        """The fewest CIDR blocks that hold these addresses: (first address, prefix length)."""
        bits = BITS[self.version]
        for first, last in zip(self.starts, self.lasts, strict=True):
            while first <= last:
                size = first & -first or 1 << bits
                while size > last - first + 1:
                    size >>= 1
                yield first, bits - size.bit_length() + 1
                first += size

    def networks(self) -> Iterator[tuple[str, IPNetwork]]:
        """Each CIDR block as text and as an ``ipaddress`` network, made from its integers."""
        make = ipaddress.IPv4Network if self.version == 4 else ipaddress.IPv6Network
        for block, text in zip(self.blocks(), _texts(self), strict=True):
            yield text, make(block)

    def texts(self) -> tuple[str, ...]:
        """The fewest CIDR blocks (single addresses without a prefix), in order."""
        with no_cycle_collection():
            return tuple(_texts(self))


def runs(intervals: Iterable[Interval]) -> dict[int, Runs]:
    """Intervals of both families, in any order, as the `Runs` of each: {4: ..., 6: ...}."""
    ordered = sorted(intervals)
    split = bisect.bisect_left(ordered, (6,))
    found: dict[int, tuple[list[int], list[int]]] = {4: ([], []), 6: ([], [])}
    if split and _apart(ordered[:split]):  # a feed of single IPv4 addresses: nothing merges
        singles = list(map(_FIRST, ordered[:split]))
        found[4] = (singles, singles)
        ordered = ordered[split:]
    with no_cycle_collection():
        version, first, last = 0, 0, -2
        for v, f, la in ordered:
            if v == version and f <= last + 1:
                if la > last:
                    last = la
                continue
            if version:
                found[version][0].append(first)
                found[version][1].append(last)
            version, first, last = v, f, la
        if version:
            found[version][0].append(first)
            found[version][1].append(last)
    return {v: Runs(v, starts, lasts) for v, (starts, lasts) in found.items()}


_FIRST = operator.itemgetter(1)
_LAST = operator.itemgetter(2)


def _apart(ordered: list[Interval]) -> bool:
    """Whether sorted intervals are single addresses, none next to another (at C speed)."""
    firsts = list(map(_FIRST, ordered))
    return firsts == list(map(_LAST, ordered)) and all(
        map(operator.lt, map((1).__add__, firsts), itertools.islice(firsts, 1, None))
    )


def collapse(intervals: Iterable[Interval]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Sorted, deduplicated, merged CIDR blocks per family: (ipv4, ipv6)."""
    both = runs(intervals)
    return both[4].texts(), both[6].texts()


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, with overlapping and adjacent intervals of a family joined."""
    both = runs(intervals)
    return [*both[4].intervals(), *both[6].intervals()]


_DOTTED = "%d.%d.%d.%d".__mod__


def _texts(found: Runs) -> Iterator[str]:
    bits, family = BITS[found.version], FAMILY[found.version]
    if found.version == 4 and found.starts == found.lasts:  # single addresses: whole feeds
        packed = array(_V4_CODE, found.starts)
        if sys.byteorder == "little":
            packed.byteswap()
        yield from map(_DOTTED, struct.iter_unpack("4B", packed.tobytes()))
        return
    for first, prefix in found.blocks():
        text = socket.inet_ntop(family, first.to_bytes(bits // 8, "big"))
        if found.version == 6 and "." in text:  # ::ffff:a.b.c.d: write it as ipaddress does
            text = str(ipaddress.IPv6Address(first))
        yield text if prefix == bits else f"{text}/{prefix}"


def read_list(path: Path, shown: str, budget: int = MAX_ENTRIES) -> list[Interval]:
    """An address-list file: one address or CIDR per line, ``#`` comments; at most
    *budget* entries (the rest of the Policy's `MAX_ENTRIES`). Single IPv4 addresses, most
    of any feed, are parsed together; a list that does not parse so is read again line by
    line, which says where the first bad line or the first entry too many is."""
    text = read_text(path, shown, what="address list", limit=MAX_LIST_BYTES)
    with no_cycle_collection():
        found = _parse_all(text, budget)
        return found if found is not None else _parse_lines(text, shown, budget)


_V4_CODE = next(code for code in "IL" if array(code).itemsize == 4)  # a 4-byte unsigned int


def _parse_all(text: str, budget: int) -> list[Interval] | None:
    """Every entry of a list, each parsed once: None when one is bad, or too many."""
    if "," in text:
        return None
    entries = text.split("\n")
    if "#" in text or " " in text or "\t" in text:
        entries = [e.partition("#")[0].strip() for e in entries]
    entries = list(filter(None, entries))
    if len(entries) > budget:
        return None
    single = [e for e in entries if ":" not in e and "/" not in e]
    others = [e for e in entries if ":" in e or "/" in e] if len(single) < len(entries) else []
    try:
        packed = b"".join(map(functools.partial(socket.inet_pton, socket.AF_INET), single))
        found = [parse_network(e) for e in others]
    except (OSError, ValueError):
        return None
    values = array(_V4_CODE)
    values.frombytes(packed)
    if sys.byteorder == "little":
        values.byteswap()
    ordered = sorted(values)  # sorted, so that merging the list later is one pass
    found[:0] = zip(itertools.repeat(4), ordered, ordered)
    return found


def _parse_lines(text: str, shown: str, budget: int) -> list[Interval]:
    out: list[Interval] = []
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
