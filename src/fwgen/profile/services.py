"""The catalogue's entries as users write them (``services.yaml``, site port files),
validated by these models; `fwgen.profile.portdb` looks them up."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from fwgen.profile.addresses import network_text, parse_network
from fwgen.profile.fields import PORT_SCHEMA, PORTLESS, SERVICE_RE, check_text, parse_port

PROCESS_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
Risk = Literal["low", "medium", "high", "critical"]
Exposure = Literal["public", "lan-only", "never"]


class ServicePort(BaseModel):
    """One protocol and port range of a service."""

    # Validated when a port file is read, built then: the built-in entries are validated
    # when they are compiled (`builtin_entries`), so most runs never build a validator.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    proto: Literal["tcp", "udp", "sctp", "esp", "ah", "gre"]
    start: int = 0  # 0 for the protocols without ports (PORTLESS)
    end: int = 0

    def __str__(self) -> str:
        if self.proto in PORTLESS:
            return self.proto
        ports = str(self.start) if self.start == self.end else f"{self.start}-{self.end}"
        return f"{ports}/{self.proto}"

    @model_validator(mode="after")
    def _in_range(self) -> ServicePort:
        """The checks `parse_port` makes, for ports written as mappings too."""
        if self.proto in PORTLESS:
            if self.start or self.end:
                raise ValueError(f"{self.proto} has no ports; write it alone: {self.proto}")
        else:
            parse_port(str(self))
        return self


PORT_NUMBER_SCHEMA = {"type": "integer", "minimum": 1, "maximum": 65535}
PORT_MAPPING_SCHEMA = {
    "type": "object",
    "properties": {
        "proto": {"enum": ["tcp", "udp", "sctp"]},
        "start": PORT_NUMBER_SCHEMA,
        "end": PORT_NUMBER_SCHEMA,
    },
    "required": ["proto", "start", "end"],
    "additionalProperties": False,
}


def _port(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in PORTLESS:
        return {"proto": value.lower()}
    if isinstance(value, str):
        proto, start, end = parse_port(value)
        return {"proto": proto, "start": start, "end": end}
    return value


class Service(BaseModel):
    """A catalogue entry."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # as ServicePort

    name: str = Field(json_schema_extra={"pattern": f"^{SERVICE_RE.pattern}$"})
    title: str
    description: str = ""
    aliases: tuple[str, ...] = Field(
        default=(), json_schema_extra={"items": {"pattern": f"^{SERVICE_RE.pattern}$"}}
    )
    ports: tuple[
        Annotated[
            ServicePort,
            BeforeValidator(_port),
            WithJsonSchema({"anyOf": [PORT_SCHEMA, PORT_MAPPING_SCHEMA, {"enum": list(PORTLESS)}]}),
        ],
        ...,
    ]
    risk: Risk
    risk_notes: str = ""
    exposure: Exposure
    category: str
    alternative: str | None = None
    helper: str | None = None
    destinations: tuple[str, ...] = ()
    family: Literal["ipv4", "ipv6"] | None = None
    processes: tuple[str, ...] = ()  # programs that usually serve it, as `ss -p` names them
    sources: tuple[str, ...] = ()  # "DOCUMENT" or "DOCUMENT: what it says (and why fwgen differs)"

    @field_validator("title", "description", "risk_notes")
    @classmethod
    def _text(cls, value: str, info: ValidationInfo) -> str:
        return check_text(value, str(info.field_name), 200 if info.field_name == "title" else 1000)

    @field_validator("sources")
    @classmethod
    def _sources(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_text(v, "sources", 1000) for v in value)

    @field_validator("processes")
    @classmethod
    def _processes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not PROCESS_RE.fullmatch(name):
                raise ValueError(f"invalid process name {name!r}; use letters, digits, _.+-")
        return value

    @field_validator("name", "aliases")
    @classmethod
    def _names(cls, value: Any) -> Any:
        for name in (value,) if isinstance(value, str) else value:
            if not SERVICE_RE.fullmatch(name):
                raise ValueError(
                    f"invalid service name {name!r}; use lowercase letters, digits, _.+-"
                )
        return value

    @field_validator("destinations")
    @classmethod
    def _destinations(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(network_text(parse_network(v)) for v in value)


class SiteService(Service):
    """An entry of a site port file (``--ports``): a catalogue entry that may replace the
    built-in entry of its name. `read_catalogue` takes ``override`` out before validating
    the rest as a `Service`; this model describes the file for `fwgen schema ports`."""

    override: bool = Field(default=False, description="replace the built-in entry of the same name")
