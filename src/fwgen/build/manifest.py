"""Many hosts at once from a manifest, writing only what changed.

hosts:
  web1:
    profile: web1.yaml              # a name or a path relative to the manifest
    set: {admins: [192.0.2.0/24]}   # like --set
    targets:
      nftables: out/web1.nft        # one-file targets: a file (out/web1/ is refused)
      iptables: out/web1/           # several files: a directory

A manifest may come from a pull request, so every path it names (outputs, ``ports:``
files, a ``profile:`` path) must stay inside the manifest's folder tree (symlinks
followed, never into ``.git``), unless the user allows a folder with ``--allow-outside``;
and no two entries may name one file. All of this is checked before anything is written.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.config import JsonDict, JsonValue

from fwgen.build.output import (
    check_folder,
    destination,
    destinations,
    needs_file_name,
    read_current,
    shown_text,
)
from fwgen.build.workers import job_count, run_all
from fwgen.errors import FwgenError, FwgenErrors, ProfileError, raise_collected
from fwgen.policy.resolve import resolve_profile
from fwgen.profile.fields import ADDRESS_SCHEMA, IFACE_SCHEMA, NAME_SCHEMA, one_or_many
from fwgen.profile.load import Located, format_loc, is_path, validation_errors
from fwgen.profile.portdb import catalogue, site_files
from fwgen.read.once import one_reading
from fwgen.read.paths import Boundary, Origins, real_path
from fwgen.read.yamlsource import MAX_BYTES, Document, Loc, parse, read_text
from fwgen.review import netneeds
from fwgen.targets import TARGETS
from fwgen.targets.render import render_with_warnings
from fwgen.targets.render import target as find_target


def _target_names(schema: JsonDict) -> None:
    names: list[JsonValue] = [*sorted(TARGETS)]
    schema["propertyNames"] = {"enum": names}


class Host(BaseModel):
    """One host: its profile, its networks and where each target's output goes."""

    model_config = ConfigDict(extra="forbid")

    profile: str = Field(description="a built-in profile name, or a path relative to the manifest")
    set: dict[
        str,
        Annotated[
            list[str],
            BeforeValidator(lambda v: v if isinstance(v, list) else [v]),
            one_or_many(
                {"anyOf": [ADDRESS_SCHEMA, IFACE_SCHEMA]},
                "the network's addresses, or the interface group's interfaces",
            ),
        ],
    ] = Field(
        default={},
        description="like --set: replaces networks and interface groups of the profile",
        json_schema_extra={"propertyNames": NAME_SCHEMA},
    )
    targets: dict[str, str] = Field(
        description="target name -> output: a file for nftables, ufw and windows (not "
        "ending in /), a folder (ending in /) for iptables and firewalld",
        json_schema_extra=lambda schema: _target_names(schema),
    )
    ports: list[str] = Field(
        default=[], description="like --ports: site port files, relative to the manifest"
    )


class Manifest(BaseModel):
    """What `fwgen build` renders: one entry per host."""

    model_config = ConfigDict(extra="forbid")

    hosts: dict[str, Host]


@dataclass
class Output:
    host: str
    path: Path  # as the manifest or -o names it
    text: str
    target: str = ""

    def current(self) -> bytes | None:
        """What the file holds now (enough of it to compare), or None when it is missing."""
        return read_current(self.path, len(self.text.encode("utf-8")) + MAX_BYTES)

    def is_current(self) -> bool:
        return self.current() == self.text.encode("utf-8")


@dataclass(frozen=True)
class Notice:
    """A warning of a build: about one host's profile (*target* None), or an approximation
    of one of its targets (what `--strict` refuses)."""

    host: str
    target: str | None
    text: str
    refused: bool = (
        False  # cuts the host off (`fwgen.review.netneeds.warnings`): --strict refuses it
    )

    def __str__(self) -> str:
        return f"{self.host}{f' ({self.target})' if self.target else ''}: {self.text}"


@dataclass
class Site:
    """Everything a manifest asks for, rendered in memory, and the folders it may write in."""

    boundary: Boundary
    outputs: list[Output] = field(default_factory=list)
    warnings: list[Notice] = field(default_factory=list)

    def approximations(self) -> list[Notice]:
        return [w for w in self.warnings if w.target is not None]

    def refused(self) -> list[Notice]:
        return [w for w in self.warnings if w.refused]


def read_manifest(path: Path) -> tuple[Manifest, Document]:
    if not os.path.lexists(path):
        raise ProfileError(
            "manifest file not found; give its path (fwgen build site/fwgen.yaml) or "
            "write one (docs/commands/build.md)",
            path=str(path),
        )
    doc = parse(read_text(path, str(path), what="manifest"), str(path))
    if not isinstance(doc.data, dict):
        raise ProfileError("a manifest is a mapping with a `hosts:` key", path=str(path), line=1)
    try:
        return Manifest.model_validate(doc.data), doc
    except ValidationError as exc:
        raise_collected(validation_errors(exc, doc, profile=False))
        raise


