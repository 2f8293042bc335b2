"""Sharing iptables' filter table with Docker, Podman, fail2ban and libvirt.

fwgen's rules live in chains of its own (``FWGEN-INPUT``, ``FWGEN-OUTPUT``), which the
built-in chains jump to once each, and connections a container engine DNATs to its
containers (published ports) are judged in the chain the engine evaluates first:
Docker's ``DOCKER-USER``, which Docker creates, jumps to first and never flushes; for
Podman, ``FWGEN-FORWARD``, jumped to first from ``FORWARD``. Such a chain admits what
the inbound rules admit, matched on the original destination, and drops every other
DNATed connection; everything else it hands back (RETURN) to the engine's rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fwgen.policy import Direction, Family, Policy, Rule
from fwgen.targets.text import DROP_LOG_LIMIT, ESTABLISHED, drop_log_prefix, quoted, rule_heading

OWN_CHAINS: dict[Direction, str] = {"in": "FWGEN-INPUT", "out": "FWGEN-OUTPUT"}
PUBLISHED_CHAINS = {"docker": "DOCKER-USER", "podman": "FWGEN-FORWARD"}
MAX_COMMENT = 200
NOT_PUBLISHED = "not DNATed: the container engine rules decide"


@dataclass(frozen=True)
class Jump:
    """One jump from a built-in chain to a chain of fwgen's, added once."""

    builtin: str
    chain: str
    first: bool  # inserted ahead of the chain's rules, else appended

    def option(self) -> str:
        return "-I" if self.first else "-A"


def published_chain(policy: Policy) -> str:
    assert policy.containers is not None
    return PUBLISHED_CHAINS[policy.containers]


def jumps(policy: Policy) -> list[Jump]:
    """INPUT and OUTPUT are appended to: programs that insert ahead (fail2ban's bans)
    keep going first. The container chain must come before the engine's accepts."""
    out = [Jump("INPUT", OWN_CHAINS["in"], first=False)]
    if policy.defaults.outbound == "drop":
        out.append(Jump("OUTPUT", OWN_CHAINS["out"], first=False))
    if policy.containers is not None:
        out.append(Jump("FORWARD", published_chain(policy), first=True))
    return out


def published_lines(
    policy: Policy,
    family: Family,
    chain: str,
    rule_lines: Callable[[Rule, Family, str], list[str]],
    drop: Callable[[str], list[str]],
    log: bool = True,
) -> list[str]:
    """The container chain of one family: replies and connections not DNATed go back
    to the engine, the inbound rules' published connections too, the rest is dropped.
    *rule_lines(rule, family, chain)* gives a rule's lines; *drop(match)* the drop;
    *log*: whether to log the drops the profile asks to log (else *drop* does)."""
    out = [
        f"-A {chain} -m conntrack --ctstate ESTABLISHED,RELATED -m comment "
        f"--comment {quoted(ESTABLISHED, MAX_COMMENT)} -j RETURN",
        f"-A {chain} -m conntrack ! --ctstate DNAT -m comment "
        f"--comment {quoted(NOT_PUBLISHED, MAX_COMMENT)} -j RETURN",
    ]
    for rule in policy.rules:
        if rule.published() and family in rule.families:
            out.append(f"# {rule_heading(rule)}")
            out += rule_lines(rule, family, chain)
    if policy.log_drops and log:
        prefix = quoted(drop_log_prefix("published"), 28)
        out.append(
            f"-A {chain} -m limit --limit {DROP_LOG_LIMIT} -m comment --comment "
            f'"log what the policy drops" -j LOG --log-prefix {prefix}'
        )
    comment = quoted(f"published by {policy.containers}, allowed by no inbound rule", MAX_COMMENT)
    return out + drop(f"-m comment --comment {comment}")
