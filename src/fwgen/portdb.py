"""The port database: named services → ports, with what fwgen knows about each.

The catalogue is data (``data/services.yaml``), validated by the models below.
Lookups are by name or alias; ports may be looked up by number and protocol.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, field_validator

from fwgen.errors import FwgenError, ProfileError, did_you_mean, raise_collected
from fwgen.profile import SERVICE_RE, address_text, parse_address, parse_port
from fwgen.yamlsource import parse, read_text

CATALOGUE = Path(__file__).resolve().parent / "data" / "services.yaml"
Risk = Literal["low", "medium", "high", "critical"]
Exposure = Literal["public", "lan-only", "never"]


class ServicePort(BaseModel):
    """One protocol and port range of a service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    proto: Literal["tcp", "udp"]
    start: int
    end: int

    def __str__(self) -> str:
        ports = str(self.start) if self.start == self.end else f"{self.start}-{self.end}"
        return f"{ports}/{self.proto}"


def _port(value: Any) -> Any:
    if isinstance(value, str):
        proto, start, end = parse_port(value)
        return {"proto": proto, "start": start, "end": end}
    return value


class Service(BaseModel):
    """A catalogue entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    title: str
    description: str = ""
    aliases: tuple[str, ...] = ()
    ports: tuple[Annotated[ServicePort, BeforeValidator(_port)], ...]
    risk: Risk
    risk_notes: str = ""
    exposure: Exposure
    category: str
    alternative: str | None = None
    helper: str | None = None
    destinations: tuple[str, ...] = ()
    family: Literal["ipv4", "ipv6"] | None = None

    @field_validator("name", "aliases")
    @classmethod
    def _names(cls, value: Any) -> Any:
        for name in (value,) if isinstance(value, str) else value:
            if not SERVICE_RE.match(name):
                raise ValueError(
                    f"invalid service name {name!r}; use lowercase letters, digits, _.+-"
                )
        return value

    @field_validator("destinations")
    @classmethod
    def _destinations(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(address_text(parse_address(v)) for v in value)


class Catalogue:
    """Services by name and alias."""

    def __init__(self, services: list[Service]) -> None:
        self.services = sorted(services, key=lambda s: s.name)
        self._by_name: dict[str, Service] = {}
        for service in self.services:
            for name in (service.name, *service.aliases):
                self._by_name.setdefault(name, service)

    def get(self, name: str) -> Service | None:
        return self._by_name.get(name.lower())

    def names(self) -> list[str]:
        return list(self._by_name)

    def require(self, name: str) -> Service:
        """The service called *name*, or an error with a suggestion."""
        service = self.get(name)
        if service is None:
            raise FwgenError(f"unknown service '{name}'{did_you_mean(name, self.names())}")
        return service


def read_catalogue(path: Path, shown: str) -> list[Service]:
    """Validate one catalogue file: a YAML list of entries."""
    doc = parse(read_text(path, shown, what="port database"), shown)
    if not isinstance(doc.data, list):
        raise ProfileError("a port database file is a YAML list of services", path=shown, line=1)
    services, errors = [], []
    for i, entry in enumerate(doc.data):
        try:
            services.append(Service.model_validate(entry))
        except ValidationError as exc:
            from fwgen.load import validation_errors

            sub = type(doc)(entry, shown, {k[1:]: v for k, v in doc.lines.items() if k[:1] == (i,)})
            for err in validation_errors(exc, sub):
                err.field = f"[{i}]" + (f".{err.field}" if err.field else "")
                errors.append(err)
    raise_collected(errors)
    return services


@functools.cache
def catalogue() -> Catalogue:
    """The built-in catalogue (read once per process)."""
    return Catalogue(read_catalogue(CATALOGUE, "fwgen/data/services.yaml"))