@dataclass
class _Paths:
    """Checks the paths a manifest names, remembering which entry claimed which file."""

    doc: Document
    base: Path
    boundary: Boundary
    reads: dict[str, str] = field(default_factory=dict)  # inputs, by `one_file`: what each is
    claimed: dict[Path, Loc] = field(default_factory=dict)  # outputs: which entry writes them
    spelled: dict[str, Loc] = field(default_factory=dict)  # the same, by case-folded name
    folders: dict[Path, Loc] = field(default_factory=dict)  # the folders of the outputs

    def error(self, loc: Loc, message: str) -> FwgenError:
        return FwgenError(
            message, path=self.doc.path, line=self.doc.line(loc), field=format_loc(loc)
        )

    def where(self, loc: Loc) -> str:
        return f"{self.doc.path}:{self.doc.line(loc)} ({format_loc(loc)})"

    def inside(self, loc: Loc, written: str, what: str, name: str = "") -> Path:
        """The real path of *written* (of the file *name* in it), which must be in the boundary."""
        bad = next((c for c in written if _invisible(c)), None)
        if bad is not None:
            raise self.error(
                loc, f"{what} {written!r} holds a control character ({bad!r}); rename it"
            )
        path = self.base / written / name if name else self.base / written
        shown = f"{written.rstrip('/')}/{name}" if name else written
        try:
            return self.boundary.check(path, what, shown)
        except FwgenError as exc:
            raise self.error(loc, exc.message) from None

    def read(self, loc: Loc, written: str, what: str) -> None:
        """An input the manifest names: inside the boundary, and never an output."""
        real = self.inside(loc, written, what)
        self.reads.setdefault(one_file(real), f"the {what} named at {self.where(loc)}")

    def claim(self, loc: Loc, real: Path) -> None:
        """*real* is written by the entry at *loc*: an error when the build reads it, another
        entry writes it, or another needs a folder where this needs a file (or the reverse)."""
        key = one_file(real)
        if key in self.reads:
            raise self.error(loc, f"this output would overwrite {self.reads[key]}")
        if key in self.spelled:
            raise self.error(
                loc,
                f"writes the same file as {self.where(self.spelled[key])}: {real}; "
                "give each output its own file",
            )
        other = self.folders.get(real) or next(
            (self.claimed[p] for p in real.parents if p in self.claimed), None
        )
        if other is not None:
            raise self.error(
                loc,
                f"{self.where(other)} needs a file where this output needs a folder, or the "
                f"other way round ({real}); give each output its own place",
            )
        self.claimed[real] = loc
        self.spelled[key] = loc
        for parent in real.parents:
            self.folders.setdefault(parent, loc)


def one_file(real: Path) -> str:
    """What names one file wherever a manifest is built: names that differ only in case or
    Unicode form are one file on macOS and Windows, and Windows drops final dots and blanks."""
    folded = unicodedata.normalize("NFC", str(real)).casefold()
    return "/".join(part.rstrip(". ") or part for part in folded.split("/"))


def _invisible(char: str) -> bool:
    """A control, format (bidi) or line-separator character: never in a path fwgen writes."""
    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")


def _check_paths(manifest: Manifest, paths: _Paths) -> None:
    """Every path of the manifest: inside the boundary, of the right kind, claimed once,
    and never a file any host reads (every host's inputs are known before any output)."""
    errors: list[FwgenError] = []
    for name, host in sorted(manifest.hosts.items()):
        here: Loc = ("hosts", name)
        try:
            for i, ports in enumerate(host.ports):
                paths.read((*here, "ports", i), ports, "ports file")
            if is_path(host.profile):
                paths.read((*here, "profile"), host.profile, "profile")
        except FwgenError as exc:
            errors.append(exc)
    for name, host in sorted(manifest.hosts.items()):
        here = ("hosts", name)
        for target, dest in sorted(host.targets.items()):
            loc = (*here, "targets", target)
            try:
                spec = find_target(target)
                several = len(spec.files) > 1
                if several:
                    check_folder(paths.inside(loc, dest, "output"))
                for file in spec.files if several else ("",):
                    real = paths.inside(loc, dest, "output", file)
                    folder = None if several else needs_file_name(dest, spec.files[0], target)
                    if folder is not None:
                        raise paths.error(loc, f"output {dest!r} {folder}")
                    destination(real)  # a regular file, or nothing yet
                    paths.claim(loc, real)
            except FwgenError as exc:
                errors.append(exc if exc.line else paths.error(loc, exc.message))
    raise_collected(errors)


