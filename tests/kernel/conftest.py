from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.kernel.lab import Lab, missing_tools


def require(*tools: str) -> None:
    need(missing_tools(*tools))


def need(reason: str) -> None:
    """Fail (FWGEN_REQUIRE_KERNEL set) or skip when *reason* says what is missing."""
    if reason:
        if os.environ.get("FWGEN_REQUIRE_KERNEL"):
            pytest.fail(f"{reason} (FWGEN_REQUIRE_KERNEL is set)")
        pytest.skip(reason)


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A server namespace with two clients: `trusted` (link 1) and `outside` (link 2)."""
    require("nft", "iptables-restore", "ufw", "ipset")
    with Lab() as lab:
        lab.add_client("trusted")
        lab.add_client("outside")
        yield lab
