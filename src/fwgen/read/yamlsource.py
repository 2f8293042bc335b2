"""Read a YAML document into plain data while remembering the line of every value.

Profiles are small and written by people, so the reader is strict: one document,
string keys, no duplicate keys, no anchors or aliases (which also rules out the
"billion laughs" expansion), UTF-8 text only, and a size cap.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from fwgen.errors import ProfileError, printable
from fwgen.read.once import read_once

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 16  # the deepest real nesting (a port file entry's ports) is 4
Loc = tuple[str | int, ...]

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _Loader = yaml.SafeLoader


@dataclass
class Document:
    """Plain data (dicts, lists, scalars) and the 1-based line of each value by its location."""

    data: Any
    path: str
    lines: dict[Loc, int] = field(default_factory=dict)
    source: Path | None = None  # the real file, for paths relative to it

    def line(self, loc: Loc) -> int:
        """Line of the value at *loc*, or of its nearest enclosing value."""
        loc = tuple(loc)
        while loc not in self.lines and loc:
            loc = loc[:-1]
        return self.lines.get(loc, 1)


def read_text(path: Path, display: str, what: str = "profile", limit: int = MAX_BYTES) -> str:
    """The text of a regular file, or a one-line error that says why it cannot be read.

    This is the one way fwgen reads what a user or a pull request gives it. Only a
    regular file is read (a FIFO, device or socket could hang or never end), at most
    *limit* bytes, as UTF-8; the text must pass `check_text`. ``\\r\\n`` line ends
    become ``\\n``. Inside `fwgen.read.once.one_reading`, a file is read once.
    """
    return read_once(
        path,
        what,
        limit,
        lambda: decode_text(_read_regular(path, display, what, limit), display, what),
    )


def decode_text(raw: bytes, display: str, what: str) -> str:
    """Bytes read from a file or a pipe as checked text (see `read_text`)."""
    if b"\0" in raw:
        raise ProfileError(f"{what} file is binary, not text", path=display, line=1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ProfileError(f"{what} file is not UTF-8 text", path=display, line=line) from None
    return check_text(text.removeprefix("\ufeff").replace("\r\n", "\n"), display)


_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def read_stream(stream: BinaryIO, display: str, what: str, limit: int) -> str:
    """At most *limit* bytes of a pipe (standard input) as checked text."""
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise ProfileError(f"{what} is larger than {_size(limit)}", path=display)
    return decode_text(raw, display, what)


def _read_regular(path: Path, display: str, what: str, limit: int) -> bytes:
    """At most *limit* bytes of a regular file; opened without blocking, so a FIFO
    is refused instead of waited on."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ProfileError(f"{what} file not found", path=display) from None
    except PermissionError:
        raise ProfileError(
            f"{what} file is not readable (permission denied)", path=display
        ) from None
    except ValueError:  # a NUL byte in the path
        raise ProfileError(f"{what} path contains a NUL byte", path=display) from None
    except OSError as exc:
        reason = "a symlink loop" if exc.errno == errno.ELOOP else exc.strerror
        raise ProfileError(f"cannot read {what} file: {reason}", path=display) from None
    try:
        found = os.fstat(fd)
        kind = stat.S_IFMT(found.st_mode)
        if kind != stat.S_IFREG:
            raise ProfileError(
                f"{what} path is {_KINDS.get(kind, 'not a regular file')}, not a file",
                path=display,
            )
        if found.st_size > limit:  # refused unread
            raise _too_large(what, limit, display)
        chunks, size = [], 0
        while size <= limit:  # a file that grows while it is read stops here too
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ProfileError(f"cannot read {what} file: {exc.strerror}", path=display) from None
    finally:
        os.close(fd)
    if size > limit:
        raise _too_large(what, limit, display)
    return b"".join(chunks)


def _too_large(what: str, limit: int, display: str) -> ProfileError:
    return ProfileError(
        f"{what} file is larger than {_size(limit)}; is this the right file?", path=display
    )


def _size(limit: int) -> str:
    return f"{limit // (1 << 20)} MiB" if limit >= 1 << 20 else f"{limit // 1024} KiB"


_ASCII_BAD = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_ASCII_SAFE = bytes([9, 10, *range(0x20, 0x7F)])  # every ASCII byte _ASCII_BAD is not


def first_unsafe(text: str) -> int | None:
    """Index of the first character that is not printable, a tab or ``\\n``; None if none."""
    if text.isascii() and not text.encode("ascii").translate(None, _ASCII_SAFE):
        return None  # the usual answer, at C speed: no byte is left once the safe ones go
    first = _ASCII_BAD.search(text)
    at = first.start() if first else len(text)
    if not text.isascii():
        for match in _NON_ASCII.finditer(text, 0, at):
            if not match.group().isprintable():
                at = match.start()
                break
    return None if at == len(text) else at


