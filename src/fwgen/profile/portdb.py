"""The port database: named services → ports, with what fwgen knows about each.

The catalogue is data (``data/services.yaml``), validated by `fwgen.profile.services`.
Lookups are by name or alias; ports may be looked up by number and protocol.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from fwgen.errors import FwgenError, ProfileError, did_you_mean, raise_collected, split_location
from fwgen.profile.load import validation_errors
from fwgen.profile.services import Exposure, Service, ServicePort
from fwgen.read.once import by_content
from fwgen.read.yamlsource import Document, parse, read_text


class Span(Protocol):
    """A range of ports: a Policy's PortRange."""

    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


class Opening(Protocol):
    """What the catalogue reads of a rule that opens ports: a Policy's Rule."""

    @property
    def service(self) -> str | None: ...
    @property
    def proto(self) -> str: ...
    @property
    def ports(self) -> Sequence[Span]: ...


CATALOGUE = Path(__file__).resolve().parents[1] / "data" / "services.yaml"
COMPILED = CATALOGUE.with_suffix(".json")
NARROW = 64  # a service spanning more ports than this is not "the" service of one of them


class Compiled:
    """A built-in entry as `builtin_entries` reads it: its names and exposure at once, the
    `Service` when something asks for it (a render looks up a few of the hundreds)."""

    __slots__ = ("_service", "aliases", "entry", "exposure", "name")

    def __init__(self, entry: dict[str, Any]) -> None:
        self.entry = entry
        self.name: str = entry["name"]
        self.aliases: tuple[str, ...] = tuple(entry.get("aliases", ()))
        self.exposure: Exposure = entry["exposure"]
        self._service: Service | None = None

    def service(self) -> Service:
        if self._service is None:
            self._service = _compiled_service(self.entry)
        return self._service


Entry = Service | Compiled


def _service(entry: Entry) -> Service:
    return entry.service() if isinstance(entry, Compiled) else entry


class Catalogue:
    """Services by name and alias, each remembering where it was defined."""

    def __init__(
        self,
        services: Sequence[Entry],
        origins: dict[str, str] | None = None,
        backdoors: list[Service] | None = None,
    ) -> None:
        self._entries = sorted(services, key=_by_name)
        self.origins = origins or {}
        # Known backdoor ports: kept even when a site entry overrides the entry naming them.
        never = [_service(e) for e in self._entries if e.exposure == "never"]
        self.backdoors = backdoors or never
        # their ports by protocol: a rule is compared only with the ports of its protocol
        self._backdoor_ports: dict[str, list[tuple[int, int, int]]] = {}
        for n, service in enumerate(self.backdoors):
            for p in service.ports:
                self._backdoor_ports.setdefault(p.proto, []).append((p.start, p.end, n))
        self._by_name: dict[str, Entry] = {}
        for entry in self._entries:
            for name in (entry.name, *entry.aliases):
                self._by_name.setdefault(name, entry)

    @functools.cached_property
    def services(self) -> list[Service]:
        """Every entry, by name."""
        return [_service(e) for e in self._entries]

    def get(self, name: str) -> Service | None:
        found = self._by_name.get(name.lower())
        return None if found is None else _service(found)

    def names(self) -> list[str]:
        return list(self._by_name)

    def require(self, name: str) -> Service:
        """The service called *name*, or an error with a suggestion."""
        service = self.get(name)
        if service is None:
            raise FwgenError(f"unknown service '{name}'{did_you_mean(name, self.names())}")
        return service

    def origin(self, service: Service) -> str:
        return self.origins.get(service.name, "")

    def by_port(self, start: int, end: int, proto: str | None = None) -> list[Service]:
        """Services with a port in start-end (of *proto*, or either protocol)."""
        return [
            service
            for service in self.services
            if any(
                p.start <= end and start <= p.end and proto in (None, p.proto)
                for p in service.ports
            )
        ]

    def named_at(self, start: int, end: int, proto: str) -> list[Service]:
        """Services that are *the* service of a port in start-end, backdoors first, then the
        narrowest. A wide range such as Kubernetes NodePorts or an RTP media range does not
        name the ports inside it; a backdoor's range (Mydoom's 3127-3198) names every one."""
        found = [
            service
            for service in self.services
            if any(
                p.proto == proto
                and p.start <= end
                and start <= p.end
                and (p.end - p.start < NARROW or service.exposure == "never")
                for p in service.ports
            )
        ]
        return sorted(found, key=specific_first)

    def opened_by(self, rule: Opening) -> list[Service]:
        """The entries a rule opens: its service, or those it opens a port of."""
        if rule.service is not None:
            service = self.get(rule.service)
            return [service] if service else []
        found: dict[str, Service] = {}
        for span in rule.ports:
            for service in self.named_at(span.start, span.end, rule.proto):
                found.setdefault(service.name, service)
        return sorted(found.values(), key=lambda s: s.name)

    def backdoors_in(self, rule: Opening) -> list[Service]:
        """The known backdoor entries whose ports a rule opens, whatever named them (its
        service, a site entry, an override, a literal port or a range overlapping theirs)."""
        hits = {
            n
            for start, end, n in self._backdoor_ports.get(rule.proto, ())
            for span in rule.ports
            if start <= span.end and span.start <= end
        }
        return [self.backdoors[n] for n in sorted(hits)]

    def search(self, words: str) -> list[Service]:
        """Services whose name, aliases, title, description or category contain every word."""
        terms = words.lower().split()
        return [
            service
            for service in self.services
            if all(term in _haystack(service) for term in terms)
        ]


