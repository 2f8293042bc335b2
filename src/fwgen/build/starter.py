"""`fwgen init`: a built-in profile copied into a site folder as the start of a site profile.

The copy is the built-in file byte for byte, with a header that says where it came from
and a comment line above each network and interface group a user must set (the
placeholders `fwgen profiles` lists), so that the copy resolves to the same rules as the
built-in. It is written only where nothing is: never over a file, never through a
symbolic link, and whole or not at all.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from fwgen.errors import FwgenError, did_you_mean, printable
from fwgen.policy.placeholders import placeholder_networks
from fwgen.policy.resolve import resolve_profile
from fwgen.profile.load import builtin_profiles, load_profile
from fwgen.read.yamlsource import read_text

MARK = "fwgen init:"
SUFFIXES = (".yaml", ".yml")


def starter_text(name: str) -> str:
    """The built-in profile *name* with its placeholders marked."""
    builtins = builtin_profiles()
    if name not in builtins:
        raise FwgenError(
            f"unknown built-in profile '{printable(name)}'{did_you_mean(name, builtins)}; "
            f"choose one of {', '.join(builtins)} (`fwgen profiles` says what each is for)"
        )
    shown = f"profiles/{builtins[name].name}"
    text = read_text(builtins[name], shown)
    policy = resolve_profile(name)
    networks = placeholder_networks(policy)
    interfaces = [g.name for g in policy.interface_groups if g.placeholder]
    merged = load_profile(name)
    rows = text.split("\n")
    marks: dict[int, str] = {}  # line index → the comment above it
    elsewhere = []
    for kind, names, found in (
        ("network", networks, merged.networks),
        ("interface group", interfaces, merged.interfaces),
    ):
        for item in names:
            located = found.get(item)
            if located is None or located.file != shown:
                where = f" (from {located.file})" if located is not None else ""
                elsewhere.append(f"{kind} {item}{where}")
                continue
            marks[located.line - 1] = _mark(kind, item, located.value)
    out = _header(name, networks, interfaces, elsewhere)
    for index, row in enumerate(rows):
        if index in marks:
            indent = row[: len(row) - len(row.lstrip(" "))]
            out.append(f"{indent}# {marks[index]}")
        out.append(row)
    return "\n".join(out)


def _mark(kind: str, name: str, value: list[str]) -> str:
    if kind == "network":
        now = "empty now" if not value else "documentation placeholders now, they match no host"
        return f"{MARK} set {name} to your own addresses ({now})"
    return f"{MARK} set {name} to this host's interfaces, e.g. [eth1] (empty now: admits no one)"


def _header(
    name: str, networks: list[str], interfaces: list[str], elsewhere: list[str]
) -> list[str]:
    lines = [f"# A site profile, started from fwgen's built-in profile {name} (fwgen init {name})."]
    needs = [f"networks: {', '.join(networks)}"] if networks else []
    needs += [f"interface groups: {', '.join(interfaces)}"] if interfaces else []
    if not needs:
        return [*lines, "# Nothing in it is a placeholder; edit it to fit the host.", "#"]
    lines += [
        f'# Until you set these, the rules that use them admit no one ("{MARK}" below):',
        f"#   {'; '.join(needs)}",
        "# Set them here, or per host: --set NAME=CIDR[,CIDR...] (in a manifest, `set:`).",
    ]
    if elsewhere:
        lines.append(f"# Written in a profile it extends: {', '.join(elsewhere)}.")
    return [*lines, "#"]


def destination(dest: Path, name: str) -> Path:
    """The file `fwgen init NAME DEST` writes: DEST itself when it names a .yaml file, else
    NAME.yaml in the folder DEST (made when missing; its parent must exist)."""
    text = str(dest)
    if not text.isprintable() or not text.strip():
        raise FwgenError(
            f"DEST {printable(text)!r} holds a character that is not printable (a line break, "
            "a control or separator character): give a plain file or folder name"
        )
    if dest.name.endswith(SUFFIXES):
        _refuse_link(dest)
        return dest
    _refuse_link(dest)
    found = _lstat(dest)
    if found is not None and not stat.S_ISDIR(found.st_mode):
        raise FwgenError(
            f"{text}: exists and is not a folder; fwgen init writes NAME.yaml into a folder, "
            "or a new file DEST ending in .yaml"
        )
    return dest / f"{name}.yaml"


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FwgenError(f"{printable(str(path))}: {exc.strerror}") from None


def _refuse_link(path: Path) -> None:
    found = _lstat(path)
    if found is not None and stat.S_ISLNK(found.st_mode):
        raise FwgenError(
            f"{printable(str(path))}: is a symbolic link; fwgen init writes only where you "
            "name it: give the folder or file the link points to"
        )


def write_new(path: Path, text: str) -> None:
    """Write *text* to a new file *path*: refused when anything is there (a file, a
    folder, a link, even a dangling one); the file appears whole or not at all."""
    shown = printable(str(path))
    if _lstat(path) is not None:
        raise FwgenError(
            f"{shown}: already exists; fwgen init never overwrites: remove it, or give another DEST"
        )
    folder = path.parent
    if _lstat(folder) is None and _lstat(folder.parent) is not None:
        _make_folder(folder)
    try:
        fd, temporary = tempfile.mkstemp(prefix=".fwgen-init.", suffix=".tmp", dir=folder)
    except FileNotFoundError:
        raise FwgenError(f"{shown}: its folder does not exist; make it first") from None
    except OSError as exc:
        raise FwgenError(f"{shown}: cannot write: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.link(temporary, path)  # never replaces what is there, a link included
    except FileExistsError:
        raise FwgenError(f"{shown}: already exists; fwgen init never overwrites") from None
    except OSError as exc:
        raise FwgenError(f"{shown}: cannot write: {exc.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(mode=0o755)
    except FileExistsError:
        pass
    except OSError as exc:
        raise FwgenError(
            f"{printable(str(folder))}: cannot make the folder: {exc.strerror}"
        ) from None
