"""JSON Schemas for the files users write, generated from the models that validate them.

Editors use them to complete keys and flag mistakes as the file is typed (see the
docs/editor.md). They describe the shape of a file; what depends on other files (a service
or a network that exists, an address list) only fwgen itself can check.

The schemas ship in ``schemas/``; ``python -m fwgen.cli.schema`` rewrites them after a
model changes, and a test keeps them in sync.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fwgen.errors import FwgenError

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
KINDS = {
    "profile": "a host profile (profiles/*.yaml)",
    "manifest": "a build manifest (fwgen.yaml)",
    "ports": "a site port file (--ports)",
}
# Draft 7, the newest that every YAML language server and JetBrains IDE reads; the models'
# schemas use no keyword it lacks (`$defs` is only where the `$ref`s point; a test checks).
DIALECT = "http://json-schema.org/draft-07/schema#"


def schema_path(kind: str) -> Path:
    return SCHEMAS / f"{kind}.schema.json"


def generate(kind: str) -> dict[str, Any]:
    """The schema of *kind*, from the pydantic models."""
    from pydantic import TypeAdapter

    if kind == "profile":
        from fwgen.profile.models import Profile

        body = Profile.model_json_schema()
    elif kind == "manifest":
        from fwgen.build.manifest import Manifest

        body = Manifest.model_json_schema()
    else:
        from fwgen.profile.services import SiteService

        body = TypeAdapter(list[SiteService]).json_schema()
    return {"$schema": DIALECT, **body, "title": f"fwgen: {KINDS[kind]}"}


def schema_text(kind: str) -> str:
    return json.dumps(generate(kind), indent=2, ensure_ascii=False) + "\n"


def shipped(kind: str) -> str:
    """The schema of *kind* as shipped (what `fwgen schema KIND` prints)."""
    if kind not in KINDS:
        raise FwgenError(f"unknown schema {kind!r}; choose {', '.join(KINDS)}")
    return schema_path(kind).read_text(encoding="utf-8")


if __name__ == "__main__":  # python -m fwgen.cli.schema: rewrite schemas/ after a model changed
    for name in KINDS:
        schema_path(name).write_text(schema_text(name), encoding="utf-8")