def span(service: Service) -> int:
    """How many ports a service covers."""
    return sum(p.end - p.start + 1 for p in service.ports)


def specific_first(service: Service) -> tuple[bool, int, str]:
    """Order for the services at a port: backdoors, then the narrowest, then by name."""
    return service.exposure != "never", span(service), service.name


def _haystack(service: Service) -> str:
    return " ".join(
        (service.name, *service.aliases, service.title, service.description, service.category)
    ).lower()


Entries = tuple[Sequence[Entry], dict[str, str], set[str]]


def read_catalogue(path: Path, shown: str, site: bool = False) -> Entries:
    """Validate one catalogue file, a YAML list of entries.

    Returns the services, where each was defined, and (for site files) the names
    marked ``override: true``, which replace a built-in entry of the same name.
    """
    return catalogue_entries(read_text(path, shown, what="port database"), shown, site)


def catalogue_entries(text: str, shown: str, site: bool = False) -> Entries:
    """`read_catalogue` of a file's text."""
    doc = parse(text, shown)
    if not isinstance(doc.data, list):
        raise ProfileError("a port database file is a YAML list of services", path=shown, line=1)
    services, origins, overrides, errors = [], {}, set(), []
    for i, entry in enumerate(doc.data):
        if site and isinstance(entry, dict) and entry.pop("override", False) is True:
            overrides.add(str(entry.get("name")))
        try:
            service = Service.model_validate(entry)
        except ValidationError as exc:
            sub = Document(entry, shown, {k[1:]: v for k, v in doc.lines.items() if k[:1] == (i,)})
            for err in validation_errors(exc, sub, profile=False):
                err.field = f"[{i}]" + (f".{err.field}" if err.field else "")
                errors.append(err)
            continue
        services.append(service)
        origins[service.name] = f"{shown}:{doc.line((i,))}"
    raise_collected(errors)
    return services, origins, overrides


def _by_name(service: Entry) -> str:
    return service.name


def _names(service: Entry) -> set[str]:
    return {service.name, *service.aliases}


