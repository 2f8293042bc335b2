"""How each firewall says no: deny and reject rules, the default's rejects, and the
connection caps, in the words every Linux target shares.

A reject answers TCP with an RST, UDP with ICMP port unreachable and anything else with
ICMP administratively prohibited, only to unicast packets (never to broadcast or
multicast), and at most `REJECT_RATE` (one budget on nftables, each reject line's own on
iptables and ufw): beyond it, refused connections are dropped in silence, so the host
cannot be made to reflect a flood at a forged source.
"""

from __future__ import annotations

from dataclasses import dataclass

from fwgen.policy.denies import deny_title
from fwgen.policy.ir import Family, Policy, Rule

REJECT_RATE, REJECT_BURST = 20, 40  # answers per second, and at once
REFUSED = "refused: no rule admits it (options.refuse: reject)"


@dataclass(frozen=True)
class Answer:
    """One verdict line of a rule: for TCP only (*tcp*), rate-limited (*limited*), *how*:
    accept, drop, tcp-reset, port-unreachable or admin-prohibited."""

    how: str
    tcp: bool = False
    limited: bool = False


def answers(proto: str, action: str) -> list[Answer]:
    """The verdict lines of a rule of *proto* and *action*, in order."""
    if action == "accept":
        return [Answer("accept")]
    if action == "drop":
        return [Answer("drop")]
    out = []
    if proto in ("tcp", "all"):
        out.append(Answer("tcp-reset", tcp=proto == "all", limited=True))
    if proto == "udp":
        out.append(Answer("port-unreachable", limited=True))
    elif proto != "tcp":
        out.append(Answer("admin-prohibited", limited=True))
    return [*out, Answer("drop")]


# nftables: `reject` in an inet table, ICMP or ICMPv6 by the packet's family.
NFT_VERDICT = {
    "accept": "counter accept",  # every accept counts, for `fwgen hits`
    "drop": "drop",
    "tcp-reset": "reject with tcp reset",
    "port-unreachable": "reject with icmpx port-unreachable",
    "admin-prohibited": "reject with icmpx admin-prohibited",
}
NFT_LIMIT = "refusals"  # the named limit every reject shares


def nft_answer(answer: Answer) -> str:
    parts = ["meta l4proto tcp"] if answer.tcp else []
    if answer.limited:
        parts += ["meta pkttype host", f'limit name "{NFT_LIMIT}"']
    return " ".join([*parts, NFT_VERDICT[answer.how]])


IPT_REJECT = {
    "ipv4": {
        "tcp-reset": "tcp-reset",
        "port-unreachable": "icmp-port-unreachable",
        "admin-prohibited": "icmp-admin-prohibited",
    },
    "ipv6": {
        "tcp-reset": "tcp-reset",
        "port-unreachable": "icmp6-port-unreachable",
        "admin-prohibited": "icmp6-adm-prohibited",
    },
}


def ipt_answer(answer: Answer, family: Family, accept: str = "ACCEPT") -> tuple[str, str]:
    """(what the line adds to its match, its target) on iptables; *accept* is the
    target an accept becomes (RETURN in the container chains)."""
    if answer.how in ("accept", "drop"):
        return "", accept if answer.how == "accept" else "DROP"
    match = " -p tcp" if answer.tcp else ""
    match += (
        f" -m pkttype --pkt-type unicast -m limit --limit {REJECT_RATE}/second"
        f" --limit-burst {REJECT_BURST}"
    )
    return match, f"REJECT --reject-with {IPT_REJECT[family][answer.how]}"


def refused_sources(policy: Policy, family: Family) -> list[str] | None:
    """The sources the default rejects (None: every one; empty: none of *family*)."""
    if policy.refuse_from is None:
        return None
    return list(policy.address_set(policy.refuse_from).family(family))


def connlimit_prefix(policy: Policy, family: Family) -> int:
    """The prefix a connection cap counts a source by: the rate limits' (a /64 for IPv6)."""
    return policy.limit_prefix(family)


def deny_label(rule: Rule) -> str:
    """A deny or reject rule's comment: what it does, its name, its comment."""
    return deny_title(rule) + (f": {rule.comment}" if rule.comment else "")
