"""Deny and reject rules, the default's refusal, and connection limits: how a profile's
``action:``, ``options.refuse``/``refuse_from`` and ``connlimit:`` become the Policy's
`Policy.denies`, `Policy.refuse`/`refuse_from` and `Rule.connlimit`.

A deny rule is evaluated before every allow rule, after the loopback, established and
invalid shortcuts: a listed source keeps a connection it had already established until
it ends (each target puts its denies there: ufw's command-line rules come after ufw's own
established accept, so every target agrees), and every new one is refused.
"""

from __future__ import annotations

from typing import Any

from fwgen.errors import FwgenError, ResolveError, split_location
from fwgen.policy.ir import EVERY_ADDRESS, FAMILIES, AddressSet, Rule, Verdict
from fwgen.profile.load import Located

VERDICTS: dict[str, Verdict] = {"allow": "accept", "deny": "drop", "reject": "reject"}
VERBS = {verdict: action for action, verdict in VERDICTS.items()}


def deny_title(rule: Rule) -> str:
    """How a deny or reject rule is named: ``deny``, ``reject ssh``."""
    word = VERBS[rule.action]
    return word if rule.name == word else f"{word} {rule.name}"


def split(rules: list[Rule]) -> tuple[list[Rule], list[Rule]]:
    """(accept rules, drop and reject rules), each in the given order."""
    return [r for r in rules if r.action == "accept"], [r for r in rules if r.action != "accept"]


def whole_family_denies(denies: list[Rule], sets: dict[str, AddressSet]) -> list[FwgenError]:
    """A deny whose list holds every address of a family (a ``0.0.0.0/0`` line in a
    blocklist) would block the world, the admin too: refused, never rendered."""
    errors: list[FwgenError] = []
    for rule in denies:
        found = sets.get(rule.remote or "")
        if found is None:
            continue
        for family in FAMILIES:
            if family in rule.families and found.family(family) == (EVERY_ADDRESS[family],):
                path, line = split_location(rule.origin)
                errors.append(
                    ResolveError(
                        f"{rule.name}: {found.words()} ({found.origin}) holds every "
                        f"{'IPv4' if family == 'ipv4' else 'IPv6'} address "
                        f"({EVERY_ADDRESS[family]}): this {VERBS[rule.action]} rule would block "
                        "everyone, you too; remove that entry from the list",
                        path=path or None,
                        line=line,
                    )
                )
    return errors


def connlimit_errors(where: Located[Any], rules: list[Rule]) -> list[FwgenError]:
    """A ``connlimit:`` that no TCP rule of its profile rule carries (a UDP service)."""
    spec = where.value
    if spec.connlimit is None or any(r.connlimit for r in rules) or not rules:
        return []
    return [
        where.error(
            "connlimit caps TCP connections, and this rule opens no TCP port; leave it out",
            "connlimit",
            kind=ResolveError,
        )
    ]


def every_protocol(where: Located[Any]) -> dict[str, Any] | None:
    """The fields of the one rule a deny or reject rule of every protocol makes; None
    for a rule that names a service, port or ICMP type."""
    spec = where.value
    if spec.action == "allow" or spec.kinds():
        return None
    return {
        "proto": "all",
        "name": spec.name or spec.action,
        "comment": spec.comment or "",
    }


def container_errors(
    merged_options: dict[str, Located[Any]], denies: list[Rule], rules: list[Rule]
) -> list[FwgenError]:
    """Deny and reject rules, refuse: reject and connlimit are not rendered for the
    connections a container engine DNATs (its chains are fwgen's own): refused with
    ``containers:``, never silently left out there."""
    where = merged_options.get("containers")
    if where is None or where.value is None:
        return []
    used = [
        what
        for what, present in (
            ("deny and reject rules", bool(denies)),
            ("refuse: reject", getattr(merged_options.get("refuse"), "value", "drop") == "reject"),
            ("connlimit", any(r.connlimit for r in rules)),
        )
        if present
    ]
    if not used:
        return []
    return [
        where.error(
            f"{used[0]} cannot be combined with containers: {where.value} yet: the published "
            "ports would not get them; remove one of the two",
            kind=ResolveError,
        )
    ]
