"""The names fwgen owns on a host beside other programs' rules: the targets write them and
`fwgen apply` recognises them, so both read them here."""

from __future__ import annotations

CONTAINERS = "FWGEN-CONTAINERS"  # new connections from outside into the engine's networks
ROUTED = "FWGEN-ROUTED"  # those of them that go out on a bridge of the engine
CONTAINER_CHAINS = (CONTAINERS, ROUTED)

# The shadow (`fwgen shadow`): nftables' table of its own, and the mark its comment starts
# with, without which a table of that name is someone else's.
SHADOW_TABLE = "fwgen_shadow"
SHADOW_MARK = "fwgen shadow v1"
