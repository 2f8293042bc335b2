"""The documentation's reference parts, generated so that they cannot drift.

- ``docs/reference/{profile,manifest,ports}.md``: every key of the files users write,
  from the shipped JSON Schemas (themselves generated from the models);
- in ``docs/targets/<target>.md``, the block between ``<!-- generated: capabilities -->``
  and ``<!-- end generated -->``: the target's capabilities from the target registry;
- in ``docs/commands/<command>.md``, the block ``<!-- generated: help -->``: the
  command's ``--help`` (``<!-- generated: help shadow start -->``: a subcommand's);
- ``docs/changelog.md``: a copy of ``CHANGELOG.md`` (MkDocs reads only ``docs/``).

``python -m fwgen.cli.reference`` rewrites them from a clone of the repository (the docs
are not in the wheel); ``tests/cli/test_reference.py`` fails while they differ.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fwgen.cli.schema import KINDS, shipped
from fwgen.targets import TARGETS

DOCS = Path(__file__).resolve().parents[3] / "docs"
BLOCK = re.compile(
    r"(<!-- generated: (\w+)((?: [a-z-]+)*) -->\n)(.*?)(<!-- end generated -->)", re.DOTALL
)
HELP_WIDTH = 88

Schema = dict[str, Any]


def _resolve(spec: Schema, defs: dict[str, Schema]) -> Schema:
    ref = spec.get("$ref")
    return defs[ref.rsplit("/", 1)[-1]] if ref else spec


def _alternatives(spec: Schema) -> list[Schema]:
    return [s for s in spec.get("anyOf", [spec]) if s.get("type") != "null"]


def _shape(spec: Schema, defs: dict[str, Schema]) -> str:
    """What a value looks like, in a few words."""
    ref = spec.get("$ref")
    if ref:
        return f"{ref.rsplit('/', 1)[-1]} (below)"
    if "anyOf" in spec:
        shapes = list(dict.fromkeys(_shape(s, defs) for s in _alternatives(spec)))
        one, many = " or ".join(shapes[:-1]), shapes[-1]
        if one and many == f"a list of {one}":
            return f"{one}, or a list of them"
        return " or ".join(shapes)
    if "enum" in spec:
        return "one of " + ", ".join(f"`{v}`" for v in spec["enum"])
    kind = spec.get("type")
    if kind == "array":
        return f"a list of {_shape(spec.get('items', {}), defs)}"
    if kind == "object":
        if "properties" in spec:
            return "a mapping of " + ", ".join(f"`{k}`" for k in spec["properties"])
        values = spec.get("additionalProperties")
        if isinstance(values, dict):
            return f"a mapping of names to {_shape(values, defs)}"
        return "a mapping"
    if kind == "integer" and ("minimum" in spec or "maximum" in spec):
        return f"an integer {spec.get('minimum', '')}-{spec.get('maximum', '')}"
    if kind == "string" and "description" in spec and "pattern" in spec:
        return f"text ({spec['description']})"
    words = {"string": "text", "integer": "an integer", "boolean": "`true` or `false`"}
    return words.get(str(kind), "text" if "pattern" in spec else "any value")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _described(spec: Schema, defs: dict[str, Schema]) -> str:
    """The description of what *spec* refers to, for a key that has none of its own."""
    for alternative in _alternatives(spec):
        target = _resolve(alternative.get("items", alternative), defs)
        if target.get("description"):
            return str(target["description"])
    return ""


def _table(properties: dict[str, Schema], required: list[str], defs: dict[str, Schema]) -> str:
    rows = ["| key | value | default | what it is |", "| --- | --- | --- | --- |"]
    for key, spec in properties.items():
        if key in required:
            default = "required"
        elif "default" in spec and not isinstance(spec["default"], (dict, type(None))):
            default = f"`{json.dumps(spec['default'])}`"
        else:
            default = "-"
        description = spec.get("description") or _described(spec, defs)
        rows.append(f"| `{key}` | {_cell(_shape(spec, defs))} | {default} | {_cell(description)} |")
    return "\n".join(rows)


def _inline(node: object) -> Iterator[Schema]:
    """Objects with keys written inside other schemas (`{file: ...}` in a network)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for spec in value.values():
                    yield from _inline(spec)
                continue
            if isinstance(value, dict) and "properties" in value:
                yield value
            yield from _inline(value)
    elif isinstance(node, list):
        for value in node:
            if isinstance(value, dict) and "properties" in value:
                yield value
            yield from _inline(value)


