"""The shadow on a live host (nftables): load it beside the live firewall, read what it
recorded, remove exactly it.

The shadow is the table ``inet fwgen_shadow`` whose first rule's comment starts with the
mark (`fwgen.policy.owned.SHADOW_MARK`). A table of that name without the mark belongs to
someone else: it is never replaced, read or removed. What the kernel returns is read as
untrusted: every element is checked (its address, protocol, port, counter and timeout),
and what is not what a shadow holds is left out and said once.
"""

from __future__ import annotations

import ipaddress
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from fwgen.errors import FwgenError
from fwgen.host import shadowipt
from fwgen.host.backends import run
from fwgen.host.shadowmark import (
    COMMENT,
    PROTOCOLS,
    NotOurs,
    Table,
    foreign,
    loaded_at,
    nft_objects,
    number,
)
from fwgen.policy.ir import Direction, Family
from fwgen.policy.owned import SHADOW_TABLE
from fwgen.policy.shadowed import Recorded, Sighting

MAX_OUTPUT = 256 << 20  # bytes of `nft -j` output read at most (a set of 2^20 keys is ~150 MB)
SET = re.compile(r"(in|out)_(last|first)_(v4|v6)")
FULL = re.compile(r"(in|out)_full_(v4|v6)")
FAMILIES: dict[str, Family] = {"v4": "ipv4", "v6": "ipv6"}


def parse(text: str, now: float) -> Table | None:
    """The shadow in `nft -j list table inet fwgen_shadow` output, or None when the output
    holds no such table. NotOurs when the table lacks the mark."""
    objects = nft_objects(text)
    tables = [
        o["table"]
        for o in objects
        if isinstance(o.get("table"), dict) and o["table"].get("name") == SHADOW_TABLE
    ]
    if not tables:
        return None
    table = tables[0]
    handle = number(table.get("handle"))
    marks = [
        COMMENT.fullmatch(_text(o["rule"].get("comment")))
        for o in objects
        if isinstance(o.get("rule"), dict) and o["rule"].get("table") == SHADOW_TABLE
    ]
    found = marks[0] if marks else None
    if found is None or handle is None:
        raise foreign(
            f"table inet {SHADOW_TABLE}",
            "its first rule does not carry fwgen's mark",
            f"nft delete table inet {SHADOW_TABLE}",
        )
    prefix_v4, prefix_v6, size = (int(found.group(i)) for i in (1, 2, 3))
    if not (prefix_v4 <= 32 and prefix_v6 <= 128):
        raise foreign(
            f"table inet {SHADOW_TABLE}",
            "its mark names impossible prefixes",
            f"nft delete table inet {SHADOW_TABLE}",
        )
    recorded = Recorded(found.group(4), prefix_v4, prefix_v6, size, None)
    sets = {
        o["set"]["name"]: o["set"]
        for o in objects
        if isinstance(o.get("set"), dict) and isinstance(o["set"].get("name"), str)
    }
    recorded.loaded_at = loaded_at(sets.get("loaded"), now)
    for o in objects:
        counter = o.get("counter")
        full = FULL.fullmatch(_text(counter.get("name"))) if isinstance(counter, dict) else None
        if isinstance(counter, dict) and full is not None:
            direction, tail = full.groups()
            packets = number(counter.get("packets"))
            if packets is None:
                recorded.ignored.append(f"counter {full.group(0)}: no packet count")
            elif packets:
                recorded.unrecorded[(direction, FAMILIES[tail])] = packets
    for name, found_set in sorted(sets.items()):
        what = SET.fullmatch(name)
        if what is None or what.group(2) != "last":
            continue
        first = _first_seen(sets.get(f"{what.group(1)}_first_{what.group(3)}"), now)
        _sightings(recorded, found_set, what.group(1), FAMILIES[what.group(3)], first, now)  # type: ignore[arg-type]
    return Table(handle, recorded)


def _text(value: Any) -> str:
    """*value* when it is a string, else "": what the kernel's JSON holds is never turned
    into text with str() (a list nested thousands deep would recurse that deep)."""
    return value if isinstance(value, str) else ""


def _elements(found: dict[str, Any]) -> list[dict[str, Any]]:
    """The set's elements that have the form ``{"elem": {"val": ..., ...}}``."""
    out = []
    for elem in found.get("elem") or []:
        if isinstance(elem, dict) and isinstance(elem.get("elem"), dict):
            out.append(elem["elem"])
    return out


