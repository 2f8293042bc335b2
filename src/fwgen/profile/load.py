"""Find profile files, validate them, and merge an ``extends`` chain into one profile.

The result still knows, for every value, the file and line it came from.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from fwgen.errors import FwgenError, ProfileError, did_you_mean, raise_collected
from fwgen.profile.models import InboundRule, OutboundRule, Profile
from fwgen.profile.options import Options
from fwgen.read.once import by_content
from fwgen.read.paths import (
    Boundary,
    Origins,
    is_file,
    is_within,
    profiles_dir,
    profiles_real,
    real_path,
)
from fwgen.read.yamlsource import Document, Loc, parse, read_text

T = TypeVar("T")
MAX_EXTENDS_DEPTH = 16  # a chain of `extends:` this long is a mistake or an attack
MAX_FILES = 64  # profile files in one chain


def _keys(model: type[BaseModel]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


# Where each key of a profile belongs, as a message says it.
PLACES = {
    "top": ("at the top of a profile", _keys(Profile)),
    "inbound": ("to inbound rules", _keys(InboundRule)),
    "outbound": ("to outbound rules", _keys(OutboundRule)),
    "options": ("under `options:`", _keys(Options)),
}
KEYS = set().union(*(keys for _, keys in PLACES.values()))
PEERS = {"inbound": "from", "outbound": "to"}  # the key that names the other end of a rule


def format_loc(loc: Loc) -> str:
    """``("inbound", 2, "service")`` → ``inbound[2].service``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass(frozen=True)
class Located(Generic[T]):
    """A validated value and where it was written."""

    value: T
    doc: Document
    loc: Loc

    @property
    def file(self) -> str:
        return self.doc.path

    @property
    def line(self) -> int:
        return self.doc.line(self.loc)

    def error(
        self, message: str, *sub: str | int, kind: type[FwgenError] = FwgenError
    ) -> FwgenError:
        """An error about this value (or one of its fields), located at file:line."""
        loc = (*self.loc, *sub)
        return kind(message, path=self.doc.path, line=self.doc.line(loc), field=format_loc(loc))


@dataclass
class MergedProfile:
    """A profile with its ``extends`` chain applied, every value still located."""

    name: str
    description: str
    files: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    networks: dict[str, Located[list[str]]] = field(default_factory=dict)
    interfaces: dict[str, Located[list[str]]] = field(default_factory=dict)
    inbound: list[Located[InboundRule]] = field(default_factory=list)
    outbound: Literal["accept"] | list[Located[OutboundRule]] = "accept"
    outbound_origin: Located[Any] | None = None
    options: dict[str, Located[Any]] = field(default_factory=dict)
    boundary: Boundary = field(default_factory=lambda: Boundary(profiles_dir()))
    origins: Origins = field(default_factory=lambda: Origins(profiles_dir()))


def builtin_profiles() -> dict[str, Path]:
    """Built-in profile names → files."""
    return dict(_builtin_profiles())


@functools.cache
def _builtin_profiles() -> dict[str, Path]:  # the shipped folder does not change while fwgen runs
    return {p.stem: p for p in sorted(profiles_dir().glob("*.yaml"))}


def is_path(ref: str) -> bool:
    return ref.endswith((".yaml", ".yml")) or "/" in ref or os.sep in ref


def is_builtin(path: Path) -> bool:
    """Whether *path* is one of fwgen's own profiles (by where it really is, not its name)."""
    return is_within(real_path(path), profiles_real())


def find_profile(ref: str, near: Path | None = None) -> Path:
    """A profile reference (a name or a path) → its file.

    Names are looked up beside the extending file first (so site profiles can
    extend each other), then among the built-in profiles; a site's ``base.yaml``
    that says ``extends: base`` gets the built-in one.
    """
    if is_path(ref):
        return Path(ref) if near is None else near.parent / ref
    if near is not None and not is_builtin(near):
        for suffix in (".yaml", ".yml"):
            sibling = near.parent / f"{ref}{suffix}"
            if is_file(sibling) and real_path(sibling) != real_path(near):
                return sibling
    builtins = builtin_profiles()
    if ref in builtins:
        return builtins[ref]
    raise ProfileError(
        f"unknown profile '{ref}'{did_you_mean(ref, builtins)}; built-in profiles are "
        f"{', '.join(builtins)}, or give the path of a .yaml file"
    )


