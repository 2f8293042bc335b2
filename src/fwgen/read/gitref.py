"""Profiles as they were at a git revision: ``REV:path`` (e.g. ``origin/main:site/web.yaml``).

Read through git's plumbing (``ls-tree`` and ``cat-file``), never ``git archive``: what a
revision holds is its tree, whatever its ``.gitattributes`` say (``export-ignore``,
``export-subst``, filters), since a pull request writes those too.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path, PurePosixPath

from fwgen import runner
from fwgen.errors import FwgenError, printable
from fwgen.read.paths import is_file, is_within

MAX_ARCHIVE = 128 * 1024 * 1024
GIT_TIMEOUT = 120  # seconds: git reads a folder of profiles, not a history
REV_PATH = re.compile(r"(?P<rev>[^:\s]+):(?P<path>[^:\s]+\.ya?ml)")
# What a branch, tag, commit or reflog expression looks like; never an option (a leading "-").
REV = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./@{}~^+-]{0,199}")
LINK, BLOB = "120000", "blob"


def is_git_ref(ref: str) -> bool:
    """Whether *ref* names a file at a git revision. A name that is also a file here is
    refused: a pull request could add ``origin/main:site/web.yaml`` (``:`` is allowed in
    names) to stand in for the revision it is compared with."""
    match = REV_PATH.fullmatch(ref)
    if match is None:
        return False
    if not is_file(Path(ref)):
        return True
    if REV.fullmatch(match.group("rev")):
        raise FwgenError(
            f"{ref}: is both a file here and {match.group('path')} at git revision "
            f"{match.group('rev')!r} (a pull request can add such a file); write ./{ref} "
            "for the file, or move it away for the revision"
        )
    return False


def checkout_profile(ref: str, into: Path) -> str:
    """Write the profile's directory at REV into *into*; return the profile's path there.

    The whole directory comes along, so `extends:` finds its siblings as they were. Links
    that would point outside it (absolute, or through ``..``) are not written.
    """
    match = REV_PATH.fullmatch(ref)
    assert match is not None
    rev, path = match.group("rev"), PurePosixPath(match.group("path"))
    if not REV.fullmatch(rev):
        raise FwgenError(f"{ref}: {rev!r} is not a git revision (a branch, tag or commit)")
    if path.is_absolute() or ".." in path.parts:
        raise FwgenError(f"{ref}: give the path from the top of the repository, without '..'")
    entries = _tree(ref, rev, str(path.parent))
    skipped = _write(ref, entries, into)
    target = into / path
    if not target.is_file():
        why = " (a link pointing outside its folder, which fwgen does not follow)"
        why = why if str(path) in skipped else ""
        raise FwgenError(f"{ref}: no such file at that revision{why}")
    return str(target)


def checkout_file(rev: str, path: str, into: Path) -> str:
    """Write one file (from the working directory's point of view, like *path* itself) as
    it was at *rev* into the folder *into*; return where. A link is refused, not followed."""
    shown = f"{rev}:{path}"
    if not REV.fullmatch(rev):
        raise FwgenError(f"{shown}: {rev!r} is not a git revision (a branch, tag or commit)")
    relative = os.path.relpath(path) if os.path.isabs(path) else path
    entries = _tree(shown, rev, relative)
    if len(entries) != 1 or entries[0][0] == LINK:
        raise FwgenError(f"{shown}: no such file at that revision (fwgen follows no link)")
    into.mkdir(parents=True, exist_ok=True)
    target = into / PurePosixPath(relative).name
    target.write_bytes(_blobs(shown, [entries[0][1]])[0])
    return str(target)


def _git(ref: str, *args: str, stdin: bytes = b"") -> bytes:
    """What ``git ARGS`` prints; a git that fails is one located error."""
    try:
        done = runner.run(["git", *args], data=stdin, timeout=GIT_TIMEOUT, cwd=os.getcwd())
    except FileNotFoundError:
        raise FwgenError(f"{ref}: git is not installed") from None
    except subprocess.TimeoutExpired:
        raise FwgenError(f"{ref}: git took over {GIT_TIMEOUT} s to read it") from None
    if done.returncode:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        reason = printable(message[-1]) if message else ""
        raise FwgenError(f"{ref}: git cannot read it ({reason or 'unknown error'})")
    return done.stdout


def _tree(ref: str, rev: str, folder: str) -> list[tuple[str, str, str]]:
    """(mode, object, path) of every file and link under *folder* at *rev*, refused past
    `MAX_ARCHIVE` bytes (a folder of profiles and lists is far smaller; a pull request
    could add gigabytes beside it)."""
    listing = _git(ref, "ls-tree", "-r", "-z", "--long", "--end-of-options", rev, "--", folder)
    entries, total = [], 0
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, name = record.partition(b"\t")
        mode, kind, obj, size = meta.decode("ascii").split()
        if kind != BLOB:  # a submodule: a commit of another repository, not a file
            continue
        total += int(size)
        if total > MAX_ARCHIVE:
            raise FwgenError(
                f"{ref}: the profile's folder at that revision holds more than "
                f"{MAX_ARCHIVE:,} bytes; fwgen reads a folder of profiles and lists"
            )
        entries.append((mode, obj, os.fsdecode(name)))
    return entries


def _blobs(ref: str, objects: list[str]) -> list[bytes]:
    """The raw contents of *objects*, in order: ``cat-file --batch`` applies no filter."""
    out = _git(ref, "cat-file", "--batch", stdin="".join(f"{o}\n" for o in objects).encode())
    contents, at = [], 0
    for obj in objects:
        end = out.find(b"\n", at)
        head = out[at:end].split()
        if end < 0 or len(head) != 3 or head[1] != b"blob":
            raise FwgenError(f"{ref}: git cannot read it (object {obj} is missing)")
        size = int(head[2])
        contents.append(out[end + 1 : end + 1 + size])
        at = end + 2 + size
    return contents


def _write(ref: str, entries: list[tuple[str, str, str]], into: Path) -> list[str]:
    """Write files, then links that stay inside *into*; the names of the links refused
    (absolute, or resolving outside *into*) and of paths that are no plain relative path."""
    skipped, links = [], []
    contents = _blobs(ref, [obj for _, obj, _ in entries])
    for (mode, _, name), content in zip(entries, contents, strict=True):
        parts = PurePosixPath(name).parts
        if not parts or PurePosixPath(name).is_absolute() or {"..", ".", ".git"} & set(parts):
            skipped.append(name)
            continue
        path = into.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        if mode == LINK:
            links.append((name, path, os.fsdecode(content)))
        else:
            path.write_bytes(content)
    for name, path, target in links:
        try:
            if os.path.isabs(target):
                raise ValueError(target)
            path.symlink_to(target)
        except (OSError, ValueError):  # absolute, or no name a link can hold
            skipped.append(name)
    home = Path(os.path.realpath(into))
    for name, path, _ in links:  # a chain of links is judged where it ends
        if path.is_symlink() and not is_within(Path(os.path.realpath(path)), home):
            path.unlink()
            skipped.append(name)
    return skipped


def temporary_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="fwgen-git-")