def describe_char(char: str) -> str:
    """``U+2028 (LINE SEPARATOR)``."""
    return f"U+{ord(char):04X} ({unicodedata.name(char, 'a control character')})"


def check_text(text: str, display: str) -> str:
    """*text* when every character is printable, a tab or a ``\\n``; otherwise an error
    naming the first other character and its line.

    Text that people review must mean what it shows. YAML also ends lines at
    ``\\r``, U+0085, U+2028 and U+2029, and Python's ``splitlines`` at those and at
    ``\\v``, ``\\f`` and ``\\x1c``-``\\x1e``, so such a character could hide a rule in what
    looks like a comment; bidi controls could reorder what a reviewer sees.
    """
    at = first_unsafe(text)
    if at is None:
        return text
    raise ProfileError(
        f"{describe_char(text[at])} is not allowed: only printable text, tabs and "
        "line ends (\\n or \\r\\n); remove it or write it as an escape in a quoted string",
        path=display,
        line=text.count("\n", 0, at) + 1,
    )


def lines(text: str) -> Iterator[tuple[int, str]]:
    """(number, line) for the ``\\n``-separated lines of checked text, one at a time."""
    start, number = 0, 1
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        yield number, text[start:end]
        start, number = end + 1, number + 1


def parse(text: str, display: str) -> Document:
    """Parse one YAML document from *text*; *display* names it in messages."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        rows = text.split("\n")
        source = rows[line - 1] if line and 0 < line <= len(rows) else ""
        if "\t" in source[: len(source) - len(source.lstrip())]:
            problem = "a tab character in the indentation; indent YAML with spaces"
        elif "nesting depth" in problem:  # PyYAML 6.0.4 and later stop deep nesting themselves
            raise _too_deep(display, line or 1) from None
        raise ProfileError(f"invalid YAML: {problem}", path=display, line=line) from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"invalid YAML: {exc}", path=display) from None
    doc = Document(None, display)
    if node is None:
        return doc
    doc.data = _build(node, (), doc, set())
    return doc


def _too_deep(display: str, line: int) -> ProfileError:
    return ProfileError(
        f"values are nested more than {MAX_DEPTH} levels deep; no fwgen file needs that",
        path=display,
        line=line,
    )


def _build(node: yaml.Node, loc: Loc, doc: Document, seen: set[int]) -> Any:
    line = node.start_mark.line + 1
    if len(loc) > MAX_DEPTH:
        raise _too_deep(doc.path, line)
    if id(node) in seen:
        raise ProfileError(
            "YAML anchors and aliases are not supported; write the value out",
            path=doc.path,
            line=line,
        )
    seen.add(id(node))
    doc.lines[loc] = line
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if (
                not isinstance(key_node, yaml.ScalarNode)
                or key_node.tag == "tag:yaml.org,2002:merge"
            ):
                raise ProfileError(
                    "mapping keys must be plain names",
                    path=doc.path,
                    line=key_node.start_mark.line + 1,
                )
            key = str(_scalar(key_node, doc))
            key_loc = (*loc, key)
            if key in result:
                raise ProfileError(
                    f"duplicate key '{key}' (first given on line {doc.lines[key_loc]})",
                    path=doc.path,
                    line=key_node.start_mark.line + 1,
                )
            result[key] = _build(value_node, key_loc, doc, seen)
            doc.lines[key_loc] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*loc, i), doc, seen) for i, item in enumerate(node.value)]
    return _scalar(node, doc)


_constructor = yaml.constructor.SafeConstructor()


_PLAIN_TAGS = {f"tag:yaml.org,2002:{kind}" for kind in ("str", "int", "float", "bool", "null")}


def _tag(node: yaml.Node) -> str:
    """``!!int`` for YAML's own tags, the tag as written (made printable) for others."""
    tag = str(node.tag).replace("tag:yaml.org,2002:", "!!", 1)
    return printable(tag)[:40]


def _scalar(node: yaml.Node, doc: Document) -> Any:
    if node.tag not in _PLAIN_TAGS:
        raise ProfileError(
            f"a value tagged {_tag(node)} is not something fwgen reads; write plain text, a number, "
            "true/false, or quote the value",
            path=doc.path,
            line=node.start_mark.line + 1,
        )
    try:
        return _constructor.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        problem = exc.problem or "cannot read this value"
        raise ProfileError(
            f"invalid YAML: {problem}", path=doc.path, line=node.start_mark.line + 1
        ) from None
    except (ValueError, OverflowError, LookupError):  # a 5,000-digit integer, `!!bool maybe`
        raise ProfileError(
            f"cannot read the value '{str(node.value)[:20]}...' as {_tag(node)}"
            + ("; is it a number that long?" if str(node.value).isdigit() else ""),
            path=doc.path,
            line=node.start_mark.line + 1,
        ) from None
