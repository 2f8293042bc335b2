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

from fwgen.errors import ProfileError
from fwgen.yamlsource import read_text

BITS = {4: 32, 6: 128}
FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}
Interval = tuple[int, int, int]  # version, first, last
MAX_LIST_BYTES = 64 * 1024 * 1024


def parse_network(text: str) -> Interval:
    """``192.0.2.7``, ``10.1.2.3/8`` (host bits cleared) or ``2001:db8::/32`` → interval."""
    address, slash, prefix = text.strip().partition("/")
    version = 6 if ":" in address else 4
    bits = BITS[version]
    try:
        value = int.from_bytes(socket.inet_pton(FAMILY[version], address), "big")
    except (OSError, ValueError):
        raise ValueError(f"invalid address or CIDR '{text.strip()}'") from None
    if slash:
        if not prefix.isdigit() or int(prefix) > bits:
            raise ValueError(f"invalid address or CIDR '{text.strip()}'")
        host = (1 << (bits - int(prefix))) - 1
    else:
        host = 0
    first = value & ~host
    return version, first, first | host


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


def _collapse(intervals: Iterable[Interval]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    out: dict[int, list[str]] = {4: [], 6: []}
    merged: dict[int, list[list[int]]] = {4: [], 6: []}
    for version, first, last in sorted(intervals):
        runs = merged[version]
        if runs and first <= runs[-1][1] + 1:
            runs[-1][1] = max(runs[-1][1], last)
        else:
            runs.append([first, last])
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


def read_list(path: Path, shown: str) -> list[Interval]:
    """An address-list file: one address or CIDR per line, ``#`` comments."""
    text = read_text(path, shown, what="address list", limit=MAX_LIST_BYTES)
    out = []
    with no_cycle_collection():
        for number, line in enumerate(text.splitlines(), start=1):
            entry = line.partition("#")[0].strip()
            if entry:
                try:
                    out.append(parse_network(entry))
                except ValueError as exc:
                    raise ProfileError(str(exc), path=shown, line=number) from None
    return out
