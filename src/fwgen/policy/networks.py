"""A profile's networks resolved to addresses: named networks expanded (lists read from
files within the boundary, ``--set`` and a manifest's ``set:`` applied), and the address
sets rules name, each created once."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fwgen.errors import FwgenError, ResolveError, did_you_mean
from fwgen.policy.ir import AddressSet
from fwgen.profile.addresses import (
    MAX_ENTRIES,
    Interval,
    merge,
    parse_network,
    read_list,
    runs,
)
from fwgen.profile.fields import looks_like_address
from fwgen.profile.load import Located, MergedProfile

MAX_NETWORK_DEPTH = 16  # networks naming networks naming networks ...


def address_set_of(
    intervals: Iterable[Interval], name: str, origin: str, written: tuple[str, ...]
) -> AddressSet:
    """The set of *intervals* (parsed addresses, any order), which keeps them as the `Runs`
    that whatever compares addresses later uses (`AddressSet.runs`): nothing parses them
    again. A copy (`Frozen.replace`) keeps them too."""
    both = runs(intervals)
    made = AddressSet(
        name=name, ipv4=both[4].texts(), ipv6=both[6].texts(), origin=origin, written=written
    )
    made.__dict__["by_version"] = both  # what its `by_version` would parse the texts into
    return made


def _set_name(label: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", label)
    return name if name[:1].isalpha() else f"r_{name}"


def set_origin(merged: MergedProfile, name: str, at: Located[Any] | None) -> str:
    """Where ``--set NAME`` or a manifest's ``set:`` gives a value: ``--set NAME``, or the
    manifest's line, named as every other origin, however the path was typed."""
    if at is None:
        return f"--set {name}"
    written = at.doc.source
    return f"{merged.origins.name(written) if written else at.file}:{at.line}"