def _key(value: Any, family: Family, prefix: int) -> tuple[str, str, int] | None:
    """(network, protocol, port) from an element's value, or None if it is not one."""
    if not (
        isinstance(value, dict)
        and isinstance(value.get("concat"), list)
        and len(value["concat"]) == 3
    ):
        return None
    address, proto, port = value["concat"]
    proto_name = PROTOCOLS.get(proto) if isinstance(proto, (str, int)) else None
    if proto_name is None and number(proto, 0, 256) is not None:
        proto_name = f"proto {proto}"
    if not isinstance(address, str) or proto_name is None or number(port, 0, 65536) is None:
        return None
    try:
        network = ipaddress.ip_network(f"{address}/{prefix}", strict=True)
    except ValueError:
        return None
    if network.version != (4 if family == "ipv4" else 6):
        return None
    return str(network), proto_name, port


def _first_seen(found: dict[str, Any] | None, now: float) -> dict[tuple[str, str, int], float]:
    out: dict[tuple[str, str, int], float] = {}
    if found is None:
        return out
    timeout = number(found.get("timeout"), 1)
    family: Family = "ipv6" if _text(found.get("name")).endswith("v6") else "ipv4"
    for elem in _elements(found):
        key = _key(elem.get("val"), family, 128 if family == "ipv6" else 32)
        expires = number(elem.get("expires"))
        if key is not None and timeout is not None and expires is not None and expires <= timeout:
            out[key] = now - (timeout - expires)
    return out


def _sightings(
    recorded: Recorded,
    found: dict[str, Any],
    direction: Direction,
    family: Family,
    first: dict[tuple[str, str, int], float],
    now: float,
) -> None:
    prefix = recorded.prefix_v4 if family == "ipv4" else recorded.prefix_v6
    timeout = number(found.get("timeout"), 1)
    bad = 0
    for elem in _elements(found):
        key = _key(elem.get("val"), family, prefix)
        counter = elem.get("counter")
        packets = number(counter.get("packets")) if isinstance(counter, dict) else None
        size = number(counter.get("bytes")) if isinstance(counter, dict) else None
        if key is None or packets is None or size is None:
            bad += 1
            continue
        expires = number(elem.get("expires"))
        last = (
            now - (timeout - expires)
            if timeout and expires is not None and expires <= timeout
            else None
        )
        exact = (key[0].split("/")[0] + ("/128" if family == "ipv6" else "/32"), *key[1:])
        recorded.sightings.append(
            Sighting(
                direction, family, key[0], key[1], key[2], packets, size, first.get(exact), last
            )
        )
    if bad:
        recorded.ignored.append(
            f"set {found.get('name')}: {bad} element{'s' if bad != 1 else ''} with unexpected "
            "contents left out"
        )


def read(target: str) -> Table | None:
    """The shadow loaded here, or None (NotOurs for a table of its name that is not)."""
    if target == "iptables":
        return shadowipt.read()
    if SHADOW_TABLE not in run("nft", "list", "tables", "inet").split():
        return None
    text = run("nft", "-j", "list", "table", "inet", SHADOW_TABLE)
    if len(text) > MAX_OUTPUT:
        raise FwgenError(
            f"table inet {SHADOW_TABLE} is larger than {MAX_OUTPUT >> 20} MB; not read"
        )
    return parse(text, time.time())


def parse_file(target: str, text: str, now: float) -> Table | None:
    """The shadow in a saved `nft -j list table inet fwgen_shadow` (`fwgen shadow report --input`)."""
    if target == "iptables":
        raise FwgenError(
            "--input reads nftables' JSON only; on iptables, run the report on the host"
        )
    return parse(text, now)


def start(target: str, files: dict[str, str]) -> bool:
    """Load the shadow *files* (replacing an earlier shadow): whether one was replaced.
    Checked with ``nft -c`` first; a foreign table of the name is refused."""
    if target == "iptables":
        return shadowipt.start(files)
    replaced = read(target) is not None
    with tempfile.TemporaryDirectory(prefix="fwgen-shadow-") as folder:
        path = Path(folder, "shadow.nft")
        path.write_text(files["fwgen-shadow.nft"], encoding="utf-8")
        run("nft", "-c", "-f", str(path))
        run("nft", "-f", str(path))
    return replaced


def stop(target: str) -> Recorded | None:
    """Remove the shadow, by the handle of the table just checked: what it had recorded,
    or None when there was none."""
    if target == "iptables":
        return shadowipt.stop()
    table = read(target)
    if table is None:
        return None
    run("nft", "delete", "table", "inet", "handle", str(table.handle))
    return table.recorded


__all__ = ["NotOurs", "Table"]  # where callers and tests find them
