"""Writing results: all files of a run or none, and only ever onto regular files.

A write first looks at every destination (symlinks followed: fwgen writes the file a
link names, never replaces the link), then writes and syncs a temporary file beside
each, then renames them all into place. Several files are kept as backups until every
rename has succeeded, so a failure leaves the old files, never half a ruleset.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import secrets
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fwgen import stopping
from fwgen.errors import FwgenError
from fwgen.read.paths import Boundary, real_path

NEW_FILE_MODE = 0o644
NEW_SCRIPT_MODE = 0o755  # fwgen-iptables.sh and fwgen-ufw.sh are run by their path
SCRIPT_SHEBANGS = ("#!/bin/sh\n", "#!/usr/bin/env bash\n")
KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}
TO_STDOUT = "leave out -o to write to standard output"


def new_file_mode(text: str) -> int:
    """The mode of a new file: 0755 for a shell script, which is run by its path; else 0644."""
    return NEW_SCRIPT_MODE if text.startswith(SCRIPT_SHEBANGS) else NEW_FILE_MODE


def kind(mode: int) -> str:
    """What a stat mode says a path is, as a noun: ``a FIFO``."""
    return KINDS.get(stat.S_IFMT(mode), "not a regular file")


@dataclass(frozen=True)
class Destination:
    """Where a file is written: as the user or manifest named it, and really."""

    shown: Path
    real: Path
    mode: int | None  # the permission bits of the file there now; None when there is none

    def error(self, message: str) -> FwgenError:
        return FwgenError(message, path=str(self.shown))


def _stat(path: Path, shown: Path, doing: str) -> os.stat_result | None:
    """``os.stat`` (links followed, as the kernel follows them); None when nothing is there."""
    try:
        real_path(path)  # a NUL byte or a symlink loop
        return os.stat(path)
    except FwgenError as exc:
        raise FwgenError(exc.message, path=str(shown)) from None
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise FwgenError(
            f"cannot {doing}: a folder on the way is a file", path=str(shown)
        ) from None
    except OSError as exc:
        raise FwgenError(f"cannot {doing}: {exc.strerror}", path=str(shown)) from None


def destination(path: Path) -> Destination:
    """Where writing *path* really goes, and the mode of the regular file there now.

    Anything but a regular file (a directory, device, FIFO, socket) is an error: fwgen
    would otherwise replace ``/dev/null`` or write a world-writable file for a pipe.
    """
    shown = path
    found = _stat(path, shown, "write output")
    real = real_path(path)
    if found is None:
        return Destination(shown, real, None)
    if not stat.S_ISREG(found.st_mode):
        hint = "" if stat.S_ISDIR(found.st_mode) else f" ({TO_STDOUT})"
        raise FwgenError(
            f"is {kind(found.st_mode)}, not a regular file; fwgen replaces only regular files{hint}",
            path=str(shown),
        )
    there = _stat(real, shown, "write output")
    if there is None or (there.st_dev, there.st_ino) != (found.st_dev, found.st_ino):
        raise FwgenError(f"cannot tell which file this names (it leads to {real})", path=str(shown))
    return Destination(shown, real, stat.S_IMODE(found.st_mode))


def check_folder(path: Path, files: Iterable[str] = ()) -> None:
    """A target that writes several files needs *path* to be a folder, or nothing yet.

    Given the *files* (`render -o`), a new path named like a file (``rules.v4``: a name
    with a dot) is refused too, rather than made a folder holding ``rules.v4``."""
    found = _stat(path, path, "write output")
    if found is not None and not stat.S_ISDIR(found.st_mode):
        raise FwgenError(
            "this target writes several files; -o must name a directory", path=str(path)
        )
    names = list(files)
    if found is None and names and "." in path.name.lstrip("."):
        raise FwgenError(
            f"-o names a file, but this target writes {len(names)} files ({', '.join(names)}) "
            "into a folder: give a folder (a new one is named without a dot), or --family "
            "to write one family's file",
            path=str(path),
        )


def needs_file_name(written: str, file: str, target: str = "this target") -> str | None:
    """Why *written* cannot name the one *file* a target writes: it ends as a folder does
    (``out/``, ``out/.``), which pathlib would turn into a file named like the folder."""
    last = written.replace(os.sep, "/").rsplit("/", 1)[-1]
    if last not in ("", ".", ".."):
        return None
    folder = written if written.endswith(("/", os.sep)) or not written else f"{written}/"
    return f"names a folder, but {target} writes one file: give a file name, such as {folder}{file}"


def read_current(path: Path, limit: int) -> bytes | None:
    """The first *limit* bytes of the file at *path*, or None when there is none.

    Only a regular file is read (opened without blocking, so a FIFO cannot hang fwgen);
    a directory, a device or an unreadable file is an error.
    """
    found = _stat(path, path, "read the current file")
    if found is None:
        return None
    if not stat.S_ISREG(found.st_mode):
        hint = "; name the generated file" if stat.S_ISDIR(found.st_mode) else ""
        raise FwgenError(f"is {kind(found.st_mode)}, not a regular file{hint}", path=str(path))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except PermissionError:
        raise FwgenError(
            "the current file is not readable (permission denied)", path=str(path)
        ) from None
    except OSError as exc:
        raise FwgenError(f"cannot read the current file: {exc.strerror}", path=str(path)) from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise FwgenError("is not a regular file", path=str(path))
        try:
            return handle.read(limit)
        except OSError as exc:
            raise FwgenError(
                f"cannot read the current file: {exc.strerror}", path=str(path)
            ) from None


def shown_text(data: bytes) -> str:
    """Bytes as text a terminal shows as they are: undecodable bytes and control or
    invisible characters (escape sequences, bidi overrides, a carriage return) escaped."""
    text = data.decode("utf-8", errors="backslashreplace")

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        return char if char.isprintable() else char.encode("unicode_escape").decode("ascii")

    return re.sub(r"[^\n\t\x20-\x7e]", escape, text)


# -------------------------------------------------------------- writing


def write_atomic(path: Path, text: str) -> None:
    """Write *text* to *path*, making missing folders (see `write_outputs`)."""
    write_outputs({path.name: text}, path)


def write_files(
    files: Mapping[Path, str], *, boundary: Boundary | None = None, folders: Boundary | None = None
) -> None:
    """Write every file or none. Keys are paths as the user or a manifest named them.

    With *boundary*, every file must really be inside it. Missing folders are made only
    inside *folders* (default: *boundary*); elsewhere the folder must exist.
    A new file gets mode 0644 (a shell script 0755); an existing one keeps its mode.
    """
    plan = [(destination(path), text) for path, text in files.items()]
    seen: dict[Path, Destination] = {}
    for dest, _ in plan:
        if boundary is not None:
            try:
                boundary.check(dest.real, "output", str(dest.shown))
            except FwgenError as exc:
                raise dest.error(exc.message) from None
        if dest.real in seen:
            raise dest.error(f"is the same file as {seen[dest.real].shown}; give each its own")
        seen[dest.real] = dest
    made: list[Path] = []
    temporaries: list[Path] = []
    try:
        for dest, _ in plan:
            _make_folder(dest, folders if folders is not None else boundary, made)
        batch = len(plan) > 1 and sync_file_systems([])  # syncfs(2) is there
        for dest, text in plan:
            with stopping.held():  # made and noted as one step, so the cleanup below sees it
                temporaries.append(_temporary(dest, text, sync=not batch))
        if batch and not sync_file_systems(temporaries):
            for tmp in temporaries:
                _fsync(tmp)
        with stopping.held():  # Ctrl-C now would leave some files new and some old
            _replace_all([dest for dest, _ in plan], temporaries)
    except BaseException:
        for tmp in temporaries:
            with contextlib.suppress(OSError):
                tmp.unlink()
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _make_folder(dest: Destination, inside: Boundary | None, made: list[Path]) -> None:
    """Make the folder *dest* goes into when it is missing and inside *inside*."""
    folder = dest.real.parent
    if folder.is_dir():
        if not os.access(folder, os.W_OK | os.X_OK):
            raise dest.error(f"the folder {folder} is not writable")
        return
    top = inside.folder_of(folder) if inside is not None else None
    if top is None or not top.is_dir():
        missing = folder
        while missing.parent != missing and not missing.parent.exists():
            missing = missing.parent
        raise dest.error(f"the folder {missing} does not exist; create it first")
    for part in folder.relative_to(top).parts:
        top = top / part
        try:
            top.mkdir()
        except FileExistsError:
            if not top.is_dir():
                raise dest.error(f"cannot make the folder {top}: a file is there") from None
            continue
        except OSError as exc:
            raise dest.error(f"cannot make the folder {top}: {exc.strerror}") from None
        made.append(top)


def sync_file_systems(paths: list[Path]) -> bool:
    """Make everything written to the file systems of *paths* durable, with one syncfs(2)
    each instead of one fsync per file (a build of a thousand hosts spent most of its
    time in fsync); False where syncfs is not available (then fsync each file)."""
    syncfs = getattr(_libc(), "syncfs", None) if sys.platform == "linux" else None
    if syncfs is None:
        return False
    done: set[int] = set()
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            if os.fstat(fd).st_dev not in done and syncfs(fd) != 0:
                return False
            done.add(os.fstat(fd).st_dev)
        finally:
            os.close(fd)
    return True


@functools.cache
def _libc() -> object:
    with contextlib.suppress(OSError, ImportError):
        import ctypes  # only for a build of many files, on Linux: no cost to a render

        return ctypes.CDLL(None, use_errno=True)
    return None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary(dest: Destination, text: str, sync: bool = True) -> Path:
    """A temporary file with *text* beside *dest*, with the mode *dest* will have; synced
    unless *sync* is false (the caller syncs it)."""
    try:
        fd, name = tempfile.mkstemp(prefix=_hidden(dest, ""), suffix=".tmp", dir=dest.real.parent)
    except OSError as exc:
        raise dest.error(f"cannot write output: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.chmod(name, new_file_mode(text) if dest.mode is None else dest.mode)
    except BaseException as exc:
        Path(name).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise dest.error(f"cannot write output: {exc.strerror}") from None
        raise
    return Path(name)


def _hidden(dest: Destination, suffix: str) -> str:
    """A hidden name beside *dest* (its name cut short: the whole may not exceed 255 bytes)."""
    return f".{dest.real.name[:32]}.{suffix}"


def _replace_all(dests: list[Destination], temporaries: list[Path]) -> None:
    """Rename each temporary onto its destination; on a failure put the old files back."""
    backups: dict[int, Path] = {}
    replaced: list[int] = []
    try:
        if len(dests) > 1:
            for i, dest in enumerate(dests):
                if dest.mode is not None:
                    backups[i] = _backup(dest)
        for i, (dest, tmp) in enumerate(zip(dests, temporaries, strict=True)):
            try:
                os.replace(tmp, dest.real)
            except OSError as exc:
                failure = dest.error(f"cannot write output: {exc.strerror}")
                raise _put_back(dests, replaced, backups, failure) from None
            replaced.append(i)
    finally:
        for backup in backups.values():
            with contextlib.suppress(OSError):
                backup.unlink()
    _sync_folders(dests)


def _backup(dest: Destination) -> Path:
    """A second name for the old file: a hard link, or a copy where links are not possible."""
    backup = dest.real.parent / _hidden(dest, f"{secrets.token_hex(8)}.old")
    try:
        os.link(dest.real, backup)
    except OSError:
        try:
            fd, name = tempfile.mkstemp(prefix=_hidden(dest, ""), suffix=".old", dir=backup.parent)
            with os.fdopen(fd, "wb") as copy, dest.real.open("rb") as old:
                shutil.copyfileobj(old, copy)
            backup = Path(name)
            if dest.mode is not None:
                os.chmod(backup, dest.mode)
        except OSError as exc:
            raise dest.error(f"cannot keep the old file while writing: {exc.strerror}") from None
    return backup


def _put_back(
    dests: list[Destination], replaced: list[int], backups: dict[int, Path], failure: FwgenError
) -> FwgenError:
    """Undo the renames done so far: the old file back, or a new file removed.

    Returns *failure*, extended by what could not be undone (its backup is then kept).
    """
    lost: list[str] = []
    for i in reversed(replaced):
        dest = dests[i]
        try:
            if i in backups:
                os.replace(backups[i], dest.real)
                del backups[i]
            else:
                dest.real.unlink()
        except OSError as exc:
            kept = backups.pop(i, None)
            lost.append(
                f"could not put back {dest.shown} ({exc.strerror})"
                + (f"; the previous file is kept as {kept}" if kept else "")
            )
    if lost:
        return FwgenError(f"{failure.message}; {'; '.join(lost)}", path=failure.path)
    return failure


def _sync_folders(dests: list[Destination]) -> None:
    """Make the renames durable (POSIX; where a folder cannot be synced, skip it)."""
    for folder in {dest.real.parent for dest in dests}:
        with contextlib.suppress(OSError, AttributeError):
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


# -------------------------------------------------------------- render -o


def destinations(files: dict[str, str], destination: Path) -> dict[Path, str]:
    """Where rendered files go: one file is *destination* itself, several go into it as a directory."""
    if len(files) == 1:
        return {destination: next(iter(files.values()))}
    return {destination / name: text for name, text in files.items()}


def write_outputs(files: dict[str, str], destination: Path) -> list[Path]:
    """Write rendered files to their destinations (see `destinations`), all or none.

    *destination* is a path the user typed (``-o``): the folders it needs are made when
    they are missing (and removed again when the write fails). Everything is rendered
    before anything is written.
    """
    if len(files) > 1:
        check_folder(destination, files)
    targets = destinations(files, destination)
    write_files(targets, folders=Boundary(_existing(real_path(destination.absolute()).parent)))
    return list(targets)


def _existing(folder: Path) -> Path:
    """*folder*, or the nearest folder above it that exists."""
    while not folder.is_dir() and folder.parent != folder:
        folder = folder.parent
    return folder


def is_stdout(path: Path | None) -> bool:
    """Whether ``-o`` names standard output: left out, or ``-``."""
    return path is None or str(path) == "-"


def emit(files: dict[str, str], output: Path | None) -> None:
    """Rendered files to ``-o`` (see `write_outputs`), or to standard output for ``-o -``
    or none (see `to_stdout`)."""
    if is_stdout(output):
        sys.stdout.write(to_stdout(files))
        sys.stdout.flush()
    else:
        assert output is not None
        write_outputs(files, output)


def to_stdout(files: dict[str, str]) -> str:
    """One file as it is; several each headed by ``# ==> NAME <==``."""
    if len(files) == 1:
        return next(iter(files.values()))
    return "\n".join(f"# ==> {name} <==\n{text}" for name, text in files.items())
