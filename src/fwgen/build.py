"""Many hosts at once from a manifest, writing only what changed.

hosts:
  web1:
    profile: web1.yaml              # a name or a path relative to the manifest
    set: {admins: [192.0.2.0/24]}   # like --set
    targets:
      nftables: out/web1.nft        # one-file targets: a file
      iptables: out/web1/           # several files: a directory
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from fwgen.errors import ProfileError, raise_collected
from fwgen.load import validation_errors
from fwgen.output import read_current, shown_text
from fwgen.yamlsource import MAX_BYTES, parse, read_text


class Host(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: str
    set: dict[
        str, Annotated[list[str], BeforeValidator(lambda v: v if isinstance(v, list) else [v])]
    ] = {}
    targets: dict[str, str]
    ports: list[str] = []


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hosts: dict[str, Host]


@dataclass
class Output:
    host: str
    path: Path
    text: str

    def current(self) -> bytes | None:
        """What the file holds now (enough of it to compare), or None when it is missing."""
        return read_current(self.path, len(self.text.encode("utf-8")) + MAX_BYTES)

    def is_current(self) -> bool:
        return self.current() == self.text.encode("utf-8")


def read_manifest(path: Path) -> Manifest:
    doc = parse(read_text(path, str(path), what="manifest"), str(path))
    if not isinstance(doc.data, dict):
        raise ProfileError("a manifest is a mapping with a `hosts:` key", path=str(path), line=1)
    try:
        return Manifest.model_validate(doc.data)
    except ValidationError as exc:
        raise_collected(validation_errors(exc, doc))
        raise


def outputs(manifest_path: Path) -> Iterator[Output]:
    """Everything the manifest asks for, rendered in memory (nothing written)."""
    from fwgen.output import destinations
    from fwgen.portdb import catalogue
    from fwgen.render import render
    from fwgen.resolve import resolve_profile

    manifest = read_manifest(manifest_path)
    base = manifest_path.parent
    for name, host in sorted(manifest.hosts.items()):
        ports = catalogue(tuple(str(base / p) for p in host.ports))
        policy = resolve_profile(host.profile, host.set, ports, root=base)
        for target_name, dest in sorted(host.targets.items()):
            for path, text in destinations(render(policy, target_name), base / dest).items():
                yield Output(name, path, text)


def unified(output: Output) -> str:
    old = shown_text(output.current() or b"")
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            output.text.splitlines(keepends=True),
            str(output.path),
            f"{output.path} (rendered)",
        )
    )


def stale(items: list[Output]) -> list[Output]:
    return [o for o in items if not o.is_current()]
