"""Read once, parse once: what a build of many hosts shares.

A build of a hundred hosts over one site profile names the same profiles and port files a
hundred times. Inside `one_reading` each file is read once, by its real path (so two
spellings of one file are one read); whatever is made from a file's text (a parsed and
validated profile, a port file's entries) is kept by `by_content`, keyed by what it was
made from, the text included, so an edited file is never answered from a stale copy.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from fwgen.read.paths import real_path, remembered_paths

T = TypeVar("T")
KEPT = 256  # things made from texts, the least recently used forgotten first

_READS: ContextVar[dict[tuple[Path, str, int], str] | None] = ContextVar(
    "fwgen_reads", default=None
)


@contextlib.contextmanager
def one_reading() -> Iterator[None]:
    """Within: each file is read once, later reads of it giving the same text; and the
    links of each path are followed once (`fwgen.read.paths.remembered_paths`)."""
    token = _READS.set({})
    try:
        with remembered_paths():
            yield
    finally:
        _READS.reset(token)


def read_once(path: Path, what: str, limit: int, read: Callable[[], str]) -> str:
    """The text *read* gives for *path*, read only once inside `one_reading`."""
    reads = _READS.get()
    if reads is None:
        return read()
    key = (real_path(path), what, limit)
    if key not in reads:
        reads[key] = read()
    return reads[key]


_MADE: OrderedDict[Hashable, Any] = OrderedDict()


def by_content(key: Hashable, make: Callable[[], T]) -> T:
    """What *make* returns, made once for each *key*: a key holds the text it is made
    from and everything else it depends on (the file's real path, its shown name)."""
    if key in _MADE:
        _MADE.move_to_end(key)
        return _MADE[key]  # type: ignore[no-any-return]
    made = make()
    _MADE[key] = made
    if len(_MADE) > KEPT:
        _MADE.popitem(last=False)
    return made


def forget() -> None:
    """Drop everything `by_content` keeps (for tests of the work done)."""
    _MADE.clear()
