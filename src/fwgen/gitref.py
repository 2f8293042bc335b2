"""Profiles as they were at a git revision: ``REV:path`` (e.g. ``origin/main:site/web.yaml``)."""

from __future__ import annotations

import os
import re
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path, PurePosixPath

from fwgen import runner
from fwgen.errors import FwgenError, printable
from fwgen.paths import is_file

MAX_ARCHIVE = 128 * 1024 * 1024
REV_PATH = re.compile(r"(?P<rev>[^:\s]+):(?P<path>[^:\s]+\.ya?ml)")
# What a branch, tag, commit or reflog expression looks like; never an option (a leading "-").
REV = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./@{}~^+-]{0,199}")


def is_git_ref(ref: str) -> bool:
    return bool(REV_PATH.fullmatch(ref)) and not is_file(Path(ref))


def checkout_profile(ref: str, into: Path) -> str:
    """Extract the profile's directory at REV into *into*; return the profile's path there.

    The whole directory comes along, so `extends:` finds its siblings as they were. Links
    that would point outside it (absolute, or through ``..``) are not extracted.
    """
    match = REV_PATH.fullmatch(ref)
    assert match is not None
    rev, path = match.group("rev"), PurePosixPath(match.group("path"))
    if not REV.fullmatch(rev):
        raise FwgenError(f"{ref}: {rev!r} is not a git revision (a branch, tag or commit)")
    if path.is_absolute() or ".." in path.parts:
        raise FwgenError(f"{ref}: give the path from the top of the repository, without '..'")
    archive = _archive(ref, rev, str(path.parent))
    skipped = _extract(archive, into)
    target = into / path
    if not target.is_file():
        why = " (a link pointing outside its folder, which fwgen does not follow)"
        why = why if str(path) in skipped else ""
        raise FwgenError(f"{ref}: no such file at that revision{why}")
    return str(target)


def _archive(ref: str, rev: str, folder: str) -> bytes:
    """``git archive`` of *folder* at *rev*, refused past `MAX_ARCHIVE` bytes (a folder of
    profiles and lists is far smaller; a pull request could add gigabytes beside it)."""
    command = ["git", "archive", "--format=tar", "--end-of-options", rev, folder]
    try:
        with runner.popen(command, cwd=os.getcwd()) as git:
            assert git.stdout is not None and git.stderr is not None
            archive = git.stdout.read(MAX_ARCHIVE + 1)
            if len(archive) > MAX_ARCHIVE:
                git.kill()
                raise FwgenError(
                    f"{ref}: the profile's folder at that revision holds more than "
                    f"{MAX_ARCHIVE:,} bytes; fwgen reads a folder of profiles and lists"
                )
            errors = git.stderr.read(64 * 1024)
    except FileNotFoundError:
        raise FwgenError(f"{ref}: git is not installed") from None
    if git.returncode:
        message = errors.decode(errors="replace").strip().splitlines()
        reason = printable(message[-1]) if message else ""
        raise FwgenError(f"{ref}: git cannot read it ({reason or 'unknown error'})")
    return archive


def _extract(archive: bytes, into: Path) -> list[str]:
    """Extract what tar's "data" filter allows; the names of the members it refused."""
    skipped = []
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        for member in tar:
            try:
                tar.extract(member, into, filter="data")
            except tarfile.FilterError:
                skipped.append(member.name)
    return skipped


def temporary_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="fwgen-git-")
