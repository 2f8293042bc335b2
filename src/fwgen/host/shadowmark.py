"""What makes a shadow fwgen's: the mark its first rules carry, and the refusal to touch
anything named like it that lacks the mark (nftables and iptables alike)."""

from __future__ import annotations

import re
from dataclasses import dataclass

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
