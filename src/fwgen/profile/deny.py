"""Deny and reject rules, and connection limits, as a profile writes them.

A rule's ``action`` is ``allow`` (the default), ``deny`` (dropped, silently) or
``reject`` (refused: TCP RST, ICMP port unreachable, or ICMP administratively
prohibited for the other protocols). Deny and reject rules are evaluated before every
allow rule, for a source, a service or both; one that names no service, port or ICMP
type blocks every protocol from its sources, which must then be named (a rule
blocking everything from `any` would lock everyone out, the admin first).

``connlimit: N`` caps the concurrent connections of each source (an address, or a
prefix: ``options.limit_prefix_v4``/``_v6``) to an allow rule's TCP ports.
"""

from __future__ import annotations

from typing import Any, Literal

Action = Literal["allow", "deny", "reject"]
ACTIONS: tuple[Action, ...] = ("allow", "deny", "reject")
MAX_CONNLIMIT = 65535
# What an allow rule may say that a deny or reject rule may not: it admits nothing.
ALLOW_ONLY = ("limit", "connlimit", "allow_risky", "accept")


def action_problem(spec: Any, kinds: list[str]) -> str:
    """Why a rule's ``action`` does not fit the rest of it, or the empty string.

    *kinds* are what the rule matches (``service``, ``port``, ``icmp``), maybe none."""
    if spec.action == "allow":
        if not kinds:
            return "a rule needs exactly one of: service, port, protocol, icmp/icmpv6"
        if spec.connlimit is not None and kinds != ["service"] and kinds != ["port"]:
            return "connlimit caps TCP connections: give it a service or TCP ports, not ICMP"
        return ""
    written = [key for key in ALLOW_ONLY if getattr(spec, key)]
    if written:
        return (
            f"a {spec.action} rule admits nothing, so `{written[0]}` has no meaning there; "
            "leave it out"
        )
    return ""


def every_protocol_from_any(spec: Any, kinds: list[str], peers: list[str], key: str) -> str:
    """The error of a deny or reject rule of every protocol from `any`, or the empty string."""
    if spec.action != "allow" and not kinds and peers == ["any"]:
        return (
            f"a {spec.action} rule without a service, port or ICMP type blocks every protocol "
            f"{key} any address; name its addresses or networks in `{key}:` (all of them "
            "would lock everyone out)"
        )
    return ""
