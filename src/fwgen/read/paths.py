"""Where files live: the shipped data, and the folders a file named inside another may use.

A profile, list or manifest from a pull request names other files (``extends:``,
``{file: ...}``, a manifest's ports and outputs). Those names are followed only
inside the folder tree of the file the user gave fwgen (the *home*), and inside
folders the user allowed with ``--allow-outside``: a pull request cannot make
fwgen read ``/etc/shadow`` or write ``../../etc/cron.d/x``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import posixpath
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from fwgen.errors import FwgenError

_PACKAGE = Path(__file__).resolve().parents[1]


def data_dir(name: str) -> Path:
    """``profiles`` or ``templates``: packaged copy first, then the checkout's top level."""
    packaged = _PACKAGE / name
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent.parent / name


def profiles_dir() -> Path:
    return data_dir("profiles")


def templates_dir() -> Path:
    return data_dir("templates")


@functools.cache
def profiles_real() -> Path:
    """The real path of the built-in profiles' folder (it never moves while fwgen runs)."""
    return real_path(profiles_dir())


_REAL: ContextVar[dict[str, Path] | None] = ContextVar("fwgen_real_paths", default=None)


@contextlib.contextmanager
def remembered_paths() -> Iterator[None]:
    """Within: `real_path` follows the links of each path once (a build names the same
    files for every host; the working directory stays where it is)."""
    token = _REAL.set({})
    try:
        yield
    finally:
        _REAL.reset(token)


def real_path(path: Path) -> Path:
    """*path* with every symlink followed (it need not exist); a NUL byte or a symlink
    loop is an error. A loop is caught here or, for the last link, when the file is opened."""
    text = str(path)
    if "\0" in text:
        raise FwgenError("a path contains a NUL byte")
    known = _REAL.get()
    if known is not None and text in known:
        return known[text]
    try:
        real = Path(os.path.realpath(path))
    except (OSError, ValueError, RuntimeError) as exc:
        raise FwgenError(f"cannot follow the path: {exc}") from None
    if known is not None:
        known[text] = real
    return real


def is_within(path: Path, folder: Path) -> bool:
    """Whether *path* is *folder* or below it (both real, or both as written)."""
    return path == folder or str(path).startswith(os.path.join(str(folder), ""))


def work_tree(folder: Path) -> Path | None:
    """The git work tree that holds *folder* (a real path): the nearest folder at or above
    it with a ``.git`` entry (a folder, or a file in a worktree or submodule); else None."""
    for candidate in (folder, *folder.parents):
        try:
            if os.path.lexists(candidate / ".git"):
                return candidate
        except (OSError, ValueError):
            continue
    return None


@dataclass(frozen=True)
class Origins:
    """How files are named in output and messages, whoever typed their path and however.

    Relative to the git work tree around the file the user named (a profile or a
    manifest), else to that file's folder; fwgen's own profiles are ``profiles/NAME.yaml``.
    So the same profile gives the same bytes from any directory and any spelling.
    """

    root: Path  # a real path
    prefix: str = ""  # put before each name (a profile checked out from git at a revision)

    @classmethod
    def around(cls, top_file: Path) -> Origins:
        folder = real_path(top_file.absolute().parent)
        return cls(work_tree(folder) or folder)

    @classmethod
    def checkout(cls, folder: Path) -> Origins:
        """Names for files extracted into *folder* from the git work tree around the working
        directory (paths in the extract are relative to that directory): as in the tree."""
        here = real_path(Path.cwd())
        tree = work_tree(here)
        prefix = Path(os.path.relpath(here, tree)).as_posix() if tree else ""
        return cls(real_path(folder), "" if prefix == "." else prefix)

    def name(self, path: Path) -> str:
        """The stable name of *path*: its folder's real path (the file itself is not followed,
        like `Boundary.around`) relative to the root, with ``/`` between parts."""
        folder = real_path(path.absolute().parent)
        builtin = profiles_real()
        if is_within(folder, builtin):
            return f"profiles/{(folder / path.name).relative_to(builtin).as_posix()}"
        try:
            relative = os.path.relpath(folder / path.name, self.root)
        except ValueError:  # another drive (Windows): the name is all that can be stable
            relative = path.name
        return posixpath.normpath(posixpath.join(self.prefix, Path(relative).as_posix()))


@dataclass(frozen=True)
class Boundary:
    """The folders that files named inside other files must stay in (real paths)."""

    home: Path
    allowed: tuple[Path, ...] = ()
    # every file read through `read`, so that `build` can refuse to write over one
    reads: set[Path] = field(default_factory=set, compare=False, hash=False)

    @classmethod
    def around(cls, top_file: Path, allowed: tuple[Path, ...] | list[Path] = ()) -> Boundary:
        """The folder of *top_file* (the profile or manifest the user named), and *allowed*.

        The folder is the one the file is named in, symlinks in it followed: names inside
        the file are relative to that folder, so a symlinked file does not move it.
        """
        return cls(real_path(top_file.parent), tuple(real_path(p) for p in allowed))

    def folder_of(self, real: Path) -> Path | None:
        """The boundary folder that holds the real path *real*, if any."""
        return next((f for f in (self.home, *self.allowed) if is_within(real, f)), None)

    def read(self, path: Path, what: str, shown: str) -> Path:
        """`check` a file about to be read, and remember it."""
        real = self.check(path, what, shown)
        self.reads.add(real)
        return real

    def check(self, path: Path, what: str, shown: str) -> Path:
        """The real path of *path*, or an error when it leads outside the boundary or into
        a ``.git`` folder. *shown* is how the referring file wrote it."""
        real = real_path(path)
        folder = self.folder_of(real)
        if folder is not None:
            # on a case-insensitive file system .GIT is the same folder; on Windows, .git.
            parts = real.relative_to(folder).parts
            if ".git" in (part.casefold().rstrip(". ") for part in parts):
                raise FwgenError(
                    f"{what} '{shown}' is inside a .git folder; fwgen never goes there"
                )
            return real
        raise FwgenError(
            f"{what} '{shown}' is outside {self.home}, the folder of the file that names it; "
            f"move it inside, or pass --allow-outside {real.parent} to allow that folder"
        )


def is_file(path: Path) -> bool:
    """Whether *path* is a file; false, not an error, for a name too long to be one."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False
