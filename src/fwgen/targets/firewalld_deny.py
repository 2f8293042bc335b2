"""firewalld: how it says no. Deny and reject rules, the default's rejects
(``options.refuse``) and the connection caps it cannot count.

Deny and reject rules are rich rules at negative priorities, which firewalld evaluates
in the zone's (or policy's) ``_pre`` chain, before its ports and every accepting rich
rule (priority 0): a listed source is refused whatever the allows say. A large list is
an ipset of fwgen's own (`fwgen.targets.firewalld`), one rich rule for all of it.

A reject answers TCP with an RST, UDP with ICMP port unreachable and anything else with
ICMP administratively prohibited, as on nftables and iptables. Each answering rich rule
carries firewalld's action limit, ``REJECT_LIMIT`` (firewalld 1.3 has no burst: the
kernel's default of 5 packets), one bucket per rich rule; beyond it the packet goes on to
the next rich rule, so each answer is followed by a drop of the same packets (a TCP reset
by a drop of TCP, so an RST over the budget is never answered with ICMP instead). The
kernel answers no broadcast or multicast packet.

``refuse: reject`` is not the zone's target ``%%REJECT%%``: that answers every refused
packet without any limit (a reflector for forged sources) and cannot be limited to
``refuse_from``. The zone keeps its target DROP, and rich rules at ``REFUSE_PRIORITY``
(the ``_post`` chain, after every allow, before the last rich rule that logs drops)
answer, within the limit, what nothing admitted: TCP with an RST, UDP with port
unreachable, the rest administratively prohibited. What exceeds it falls to DROP.
"""

from __future__ import annotations

from collections.abc import Callable

from fwgen.policy.denies import deny_title
from fwgen.policy.ir import Family, Rule
from fwgen.targets.firewalld_xml import Peer, attrs, elements, log_prefix, rich_rule
from fwgen.targets.refusal import IPT_REJECT, REJECT_RATE, answers

REJECT_LIMIT = f"{REJECT_RATE}/s"
LOG_LIMIT = "5/s"  # a deny logs every packet it refuses: as few as the drop log
REFUSE_PRIORITY = 32000  # after every allow (0), before the drop log (32767)
TCP = f"<protocol{attrs(value='tcp')}/>"
UDP = f"<protocol{attrs(value='udp')}/>"
# The default's answers: (the protocol matched, how), as nftables' refusals.
REFUSALS = ((TCP, "tcp-reset"), (UDP, "port-unreachable"), ("", "admin-prohibited"))

# One step of a refusal: (the element matched, "" for what the rule matches; the XML of
# the action, or of a log alone).
Step = tuple[str, str]


def verdict(how: str, family: Family) -> str:
    """The XML of an action: ``<drop/>``, or a reject of one type within `REJECT_LIMIT`
    (firewalld names the reject types as iptables does)."""
    if how == "drop":
        return "<drop/>"
    limit = f"<limit{attrs(value=REJECT_LIMIT)}/>"
    return f"<reject{attrs(type=IPT_REJECT[family][how])}>{limit}</reject>"


def _steps(proto: str, action: str, family: Family) -> list[Step]:
    """The rich rules a deny or reject rule becomes, in order (`refusal.answers`): an
    answer for TCP alone is followed at once by a drop of TCP."""
    out: list[Step] = []
    for answer in answers(proto, action):
        out.append((TCP if answer.tcp else "", verdict(answer.how, family)))
        if answer.tcp:
            out.append((TCP, verdict("drop", family)))
    return out


def deny_lines(rule: Rule, peers: Callable[[Rule, Family], list[Peer]]) -> list[str]:
    """A deny or reject rule as rich rules of negative priority, the last at -1; logged
    first (a rich rule of its own, `LOG_LIMIT`) when the rule asks for it."""
    found = elements(rule)[0] if rule.proto != "all" else [""]
    out: list[str] = []
    for family in rule.families:
        steps = _steps(rule.proto, rule.action, family)
        if rule.log:
            limit = f"<limit{attrs(value=LOG_LIMIT)}/>"
            steps.insert(
                0, ("", f"<log{attrs(prefix=log_prefix(rule), level='info')}>{limit}</log>")
            )
        for priority, (match, action) in enumerate(steps, -len(steps)):
            for peer in peers(rule, family):
                for local in rule.local_of(family) or [""]:
                    for element in [match] if match else found:
                        out += rich_rule(family, peer, local, element, rule, action, priority)
    return out


def refusal_lines(
    families: tuple[Family, ...], peers: Callable[[Family], list[Peer]], log: str
) -> list[str]:
    """The default's rejects (`REFUSALS`): TCP and UDP answered, then dropped (logged with
    *log*, the drop log's element, when drops are logged), then the rest answered; what
    exceeds the limit falls to the zone's DROP."""
    out: list[str] = []
    for family in families:
        for peer in peers(family):
            steps = [(REFUSE_PRIORITY, m, "", verdict(how, family)) for m, how in REFUSALS if m]
            steps += [(REFUSE_PRIORITY + 1, m, log, "<drop/>") for m, _ in REFUSALS if m]
            steps.append((REFUSE_PRIORITY + 2, "", "", verdict(REFUSALS[-1][1], family)))
            for priority, match, logged, action in steps:
                inner = [i for i in (peer.element("source"), match, logged, action) if i]
                out += [f"<rule{attrs(family=family, priority=priority)}>"]
                out += [*(f"  {i}" for i in inner), "</rule>"]
    return out


def deny_heading(rule: Rule) -> str:
    return f"{deny_title(rule)} ({rule.origin})"


def connlimit_warning(rule: Rule) -> str:
    return (
        f"{rule.name} ({rule.origin}): not capped: firewalld cannot count connections per "
        f"source; connlimit {rule.connlimit} is not applied, each source may open any number "
        "of connections"
    )
