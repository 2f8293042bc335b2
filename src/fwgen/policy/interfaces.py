"""A profile's interface groups resolved to the host's interfaces: ``interfaces:`` with
``--set`` and a manifest's ``set:`` applied, and each rule's ``interface:`` list expanded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fwgen.errors import FwgenError, ResolveError
from fwgen.policy.ir import InterfaceGroup
from fwgen.policy.networks import set_origin
from fwgen.profile.fields import check_interface
from fwgen.profile.load import Located, MergedProfile


def split_overrides(
    merged: MergedProfile, overrides: Mapping[str, Sequence[str]]
) -> tuple[dict[str, Sequence[str]], dict[str, Sequence[str]]]:
    """``--set`` values by what they name: (networks and unknown names, interface groups)."""
    networks = {k: v for k, v in overrides.items() if k not in merged.interfaces}
    groups = {k: v for k, v in overrides.items() if k in merged.interfaces}
    return networks, groups


class Interfaces:
    """The interface groups of *merged*, with *overrides* applied (*set_at* says where
    each is written; without it, they come from ``--set``). Errors go to *errors*."""

    def __init__(
        self,
        merged: MergedProfile,
        overrides: Mapping[str, Sequence[str]],
        set_at: Mapping[str, Located[Any]],
        errors: list[FwgenError],
    ):
        self.errors = errors
        self.groups: dict[str, InterfaceGroup] = {}
        self.used: set[str] = set()
        for name, loc in merged.interfaces.items():
            if name in merged.networks:
                errors.append(
                    loc.error(
                        f"'{name}' is both a network ({merged.networks[name].file}:"
                        f"{merged.networks[name].line}) and an interface group; name them "
                        "apart: --set gives each its values by name",
                        kind=ResolveError,
                    )
                )
            self.groups[name] = InterfaceGroup(
                name=name,
                interfaces=tuple(sorted(set(loc.value))),
                origin=f"{loc.file}:{loc.line}",
                placeholder=not loc.value,
            )
        for name, values in sorted(overrides.items()):
            at = set_at.get(name)
            origin = set_origin(merged, name, at)
            found = []
            for i, value in enumerate(values):
                try:
                    found.append(check_interface(value))
                except ValueError as exc:
                    errors.append(
                        at.error(str(exc), i, kind=ResolveError)
                        if at
                        else ResolveError(f"{origin}: {exc}")
                    )
            self.groups[name] = InterfaceGroup(
                name=name, interfaces=tuple(sorted(set(found))), origin=origin
            )

    def of(self, written: Sequence[str]) -> tuple[str, ...]:
        """The interfaces a rule's ``interface:`` list names: groups expanded, sorted."""
        found: set[str] = set()
        for item in written:
            if item in self.groups:
                self.used.add(item)
                found.update(self.groups[item].interfaces)
            else:
                found.add(item)
        return tuple(sorted(found))

    def used_groups(self) -> tuple[InterfaceGroup, ...]:
        return tuple(self.groups[name] for name in sorted(self.used))