def merge_catalogues(base: Entries, *sites: Entries) -> Catalogue:
    """The built-in catalogue with site entries added, or replaced with ``override: true``.

    A site entry whose name or an alias is already taken by another entry is an
    error that names both definitions.
    """
    services: dict[str, Entry] = {s.name: s for s in base[0]}
    origins = dict(base[1])
    from_site: set[str] = set()
    errors: list[FwgenError] = []
    for entries, where, overrides in sites:
        for service in entries:
            path, line = split_location(where[service.name])
            if (
                service.name in overrides
                and service.name in services
                and service.name not in from_site
            ):
                del services[service.name]
            clashes = [other for other in services.values() if _names(service) & _names(other)]
            for other in clashes:
                hint = ""
                if other.name == service.name and other.name not in from_site:
                    hint = "; add `override: true` to the entry to replace the built-in one"
                errors.append(
                    FwgenError(
                        f"service '{service.name}' conflicts with '{other.name}' defined at "
                        f"{origins[other.name]}{hint}",
                        path=path,
                        line=line,
                    )
                )
            if not clashes:
                services[service.name] = service
                origins[service.name] = where[service.name]
                from_site.add(service.name)
    raise_collected(errors)
    backdoors = {
        s.name: _service(s)
        for entries in (base, *sites)
        for s in entries[0]
        if s.exposure == "never"
    }
    return Catalogue(list(services.values()), origins, sorted(backdoors.values(), key=_by_name))


@functools.cache
def builtin_entries() -> Entries:
    """The shipped catalogue, read from its compiled JSON form (YAML parsing costs more
    than the rest of a render), each entry made a `Service` when first asked for.
    ``compile_catalogue`` writes it from entries it validated, so they are not validated
    again here; a test keeps it in sync with the YAML, and another proves the entries
    equal to the validated ones, field by field."""
    compiled = json.loads(COMPILED.read_text(encoding="utf-8"))
    services = [Compiled(entry) for entry in compiled["services"]]
    return services, dict(compiled["origins"]), set()


def _compiled_service(entry: dict[str, Any]) -> Service:
    """A `Service` of the compiled catalogue: its lists made the tuples validation makes."""
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()}
    values["ports"] = tuple(ServicePort.model_construct(**port) for port in entry["ports"])
    return Service.model_construct(**values)


def compile_catalogue() -> str:
    """services.yaml → the JSON that `builtin_entries` reads (validated on the way)."""
    services, origins, _ = read_catalogue(CATALOGUE, "fwgen/data/services.yaml")
    data = {
        "source_sha256": hashlib.sha256(CATALOGUE.read_bytes()).hexdigest(),
        "services": [_service(s).model_dump(mode="json", exclude_defaults=True) for s in services],
        "origins": origins,
    }
    return json.dumps(data, indent=0, sort_keys=True) + "\n"


def site_files(extra_files: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The site port files: those given, then those in $FWGEN_PORTS."""
    env = tuple(f for f in os.environ.get("FWGEN_PORTS", "").split(os.pathsep) if f)
    return (*extra_files, *env)


def catalogue(extra_files: tuple[str, ...] = ()) -> Catalogue:
    """The built-in catalogue plus site files: those given, then those in $FWGEN_PORTS."""
    return catalogue_of(tuple((f, f) for f in site_files(extra_files)))


def catalogue_of(files: tuple[tuple[str, str], ...]) -> Catalogue:
    """The built-in catalogue plus site files, each read from a path and shown by a name;
    made once for each content of the files (`fwgen.read.once`)."""
    texts = tuple(
        (shown, read_text(Path(path), shown, what="port database")) for path, shown in files
    )
    return by_content(("catalogue", texts), lambda: _catalogue_of(texts))


def _catalogue_of(texts: tuple[tuple[str, str], ...]) -> Catalogue:
    sites = [catalogue_entries(text, shown, site=True) for shown, text in texts]
    return merge_catalogues(builtin_entries(), *sites)


if (
    __name__ == "__main__"
):  # python -m fwgen.profile.portdb: rewrite data/services.json after editing the YAML
    COMPILED.write_text(compile_catalogue(), encoding="utf-8")