def _objects(schema: Schema) -> Iterator[tuple[str, Schema]]:
    """The objects with keys: top level, each definition by name, then inline ones."""
    defs = schema.get("$defs", {})
    top = _resolve(schema.get("items", schema), defs)
    named: list[tuple[str, Schema]] = [("top level", top)] if "properties" in top else []
    for name, spec in sorted(defs.items()):
        if spec is not top:
            named += [(name, a) for a in _alternatives(spec) if "properties" in a]
    yield from named
    seen = {json.dumps(spec, sort_keys=True) for _, spec in named}
    for spec in _inline([spec for _, spec in named]):
        key = json.dumps(spec, sort_keys=True)
        if key not in seen:
            seen.add(key)
            yield f"a mapping of {', '.join(spec['properties'])}", spec


def schema_reference(kind: str) -> str:
    schema = json.loads(shipped(kind))
    defs = schema.get("$defs", {})
    lines = [
        f"# Reference: {KINDS[kind]}",
        "",
        "<!-- Generated by `python -m fwgen.cli.reference` from the shipped JSON Schema"
        f" (`fwgen schema {kind}`). Do not edit. -->",
        "",
        f"Every key {fwgen_reads(kind)}, generated from the schema fwgen validates with:"
        " a key not listed here is an error at its line.",
        "",
    ]
    for name, spec in _objects(schema):
        lines += [f"## {name}", ""]
        if spec.get("description") and name != "top level":
            lines += [_cell(spec["description"]), ""]
        lines += [_table(spec["properties"], spec.get("required", []), defs), ""]
    return "\n".join(lines).rstrip() + "\n"


def fwgen_reads(kind: str) -> str:
    return {
        "profile": "of a profile",
        "manifest": "of a build manifest (`fwgen build`)",
        "ports": "of an entry of a site port file (`--ports`, `FWGEN_PORTS`)",
    }[kind]


def capabilities(target: str) -> str:
    spec = TARGETS[target]
    rows = [
        f"`fwgen targets` for `{target}`: {spec.title}; writes "
        + ", ".join(f"`{f}`" for f in spec.files)
        + ".",
        "",
        "| feature | support |",
        "| --- | --- |",
    ]
    rows += [f"| {feature} | {_cell(text)} |" for feature, text in spec.capabilities.items()]
    return "\n".join(rows) + "\n"


def command_help(command: str) -> str:
    from typer.testing import CliRunner

    from fwgen.cli.app import app

    words = command.split()
    result = CliRunner().invoke(
        app, [*words, "--help"], prog_name="fwgen", terminal_width=HELP_WIDTH
    )
    if result.exit_code != 0:
        raise RuntimeError(f"fwgen {command} --help: {result.output}")
    return f"```text\n{result.output.rstrip()}\n```\n"


def block(name: str, args: str, page: Path) -> str:
    """The generated text of block *name* in *page* (``help`` takes a subcommand's words)."""
    if name == "capabilities":
        return capabilities(page.stem)
    if name == "help":
        return command_help(args.strip() or page.stem)
    raise ValueError(f"{page}: unknown generated block {name!r}")


def regenerated(page: Path, text: str) -> str:
    """*text* of *page* with every generated block made anew."""
    return BLOCK.sub(lambda m: m[1] + block(m[2], m[3], page) + m[5], text)


def expected(docs: Path = DOCS) -> dict[Path, str]:
    """Every generated file and every page with generated blocks, as it should read."""
    pages = {docs / "reference" / f"{kind}.md": schema_reference(kind) for kind in KINDS}
    pages[docs / "changelog.md"] = (docs.parent / "CHANGELOG.md").read_text(encoding="utf-8")
    for page in sorted(docs.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        if BLOCK.search(text):
            pages[page] = regenerated(page, text)
    return pages


if __name__ == "__main__":  # python -m fwgen.cli.reference: rewrite the docs' reference parts
    if not (DOCS.parent / "mkdocs.yml").is_file():
        raise SystemExit(f"{DOCS.parent}: not a clone of fwgen's repository (no mkdocs.yml)")
    for path, content in expected().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
