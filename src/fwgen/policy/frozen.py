"""The base of the Policy's small frozen classes (`fwgen.policy.ir`).

The Policy is made by fwgen itself, from a profile pydantic already validated, so it needs
no validation of its own: only fields, defaults, immutability, equality, a copy with some
fields changed and the JSON its digest is taken of. Written out here rather than made by
pydantic or `dataclasses`, which build each class at start-up (pydantic its validators,
dataclasses by compiling generated methods): every render pays for that before its first
rule. `dataclass_transform` lets the type checker see the keyword-only constructors.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from pydantic_core import to_json
from typing_extensions import Self, dataclass_transform

_MISSING: Any = object()


class _Field:
    __slots__ = ("default", "exclude")

    def __init__(self, default: Any, exclude: bool) -> None:
        self.default = default
        self.exclude = exclude


def field(*, default: Any = _MISSING, exclude: bool = False) -> Any:
    """A field with a default; ``exclude``: left out of the JSON (`Frozen.plain`)."""
    return _Field(default, exclude)


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(field,))
class Frozen:
    """Keyword-only fields from the class annotations, defaults from the class body."""

    FIELDS: ClassVar[tuple[str, ...]] = ()
    SHOWN: ClassVar[tuple[str, ...]] = ()  # the fields `plain` gives, in their order
    DEFAULTS: ClassVar[dict[str, Any]] = {}
    # A cached property → the fields it is computed from: a copy keeps it unless one of
    # those fields changes (see `replace`).
    CACHED: ClassVar[dict[str, frozenset[str]]] = {}

    def __init_subclass__(cls) -> None:
        annotations = inspect.get_annotations(cls)
        names = [n for n, kind in annotations.items() if not str(kind).startswith("ClassVar")]
        cls.FIELDS = tuple(names)
        cls.DEFAULTS = {}
        shown = []
        for name in names:
            value = cls.__dict__.get(name, _MISSING)
            excluded = isinstance(value, _Field) and value.exclude
            if isinstance(value, _Field):
                value = value.default
            if value is not _MISSING:
                cls.DEFAULTS[name] = value
            if name in cls.__dict__:
                delattr(cls, name)
            if not excluded:
                shown.append(name)
        cls.SHOWN = tuple(shown)

    def __init__(self, **values: Any) -> None:
        state = self.__dict__
        for name in self.FIELDS:
            value = values.pop(name, _MISSING)
            if value is _MISSING:
                value = self.DEFAULTS.get(name, _MISSING)
                if value is _MISSING:
                    raise TypeError(f"{type(self).__name__}: missing field {name!r}")
            state[name] = value
        if values:
            raise TypeError(f"{type(self).__name__}: unknown fields {sorted(values)}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: use replace()")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def values(self) -> tuple[Any, ...]:
        return tuple(map(self.__dict__.__getitem__, self.FIELDS))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.values() == other.values()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={self.__dict__[name]!r}" for name in self.FIELDS)
        return f"{type(self).__name__}({shown})"

    def replace(self, **changes: Any) -> Self:
        """A copy with *changes*; it keeps what its cached properties hold unless a field
        they are computed from changed (an address set renamed keeps its parsed addresses)."""
        state = self.__dict__
        made = type(self)(**{name: state[name] for name in self.FIELDS} | changes)
        for cached, sources in self.CACHED.items():
            if cached in state and sources.isdisjoint(changes):
                made.__dict__[cached] = state[cached]
        return made

    def plain(self) -> dict[str, Any]:
        """The fields but excluded ones, as JSON holds them: nested ones as dicts too."""
        state = self.__dict__
        return {name: plain(state[name]) for name in self.SHOWN}

    def json(self) -> str:
        """`plain` as compact JSON, keys in field order."""
        return dumps(self.plain()).decode()


def plain(value: Any) -> Any:
    """*value* as JSON holds it: `Frozen` objects (alone or in a tuple) as dicts."""
    if isinstance(value, Frozen):
        return value.plain()
    if type(value) is tuple and value and isinstance(value[0], Frozen):
        return [item.plain() for item in value]
    return value


def dumps(data: Any) -> bytes:
    """Compact JSON in UTF-8, characters kept as they are (pydantic-core's encoder: twice
    as fast as the standard library's on a million addresses)."""
    return to_json(data)
