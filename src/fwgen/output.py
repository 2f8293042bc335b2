"""Writing results: atomically, so a reader never sees half a ruleset."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fwgen.errors import FwgenError


def write_atomic(path: Path, text: str) -> None:
    """Write *text* to *path* via a temporary file and a rename in the same directory.

    An existing file keeps its mode; on any error the previous file is untouched.
    """
    directory = path.parent if str(path.parent) else Path(".")
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    except OSError as exc:
        raise FwgenError(f"cannot write output: {exc.strerror}", path=str(path)) from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise FwgenError(f"cannot write output: {exc.strerror}", path=str(path)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise FwgenError(f"cannot write output: {exc.strerror}", path=str(path)) from None
        raise


def destinations(files: dict[str, str], destination: Path) -> dict[Path, str]:
    """Where rendered files go: one file is *destination* itself, several go into it as a directory."""
    if len(files) == 1:
        return {destination: next(iter(files.values()))}
    return {destination / name: text for name, text in files.items()}


def write_outputs(files: dict[str, str], destination: Path) -> list[Path]:
    """Write rendered files to their destinations (see `destinations`).

    Everything is rendered before anything is written, so an error writes nothing.
    """
    targets = destinations(files, destination)
    if len(files) > 1:
        if destination.exists() and not destination.is_dir():
            raise FwgenError(
                "this target writes several files; -o must name a directory", path=str(destination)
            )
        destination.mkdir(parents=True, exist_ok=True)
    for path, text in targets.items():
        write_atomic(path, text)
    return list(targets)


def to_stdout(files: dict[str, str]) -> str:
    """One file as it is; several each headed by ``# ==> NAME <==``."""
    if len(files) == 1:
        return next(iter(files.values()))
    return "\n".join(f"# ==> {name} <==\n{text}" for name, text in files.items())
