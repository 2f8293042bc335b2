"""Text that every target must make safe: comments, quoted strings, identifiers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fwgen.errors import printable

if TYPE_CHECKING:
    from fwgen.policy.ir import Rule

ESTABLISHED = "replies and related traffic"
DROP_LOG_RATE = "5/second burst 10 packets"  # what logging the policy's drops may cost
DROP_LOG_LIMIT = "5/second --limit-burst 10"  # DROP_LOG_RATE, as iptables' limit match says it
CHAIN_NAMES = {"in": "input", "out": "output", "forward": "forward"}


def drop_log_prefix(chain: str) -> str:
    """The log prefix of what a chain's policy drops, spelt alike by every target:
    ``fwgen input drop: ``, ``fwgen output drop: ``, ``fwgen forward drop: ``."""
    return f"fwgen {CHAIN_NAMES.get(chain, chain).lower()} drop: "


def queries_left_to_limits(proto: str, types: tuple[str, ...]) -> str:
    """The comment of the established shortcut's ICMP part."""
    return f"replies and related {proto} except {', '.join(types)} (rate limited below)"


def comment_line(text: str) -> str:
    """Text safe inside a ``#`` comment: one line, printable."""
    return printable(text)


def plain_ascii(text: str, limit: int) -> str:
    """Printable ASCII with quotes and backslashes replaced, cut to *limit* characters.

    Safe inside double quotes for nft and iptables-restore, and inside single
    quotes for shells once single quotes are gone too.
    """
    clean = "".join(c if " " <= c <= "~" and c not in "\"'\\`$" else "?" for c in text)
    return clean[:limit]


def quoted(text: str, limit: int) -> str:
    """A double-quoted string for nft and iptables-restore (see `plain_ascii`)."""
    return f'"{plain_ascii(text, limit)}"'


def identifier(text: str, taken: set[str], limit: int = 24) -> str:
    """A name made of letters, digits and underscores, unique among *taken* (which it joins)."""
    base = "".join(c if c.isascii() and c.isalnum() else "_" for c in text)[:limit] or "rule"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base[: limit - len(str(n)) - 1]}_{n}"
    taken.add(name)
    return name


def rule_heading(rule: Rule) -> str:
    """The comment above a rule in every target: its name, origin, and any risk acknowledged."""
    text = f"{rule.name} ({rule.origin})"
    if rule.risky:
        text += f"; opens {rule.risky}; allow_risky: {rule.acknowledged}"
    return comment_line(text)


def empty_note(rule: Rule) -> str:
    """The comment that stands in for a rule whose network has no usable address."""
    if rule.families:
        return ""
    if rule.idle():
        return comment_line(f"matches nothing: interface group {', '.join(rule.on)} is empty")
    return comment_line(
        f"matches nothing: network '{rule.remote}' has no addresses of a usable family"
    )
