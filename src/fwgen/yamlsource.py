"""Read a YAML document into plain data while remembering the line of every value.

Profiles are small and written by people, so the reader is strict: one document,
string keys, no duplicate keys, no anchors or aliases (which also rules out the
"billion laughs" expansion), UTF-8 text only, and a size cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fwgen.errors import ProfileError

MAX_BYTES = 1024 * 1024
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
    """The file's text, or a one-line error that says why it cannot be read."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(limit + 1)
    except FileNotFoundError:
        raise ProfileError(f"{what} file not found", path=display) from None
    except IsADirectoryError:
        raise ProfileError(f"{what} path is a directory, not a file", path=display) from None
    except PermissionError:
        raise ProfileError(
            f"{what} file is not readable (permission denied)", path=display
        ) from None
    except OSError as exc:
        raise ProfileError(f"cannot read {what} file: {exc.strerror}", path=display) from None
    if len(raw) > limit:
        raise ProfileError(
            f"{what} file is larger than {limit // 1024} KiB; is this the right file?", path=display
        )
    if b"\0" in raw:
        raise ProfileError(f"{what} file is binary, not YAML text", path=display, line=1)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ProfileError(f"{what} file is not UTF-8 text", path=display, line=line) from None


def parse(text: str, display: str) -> Document:
    """Parse one YAML document from *text*; *display* names it in messages."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        lines = text.splitlines()
        source = lines[line - 1] if line and 0 < line <= len(lines) else ""
        if "\t" in source[: len(source) - len(source.lstrip())]:
            problem = "a tab character in the indentation; indent YAML with spaces"
        raise ProfileError(f"invalid YAML: {problem}", path=display, line=line) from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"invalid YAML: {exc}", path=display) from None
    doc = Document(None, display)
    if node is None:
        return doc
    doc.data = _build(node, (), doc, set())
    return doc


def _build(node: yaml.Node, loc: Loc, doc: Document, seen: set[int]) -> Any:
    line = node.start_mark.line + 1
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


def _scalar(node: yaml.Node, doc: Document) -> Any:
    try:
        return _constructor.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        problem = exc.problem or "cannot read this value"
        raise ProfileError(
            f"invalid YAML: {problem}", path=doc.path, line=node.start_mark.line + 1
        ) from None
