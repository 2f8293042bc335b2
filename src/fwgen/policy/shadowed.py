"""What a shadow recorded on a live host: read by `fwgen.host.shadow`, reported by
`fwgen.review.shadowreport`. Plain data, so neither needs the other."""

from __future__ import annotations

from dataclasses import dataclass, field

from fwgen.policy.ir import Direction, Family


@dataclass(frozen=True)
class Sighting:
    """New connections the profile would have dropped, from one source prefix (outbound:
    to one destination prefix) to one protocol and port (0: a protocol without ports)."""

    direction: Direction
    family: Family
    network: str  # "198.51.100.7/32"
    proto: str  # "tcp", "udp", "icmp", "icmpv6", "sctp", ... or "proto 47"
    port: int
    packets: int
    bytes: int
    first_seen: float | None = None  # seconds since the epoch, when the kernel kept it
    last_seen: float | None = None


@dataclass
class Recorded:
    """Everything read from one shadow."""

    profile: str
    prefix_v4: int
    prefix_v6: int
    size: int
    loaded_at: float | None
    sightings: list[Sighting] = field(default_factory=list)
    # (direction, family) → new connections not recorded because the set was full
    unrecorded: dict[tuple[str, str], int] = field(default_factory=dict)
    # what the kernel gave that is not what a shadow holds, said once each
    ignored: list[str] = field(default_factory=list)


@dataclass
class Counted:
    """The counters of a live ruleset's accept rules, by label (`fwgen.policy.owned.rule_label`)."""

    target: str
    loaded_at: float | None  # when the ruleset was loaded, when the kernel says
    by_label: dict[str, tuple[int, int]] = field(default_factory=dict)  # (packets, bytes)
    ignored: list[str] = field(default_factory=list)
