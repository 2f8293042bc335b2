"""The names fwgen owns on a host beside other programs' rules: the targets write them and
`fwgen apply` recognises them, so both read them here."""

from __future__ import annotations

from fwgen.policy.ir import Rule

CONTAINERS = "FWGEN-CONTAINERS"  # new connections from outside into the engine's networks
ROUTED = "FWGEN-ROUTED"  # those of them that go out on a bridge of the engine
CONTAINER_CHAINS = (CONTAINERS, ROUTED)
DOCKER_USER = "DOCKER-USER"  # Docker's, never declared by fwgen: where its jump goes

# The shadow (`fwgen shadow`): nftables' table of its own, and the mark its comment starts
# with, without which a table of that name is someone else's.
SHADOW_TABLE = "fwgen_shadow"
SHADOW_MARK = "fwgen shadow v1"

# How long a rule's label (its comment in the ruleset) may be, per target.
LABEL_LIMITS = {"nftables": 120, "iptables": 200, "ufw": 200}


UNQUOTABLE = "\"'\\`$"  # what no quoted string of any target may hold


def plain_ascii(text: str, limit: int) -> str:
    """Printable ASCII with quotes and backslashes replaced, cut to *limit* characters.

    Safe inside double quotes for nft and iptables-restore, and inside single
    quotes for shells once single quotes are gone too.
    """
    if text.isascii() and text.isprintable() and not any(c in text for c in UNQUOTABLE):
        return text[:limit]  # nearly always: no character to look at one by one
    clean = "".join(c if " " <= c <= "~" and c not in UNQUOTABLE else "?" for c in text)
    return clean[:limit]


def rule_label(rule: Rule, limit: int) -> str:
    """The comment a rule's accept carries in the ruleset, by which `fwgen hits` finds its
    counter again: its name and comment, safe inside double quotes (see `plain_ascii`)."""
    return plain_ascii(rule.name + (f": {rule.comment}" if rule.comment else ""), limit)


def ufw_label(rule: Rule) -> str:
    """How fwgen's ufw rules (``ufw allow ... comment 'fwgen: NAME [tag]'``) name the rule
    `fwgen hits` counts them for (ufw keeps the first of identical rules: its name)."""
    return plain_ascii(f"fwgen: {rule.name}", LABEL_LIMITS["ufw"])
