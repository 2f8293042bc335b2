"""The state folder of `fwgen apply`: where it is, who may own it, what a pending apply
recorded, and whether the processes it recorded still run.

``meta.json`` of a pending apply holds: ``id``, ``target``, ``flush_ruleset``,
``profile``, ``started``, ``deadline``, ``yes`` (no confirmation asked), ``pid`` and
``pid_start`` (the apply), ``watcher`` and ``watcher_start`` (the rollback process),
``loaded`` (when loading ended), ``connections`` (the admin's, as the guard saw them)
and ``failed`` (a rollback that did not work; the saved state stays until the admin
decides).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from fwgen.errors import FwgenError
from fwgen.host import procs
from fwgen.host.backends import write_private

Meta = dict[str, object]
SETTLE = (
    "`fwgen apply --confirm-pending` keeps the rules loaded now, "
    "`fwgen apply --rollback-pending` restores the saved ones"
)


class Refused(FwgenError):
    """Nothing was touched: no root, a tool missing, a lock-out, a check failed, ..."""


def state_dir() -> Path:
    """The private folder of fwgen's pending and last apply (made with mode 0700). One
    that is a link, owned by someone else or writable by others is refused: whoever
    can write it chooses what a rollback loads."""
    path = Path(os.environ.get("FWGEN_STATE_DIR") or "/run/fwgen")
    try:
        if not path.is_symlink():
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        found = path.lstat()
    except OSError as error:
        raise Refused(f"{path}: cannot keep state there ({error.strerror})") from None
    why = ""
    if not stat.S_ISDIR(found.st_mode):
        why = "not a directory (a link or a file)"
    elif found.st_uid != os.geteuid():
        why = f"owned by uid {found.st_uid}, not by uid {os.geteuid()} which runs fwgen"
    elif found.st_mode & 0o022:
        why = f"writable by others (mode {stat.S_IMODE(found.st_mode):o})"
    if why:
        raise Refused(
            f"{path}: {why}; fwgen keeps the state it restores there: remove it, or set "
            "FWGEN_STATE_DIR to a folder only root can write"
        )
    return path


@contextlib.contextmanager
def locked(state: Path) -> Iterator[None]:
    with os.fdopen(os.open(state / "lock", os.O_RDWR | os.O_CREAT, 0o600)) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def read_meta(folder: Path) -> Meta | None:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def write_meta(folder: Path, meta: Meta) -> None:
    """Replace meta.json whole (a reader never sees half of it)."""
    write_private(folder / "meta.json.new", json.dumps(meta))
    (folder / "meta.json.new").rename(folder / "meta.json")


def update_meta(pending: Path, **fields: object) -> None:
    meta = read_meta(pending) or {}
    meta.update(fields)
    write_meta(pending, meta)


def _number(meta: Meta, key: str) -> int | None:
    value = meta.get(key)
    return value if isinstance(value, int) else None


def running(meta: Meta, proc: Path = procs.PROC) -> list[int]:
    """The recorded processes (the apply, its rollback) that still run: pid and start time
    both match (a pid alone may belong to a newer process)."""
    found = []
    for key in ("pid", "watcher"):
        pid = _number(meta, key)
        if pid and procs.alive(pid, _number(meta, f"{key}_start"), proc):
            found.append(pid)
    return found


def stuck(meta: Meta, proc: Path = procs.PROC) -> str:
    """Why the pending apply *meta* waits for the admin, or "" while it runs. A `--yes`
    apply whose processes died after loading counts as confirmed (see `abandoned_yes`)."""
    if meta.get("failed"):
        return f"its rollback failed ({meta['failed']})"
    if running(meta, proc):
        return ""
    return "its processes are gone (killed?), and no rollback runs"


def abandoned_yes(meta: Meta, proc: Path = procs.PROC) -> bool:
    """A `--yes` apply that finished loading and then died: nothing was to be confirmed."""
    return bool(meta.get("yes") and meta.get("loaded") and not meta.get("failed")) and not running(
        meta, proc
    )
