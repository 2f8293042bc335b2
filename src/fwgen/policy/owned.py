"""The names fwgen owns on a host beside other programs' rules: the targets write them and
`fwgen apply` recognises them, so both read them here."""

from __future__ import annotations

CONTAINERS = "FWGEN-CONTAINERS"  # new connections from outside into the engine's networks
ROUTED = "FWGEN-ROUTED"  # those of them that go out on a bridge of the engine
CONTAINER_CHAINS = (CONTAINERS, ROUTED)