def read_profile(path: Path, shown: str) -> tuple[Profile, Document, str]:
    """Read and validate one profile file (no ``extends`` applied): once for each content
    (`fwgen.read.once`), so the hosts of a build share their parents. Nothing changes
    what this returns."""
    text = read_text(path, shown)
    return by_content(("profile", str(path), shown, text), lambda: _validated(path, shown, text))


def _validated(path: Path, shown: str, text: str) -> tuple[Profile, Document, str]:
    doc = parse(text, shown)
    doc.source = path
    if doc.data is None:
        raise ProfileError(
            "the profile is empty; it needs at least a description", path=shown, line=1
        )
    if not isinstance(doc.data, dict):
        raise ProfileError(
            "a profile is a mapping of keys (description, inbound, ...)", path=shown, line=1
        )
    try:
        return Profile.model_validate(doc.data), doc, text
    except ValidationError as exc:
        raise_collected(validation_errors(exc, doc))
        raise  # unreachable: a ValidationError always has errors


def key_home(key: str, loc: Loc) -> str:
    """Where *key* belongs when it is valid elsewhere in a profile than at *loc* (the mapping
    that holds it): ``: `to` belongs to outbound rules; inbound rules take `from```."""
    if not loc or loc == ("options",):
        place = str(loc[0]) if loc else "top"
    elif len(loc) == 2 and loc[0] in PEERS and isinstance(loc[1], int):
        place = str(loc[0])
    else:
        return ""  # inside a value (a limit, a network list): no other place takes keys
    if key in PLACES[place][1]:
        return ""
    homes = [p for p, (_, keys) in PLACES.items() if key in keys]
    if not homes:
        return ""
    if homes == ["inbound", "outbound"]:
        where = "to inbound and outbound rules"
    else:
        where = " and ".join(PLACES[p][0] for p in homes)
    peer = (
        f"; {place} rules take `{PEERS[place]}`" if key in PEERS.values() and place in PEERS else ""
    )
    return f": `{key}` belongs {where}{peer}"


def validation_errors(
    exc: ValidationError, doc: Document, profile: bool = True
) -> list[FwgenError]:
    """pydantic's errors as located, one-line profile errors (shallow duplicates dropped).
    For a *profile*, a key valid elsewhere in a profile is said where it belongs."""
    found: dict[Loc, str] = {}
    for err in exc.errors():
        loc = _data_loc(doc.data, err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        if err["type"] == "extra_forbidden":
            key = str(loc[-1]) if loc else "?"
            home = key_home(key, loc[:-1]) if profile else ""
            message = f"unknown key '{key}'{home or did_you_mean(key, KEYS - {key})}"
        elif err["type"] == "missing":
            message = f"missing key '{err['loc'][-1]}'"
        found.setdefault(loc, message)
    deepest = [loc for loc in found if not any(o[: len(loc)] == loc and o != loc for o in found)]
    return [
        ProfileError(found[loc], path=doc.path, line=doc.line(loc), field=format_loc(loc))
        for loc in deepest
    ]


def _data_loc(data: Any, loc: tuple[Any, ...]) -> Loc:
    """pydantic's location as a path into the data, union-branch tags dropped."""
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        ):
            data = data[part]
            out.append(part)
        elif isinstance(data, dict) and i == len(loc) - 1:
            out.append(part)  # a missing key
    return tuple(out)