class Networks:
    """The networks of *merged*, with *overrides* applied (*set_at* says where each is
    written; without it, they come from ``--set``). Errors go to *errors*."""

    def __init__(
        self,
        merged: MergedProfile,
        overrides: Mapping[str, Sequence[str]],
        set_at: Mapping[str, Located[Any]],
        errors: list[FwgenError],
    ):
        self.merged = merged
        self.errors = errors
        self.sets: dict[str, AddressSet] = {}
        # a rule's own list, by its addresses and line: a list repeated on one line is one set
        self.literal_sets: dict[tuple[tuple[str, ...], tuple[str, ...], str], str] = {}
        self.networks: dict[str, list[Interval] | None] = {}
        self.list_budget = MAX_ENTRIES  # addresses read from files
        self.set_budget = 2 * MAX_ENTRIES  # addresses copied into rules' own sets
        self.entries: dict[str, tuple[list[str], str, Located[Any] | None]] = {
            name: (loc.value, f"{loc.file}:{loc.line}", loc)
            for name, loc in merged.networks.items()
        }
        for name, values in sorted(overrides.items()):
            at = set_at.get(name)
            if name not in self.entries:
                unknown = f"unknown network '{name}'{did_you_mean(name, self.entries)}"
                self.errors.append(
                    at.error(unknown, kind=ResolveError)
                    if at
                    else ResolveError(f"--set {name}: {unknown}")
                )
            else:
                self.entries[name] = (list(values), set_origin(merged, name, at), at)

    def network(self, name: str, stack: tuple[str, ...] = ()) -> list[Interval] | None:
        """The addresses of a named network, its references expanded and merged (so a
        network named many times costs one copy); None when invalid."""
        if name in self.networks:
            return self.networks[name]
        values, origin, where = self.entries[name]
        found: list[Interval] = []
        valid = True
        for i, entry in enumerate(values):
            result = self._network_entry(name, entry, stack, where)
            if isinstance(result, str):
                if where is not None:
                    self.errors.append(where.error(result, i, kind=ResolveError))
                else:
                    self.errors.append(ResolveError(f"{origin}: {result}"))
                valid = False
            else:
                found.extend(result)
        # merged when it joins several entries, so a network named many times is one copy
        self.networks[name] = (merge(found) if len(values) > 1 else found) if valid else None
        return self.networks[name]

    def _network_entry(
        self, name: str, entry: Any, stack: tuple[str, ...], where: Located[Any] | None
    ) -> list[Interval] | str:
        if isinstance(entry, dict):
            assert where is not None and where.doc.source is not None  # --set gives no files
            return self._address_list(str(entry["file"]), where)
        if looks_like_address(entry):
            try:
                return [parse_network(entry)]
            except ValueError as exc:
                return str(exc)
        if entry == name or entry in stack:
            return f"network '{name}' refers to itself (through '{entry}')"
        if entry not in self.entries:
            return f"unknown network '{entry}'{did_you_mean(entry, self.entries)}"
        if len(stack) >= MAX_NETWORK_DEPTH:
            return (
                f"networks name each other more than {MAX_NETWORK_DEPTH} levels deep; flatten them"
            )
        return self.network(entry, (*stack, name)) or []

    def _address_list(self, relative: str, where: Located[Any]) -> list[Interval] | str:
        """The entries of a ``{file: PATH}`` list, a path relative to the naming profile."""
        assert where.doc.source is not None
        named = where.doc.source.parent / relative
        shown = self.merged.origins.name(named)
        try:
            path = self.merged.boundary.read(named, "address list", relative)
            found = read_list(path, shown, self.list_budget)
        except FwgenError as exc:
            if exc.line is None:  # the file as a whole: report it where the profile names it
                return exc.message if exc.path is None else f"{exc.message}: {shown}"
            self.errors.append(exc)  # a bad line: report it in the list file
            return []
        self.list_budget -= len(found)
        return found

    def address_set(
        self, peers: list[str], label: str, where: Located[Any], key: str | int
    ) -> str | None:
        """The name of the set holding *peers* (None for any), created on first use."""
        if peers == ["any"]:
            return None
        if len(peers) == 1 and not looks_like_address(peers[0]):
            name = peers[0]
            if name not in self.entries:
                self.errors.append(
                    where.error(
                        f"unknown network '{name}'{did_you_mean(name, self.entries)}; "
                        "define it under `networks:`",
                        key,
                        kind=ResolveError,
                    )
                )
                return None
            if name not in self.sets:
                self.sets[name] = address_set_of(
                    self.network(name) or [], name, self.entries[name][1], (name,)
                )
            return name
        found: list[Interval] = []
        for i, peer in enumerate(peers):
            if looks_like_address(peer):
                found.append(parse_network(peer))
            elif peer in self.entries:
                found.extend(self.network(peer) or [])
            else:
                self.errors.append(
                    where.error(
                        f"unknown network '{peer}'{did_you_mean(peer, self.entries)}",
                        key,
                        i,
                        kind=ResolveError,
                    )
                )
        self.set_budget -= len(found)
        if self.set_budget < 0:
            if self.set_budget + len(found) < 0:  # reported at the first rule past it
                return None
            self.errors.append(
                where.error(
                    f"the address sets of this profile would hold more than {2 * MAX_ENTRIES:,} "
                    "addresses in all; name the list once under `networks:` and use that name "
                    "in each rule instead of repeating lists that contain it",
                    key,
                    kind=ResolveError,
                )
            )
            return None
        made = address_set_of(found, "", f"{where.file}:{where.line}", tuple(peers))
        same_list = (made.ipv4, made.ipv6, made.origin)
        same = self.literal_sets.get(same_list)
        if same is not None:
            return same
        name, n = _set_name(label), 1
        while name in self.sets or name in self.entries:
            n += 1
            name = f"{_set_name(label)}_{n}"
        self.sets[name] = made.replace(name=name)
        self.literal_sets[same_list] = name
        return name
