"""Rate limits on iptables and ufw: per-source hashlimit buckets that a flood cannot fill.

xt_hashlimit drops the packet (a "hotdrop": no later rule sees it) when its table is
full and a new source arrives, so a flood from more sources than the table holds
would shut a limited rule for everyone. So no hashlimit table here is ever asked to
grow past its size:

- a *tracker*, an ipset of at most TRACKER_MAX sources (each kept as long as the
  bucket), takes each new source (``-j SET --add-set ... --exist``; when it is full,
  nothing is added and the packet goes on);
- a source in the tracker is limited by its own bucket (room for twice the tracker,
  as buckets outlive their tracker entry by up to a second);
- a source the full tracker could not take is limited by its /16's bucket (at most
  65,536 of them), with the rule's rate and burst.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from fwgen.policy.ir import Family, Policy, Rule
from fwgen.profile.addresses import PREFIX_BITS
from fwgen.targets.text import identifier

# A bucket and its tracker entry are kept as long as each other, at most what both can
# say: ipset's timeout (2**31 milliseconds, in seconds: 24 days; hashlimit's is 49).
MAX_EXPIRE_S = 2_147_483
TRACKER_MAX = 65536
BUCKETS_MAX = 2 * TRACKER_MAX
OVERFLOW_PREFIX = 16
IPSET_MAX_NAME = 31  # ipset's IPSET_MAXNAMELEN, less the terminating NUL


@dataclass(frozen=True)
class Meter:
    """A limited rule's buckets (hashlimit names, at most 15 characters) and tracker.

    The kernel keeps a bucket or a set by name, settings and all, so each name holds a
    hash of the settings: a changed limit gets new names."""

    tracked: str
    tracked_log: str
    overflow: str
    overflow_log: str
    tracker: str  # ipset base name, completed by -v4 or -v6

    def tracker_of(self, family: Family) -> str:
        return self.tracker + ("-v4" if family == "ipv4" else "-v6")


def _expire_seconds(rule: Rule) -> int:
    assert rule.limit is not None
    return min(rule.limit.refill_seconds(), MAX_EXPIRE_S)


def hashlimit_settings(rule: Rule, family: Family, policy: Policy, overflow: bool = False) -> str:
    """Per source (or destination) address, or prefix (`Policy.limit_prefix`), or in the
    overflow its /16; a bucket is forgotten only once it is full again (xt_hashlimit's
    default is 10 seconds)."""
    assert rule.limit is not None
    way = "src" if rule.direction == "in" else "dst"
    prefix = policy.limit_prefix(family)
    if overflow:
        prefix = min(prefix, OVERFLOW_PREFIX)
    mask = f" --hashlimit-{way}mask {prefix}" if prefix < PREFIX_BITS[family] else ""
    return (
        f"--hashlimit-upto {rule.limit.rate}/{rule.limit.unit}"
        f" --hashlimit-burst {rule.limit.burst} --hashlimit-mode {way}ip{mask}"
        f" --hashlimit-htable-max {BUCKETS_MAX}"
        f" --hashlimit-htable-expire {_expire_seconds(rule) * 1000}"
    )


def tracker_set(rule: Rule, family: Family, policy: Policy, name: str) -> str:
    """The ``create`` line of a rule's tracker: sources (per prefix) for as long as a bucket."""
    prefix = policy.limit_prefix(family)
    netmask = f" netmask {prefix}" if prefix < PREFIX_BITS[family] else ""
    return (
        f"create {name} hash:ip family {'inet' if family == 'ipv4' else 'inet6'}"
        f" hashsize 1024 maxelem {TRACKER_MAX} timeout {_expire_seconds(rule)}{netmask}"
    )


def expiry_warnings(policy: Policy) -> list[str]:
    """Limits whose idle sources would need longer than xt_hashlimit can keep a bucket."""
    return [
        f"{rule.name} ({rule.origin}): limit {rule.limit}: an idle source earns its burst "
        f"back in {rule.limit.refill_seconds() // 86400} days, but xt_hashlimit and ipset forget "
        f"a source after {MAX_EXPIRE_S // 86400} days, and it starts again with a whole burst"
        for rule in policy.rules
        if rule.limit is not None and rule.limit.refill_seconds() > MAX_EXPIRE_S
    ]


def meters(policy: Policy) -> dict[int, Meter]:
    """The meter of each limited rule (by id), every name unique."""
    taken: set[str] = set()
    out = {}
    for rule in policy.rules:
        if rule.limit is not None:
            settings = " ".join(
                hashlimit_settings(rule, f, policy, overflow) + tracker_set(rule, f, policy, "")
                for f in ("ipv4", "ipv6")
                for overflow in (False, True)
            )
            digest = hashlib.sha256(settings.encode()).hexdigest()[:4]
            kinds = ("fw", "fwl", "fwo", "fwol")
            tracked, tracked_log, overflow, overflow_log = (
                identifier(f"{kind}{digest}_{rule.name}", taken, 15) for kind in kinds
            )
            tracker = identifier(f"fwt{digest}_{rule.name}", taken, IPSET_MAX_NAME - 3)
            out[id(rule)] = Meter(tracked, tracked_log, overflow, overflow_log, tracker)
    return out


def trackers(policy: Policy) -> list[tuple[Family, str, str]]:
    """Every limited rule's trackers: family, name and ``create`` line (``ipset restore``)."""
    found = meters(policy)
    out = []
    for rule in policy.rules:
        for family in rule.families if rule.limit is not None else ():
            name = found[id(rule)].tracker_of(family)
            out.append((family, name, tracker_set(rule, family, policy, name)))
    return out


def limited_lines(
    rule: Rule,
    family: Family,
    policy: Policy,
    meter: Meter,
    match: str,
    comment: str,
    log: str,
    verdict: str,
) -> list[str]:
    """A limited rule's lines for one *match* (``-A CHAIN ...``): the tracker takes the
    source, then its own bucket or its /16's decides. A *log* target, if any, comes
    before each verdict with a bucket of its own: it sees the same packets, so the LOG
    and the verdict agree on which connections are within the limit."""
    # TCP and UDP count new connections; ICMP counts messages (see iptables.prologue)
    new = " -m conntrack --ctstate NEW" if rule.proto not in ("icmp", "icmpv6") else ""
    way = "src" if rule.direction == "in" else "dst"
    tracker = meter.tracker_of(family)
    out = [f"{match}{new}{comment} -j SET --add-set {tracker} {way} --exist"]
    for test, overflow, names in (
        ("", False, (meter.tracked_log, meter.tracked)),
        ("! ", True, (meter.overflow_log, meter.overflow)),
    ):
        settings = hashlimit_settings(rule, family, policy, overflow)
        for name, target in zip(names, (log, verdict), strict=True):
            if target:
                out.append(
                    f"{match}{new} -m set {test}--match-set {tracker} {way} -m hashlimit"
                    f" {settings} --hashlimit-name {name}{comment} {target}"
                )
    return out