def load_profile(
    ref: str,
    root: Path | None = None,
    boundary: Boundary | None = None,
    allow_outside: tuple[Path, ...] = (),
    origins: Origins | None = None,
) -> MergedProfile:
    """Load a profile by name or path, with its whole ``extends`` chain merged.

    A relative path is read from *root* (default: the working directory). Files are
    named by *origins* (default: around the profile, see `Origins`), so origins do not
    depend on where fwgen was started or how the path was spelled. Files it names must
    stay inside *boundary* (default: the profile's folder and *allow_outside*).
    """
    path = find_profile(ref)
    if root is not None and is_path(ref) and not Path(ref).is_absolute():
        path = root / ref
    if origins is None:
        origins = Origins.around(path)
    shown = origins.name(path)
    if boundary is None:
        boundary = Boundary.around(path, allow_outside)
    elif not is_builtin(path):
        boundary.read(path, "profile", shown)
    chain: list[tuple[Profile, Document, str]] = []
    try:
        _linearise(path, shown, chain, boundary, origins, stack=[], seen=set())
    except ProfileError as exc:
        if is_path(ref) and exc.path == shown and exc.line is None:
            # the file named could not be read (missing, a device, a FIFO, a folder):
            # named as given, not by its stable name (`/dev/null`, not `null`)
            raise ProfileError(exc.message, path=ref, field=exc.field) from None
        raise
    name = Path(shown).stem
    top = chain[-1][0]
    merged = MergedProfile(
        name=name, description=top.description, boundary=boundary, origins=origins
    )
    for profile, doc, text in chain:
        _merge(merged, profile, doc, text)
    if not merged.description:
        merged.description = next(
            (p.description for p, _, _ in reversed(chain) if p.description), ""
        )
    return merged


def _linearise(
    path: Path,
    shown: str,
    chain: list[tuple[Profile, Document, str]],
    boundary: Boundary,
    origins: Origins,
    stack: list[Path],
    seen: set[Path],
) -> None:
    """Depth-first, parents left to right before the child; each file once."""
    key = real_path(path)
    if key in seen:
        return
    profile, doc, text = read_profile(path, shown)
    stack = [*stack, key]
    for i, parent in enumerate(profile.extends):
        where = Located(parent, doc, ("extends", i) if len(profile.extends) > 1 else ("extends",))
        if len(stack) > MAX_EXTENDS_DEPTH or len(seen) >= MAX_FILES:
            raise where.error(
                f"profiles extend each other more than {MAX_EXTENDS_DEPTH} levels deep "
                f"(or {MAX_FILES} files); flatten the chain",
                kind=ProfileError,
            )
        try:
            parent_path = find_profile(parent, path)
            if not is_builtin(parent_path):
                boundary.read(parent_path, "profile", parent)
        except FwgenError as exc:
            raise where.error(exc.message, kind=ProfileError) from None
        if real_path(parent_path) in stack:
            raise where.error(
                f"'{parent}' leads back to '{Path(shown).stem}': profiles cannot extend each other in a cycle",
                kind=ProfileError,
            )
        try:
            _linearise(
                parent_path, origins.name(parent_path), chain, boundary, origins, stack, seen
            )
        except ProfileError as exc:
            if exc.path is None:
                raise where.error(exc.message, kind=ProfileError) from None
            raise
    seen.add(key)
    chain.append((profile, doc, text))


def _merge(merged: MergedProfile, profile: Profile, doc: Document, text: str) -> None:
    merged.files.append(doc.path)
    merged.texts.append(text)
    for name, entries in profile.networks.items():
        merged.networks[name] = Located(entries, doc, ("networks", name))
    for name, entries in profile.interfaces.items():
        merged.interfaces[name] = Located(entries, doc, ("interfaces", name))
    merged.inbound.extend(Located(r, doc, ("inbound", i)) for i, r in enumerate(profile.inbound))
    if "outbound" in profile.model_fields_set:
        merged.outbound_origin = Located(profile.outbound, doc, ("outbound",))
        if profile.outbound == "accept":
            merged.outbound = "accept"
        else:
            rules = [Located(r, doc, ("outbound", i)) for i, r in enumerate(profile.outbound)]
            merged.outbound = (merged.outbound if isinstance(merged.outbound, list) else []) + rules
    for option in profile.options.model_fields_set:
        merged.options[option] = Located(getattr(profile.options, option), doc, ("options", option))