def plan(manifest_path: Path, allow_outside: Sequence[Path] = (), jobs: int | None = 1) -> Site:
    """Everything the manifest asks for, rendered in memory (nothing written).

    Every path is checked before any profile is resolved; errors are located at the
    manifest line that names the path. The hosts are rendered in up to *jobs* processes
    (None: as many as pay, see `fwgen.build.workers.job_count`), with the same result.
    """
    with one_reading():  # each profile, list and port file read once for every host
        return _plan(manifest_path, allow_outside, jobs)


@dataclass
class _Rendered:
    """One host rendered: its files and warnings, and the files first read for it."""

    outputs: list[Output]
    warnings: list[Notice]
    reads: list[Path]


def _plan(manifest_path: Path, allow_outside: Sequence[Path], jobs: int | None) -> Site:
    manifest, doc = read_manifest(manifest_path)
    base = manifest_path.parent
    site = Site(Boundary.around(manifest_path, tuple(allow_outside)))
    paths = _Paths(doc, base, site.boundary)
    paths.reads[one_file(real_path(manifest_path))] = "the manifest"
    for ports in site_files():  # $FWGEN_PORTS: read for every host, never written
        with contextlib.suppress(FwgenError):  # a path that cannot be: said when read
            paths.reads.setdefault(
                one_file(real_path(Path(ports))), f"the ports file {ports} named by $FWGEN_PORTS"
            )
    _check_paths(manifest, paths)
    origins = Origins.around(manifest_path)
    doc.source = manifest_path  # a `set:` is named by the manifest's repository path
    reported: set[Path] = set()  # the files read so far (in this process)

    def render_host(entry: tuple[str, Host]) -> _Rendered:
        name, host = entry
        site.boundary.reads.clear()  # what this host reads
        ports = catalogue(tuple(str(base / p) for p in host.ports))
        set_at = {n: Located(v, doc, ("hosts", name, "set", n)) for n, v in host.set.items()}
        policy = resolve_profile(
            host.profile,
            host.set,
            ports,
            root=base,
            boundary=site.boundary,
            origins=origins,
            set_at=set_at,
        )
        passing, refused = netneeds.warnings(policy)
        done = _Rendered([], [Notice(name, None, w) for w in passing], [])
        done.warnings += [Notice(name, None, w, refused=True) for w in refused]
        for target_name, dest in sorted(host.targets.items()):
            try:
                files, approximations = render_with_warnings(policy, target_name)
            except FwgenErrors:
                raise
            except FwgenError as exc:
                if exc.path is not None:
                    raise
                raise paths.error(("hosts", name, "targets", target_name), exc.message) from None
            done.warnings += [Notice(name, target_name, w) for w in approximations]
            for path, text in destinations(files, base / dest).items():
                done.outputs.append(Output(name, path, text, target_name))
        done.reads = [p for p in site.boundary.reads if p not in reported]
        reported.update(done.reads)
        return done

    hosts = sorted(manifest.hosts.items())
    rendered, failure = run_all(render_host, hosts, job_count(jobs, len(hosts)))
    site.boundary.reads.clear()
    readers: dict[str, str] = {}  # every file any host read -> the first host that read it
    for (name, _), done in zip(hosts, rendered, strict=False):  # in host order
        site.boundary.reads.update(done.reads)
        for path in done.reads:
            readers.setdefault(one_file(path), name)
    errors = []
    for done in rendered:  # every output against what every host reads, not those before
        site.warnings += done.warnings
        for output in done.outputs:
            reader = readers.get(one_file(real_path(output.path)))
            if reader is not None:
                errors.append(
                    paths.error(
                        ("hosts", output.host, "targets", output.target),
                        f"output {output.path.name} would replace a file that the profile of "
                        f"host {reader!r} reads (an `extends:` profile or an address list); "
                        "write it elsewhere",
                    )
                )
            site.outputs.append(output)
    raise_collected(errors)
    if failure is not None:
        raise failure
    return site


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


def as_json(site: Site, changed: list[Output], check: bool) -> dict[str, object]:
    """What `fwgen build --format json` prints: each file with what became of it (``written``
    or ``unchanged``; with ``--check``, ``stale`` or ``current``), and every warning."""
    was, was_not = ("stale", "current") if check else ("written", "unchanged")
    return {
        "files": [
            {
                "host": o.host,
                "target": o.target,
                "path": str(o.path),
                "status": was if o in changed else was_not,
            }
            for o in site.outputs
        ],
        "warnings": [
            {
                "host": w.host,
                "target": w.target,
                "approximation": w.target is not None,
                "message": w.text,
            }
            for w in site.warnings
        ],
    }
