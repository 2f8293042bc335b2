"""The built-in profiles as `fwgen profiles` lists them: what each is for, what it
builds on, and which networks and interface groups a user must set before it admits anyone."""

from __future__ import annotations

from typing import TypedDict

from fwgen.policy.ir import placeholder_networks
from fwgen.policy.resolve import resolve_profile
from fwgen.profile.load import builtin_profiles, read_profile


class ProfileRow(TypedDict):
    name: str
    description: str
    file: str
    extends: list[str]
    networks_to_set: list[str]
    interfaces_to_set: list[str]


def builtin_rows() -> list[ProfileRow]:

    rows: list[ProfileRow] = []
    for name, path in builtin_profiles().items():
        shown = f"profiles/{path.name}"
        profile, _, _ = read_profile(path, shown)
        rows.append(
            {
                "name": name,
                "description": profile.description,
                "file": shown,
                "extends": profile.extends,
                "networks_to_set": placeholder_networks(policy := resolve_profile(name)),
                "interfaces_to_set": [g.name for g in policy.interface_groups if g.placeholder],
            }
        )
    return rows


def as_text(rows: list[ProfileRow]) -> str:
    width = max(len(row["name"]) for row in rows)
    lines = []
    for row in rows:
        needs = [*row["networks_to_set"], *row["interfaces_to_set"]]
        hint = f" (set: {', '.join(needs)})" if needs else ""
        lines.append(f"{row['name']:<{width}}  {row['description']}{hint}\n")
    return "".join(lines)
