"""What makes a shadow fwgen's: the mark its first rules carry, and the refusal to touch
anything named like it that lacks the mark (nftables and iptables alike)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from fwgen.errors import FwgenError
from fwgen.policy.owned import SHADOW_MARK
from fwgen.policy.shadowed import Recorded

COMMENT = re.compile(
    rf"^{re.escape(SHADOW_MARK)} prefix-v4=(\d+) prefix-v6=(\d+) size=(\d+) profile=([ -~]*)"
)


class NotOurs(FwgenError):
    """A table named like the shadow's that fwgen did not make."""


@dataclass
class Table:
    handle: int
    recorded: Recorded


def foreign(what: str, reason: str, remove: str) -> NotOurs:
    return NotOurs(
        f"{what} is not a shadow fwgen made ({reason}); fwgen leaves it alone: if no one "
        f"needs it, remove it with `{remove}`"
    )


# Protocol names as nft's JSON and ipset print them, to the names a report uses.
PROTOCOLS: dict[str | int, str] = {
    "tcp": "tcp",
    "udp": "udp",
    "udplite": "udplite",
    "sctp": "sctp",
    "dccp": "dccp",
    "icmp": "icmp",
    "ipv6-icmp": "icmpv6",
    "icmpv6": "icmpv6",
    6: "tcp",
    17: "udp",
    1: "icmp",
    58: "icmpv6",
    132: "sctp",
    136: "udplite",
    33: "dccp",
    "esp": "esp",
    "ah": "ah",
    "gre": "gre",
    50: "esp",
    51: "ah",
    47: "gre",
}


def number(value: Any, low: int = 0, high: int = 1 << 64) -> int | None:
    """*value* when it is an integer in [low, high) (not a boolean); else None."""
    ok = isinstance(value, int) and not isinstance(value, bool) and low <= value < high
    return value if ok else None


def nft_objects(text: str) -> list[dict[str, Any]]:
    """The objects of `nft -j list ...` output, each ``{kind: {...}}``; an error when the
    text is not nftables JSON (nested too deep to read is not nftables JSON either: nft
    nests a few levels)."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        document = None
    items = document.get("nftables") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise FwgenError("`nft -j list table` gave output that is not nftables JSON")
    return [item for item in items if isinstance(item, dict) and len(item) == 1]


def loaded_at(found: dict[str, Any] | None, now: float) -> float | None:
    """When a table was loaded, from its set ``loaded``: the timer of its one element
    started then (``timeout`` less ``expires`` seconds ago)."""
    if not isinstance(found, dict):
        return None
    timeout = number(found.get("timeout"), 1)
    for elem in found.get("elem") or []:
        inner = elem.get("elem") if isinstance(elem, dict) else None
        expires = number(inner.get("expires")) if isinstance(inner, dict) else None
        if timeout is not None and expires is not None and expires <= timeout:
            return now - (timeout - expires)
    return None
