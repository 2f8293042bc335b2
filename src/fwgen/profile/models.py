"""What a profile author writes, validated: pydantic models with ``extra="forbid"``.

These models check shape and syntax only (a port is 1-65535, an address parses).
Whether a service or a network exists is the resolver's business, because it
depends on the port database, on ``extends`` and on ``--set``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict, JsonValue
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from fwgen.errors import printable
from fwgen.profile.accept import parse_accept
from fwgen.profile.addresses import parse_network
from fwgen.profile.codes import acceptable_codes
from fwgen.profile.fields import (
    ADDRESS_SCHEMA,
    IFACE_SCHEMA,
    LIMIT_RE,
    MAX_BURST,
    MAX_TEXT,
    NAME_RE,
    NAME_SCHEMA,
    PORT_SCHEMA,
    PORTLESS,
    RATE_SCHEMA,
    RULE_NAME_RE,
    SERVICE_RE,
    SERVICE_SCHEMA,
    check_address,
    check_interface,
    check_interfaces,
    check_protocols,
    check_text,
    listify,
    looks_like_address,
    one_or_many,
    parse_port,
)
from fwgen.profile.icmp import ICMP_TYPES, ICMPV6_TYPES
from fwgen.profile.options import Options

PortText = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) else v)]


class Limit(BaseModel):
    """``N/second|minute|hour``: new connections accepted per source, or
    ``{rate: N/UNIT, burst: B}`` to accept B at once (default: N)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: int = Field(ge=1, le=999_999)  # the same bounds as N in N/unit
    unit: Literal["second", "minute", "hour"]
    burst: StrictInt | None = None

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("rate"), str) and "unit" not in value:
            return {**value, **_rate(value["rate"])}  # other keys are checked as fields
        if isinstance(value, str):
            return _rate(value)
        if isinstance(value, dict) and isinstance(value.get("rate"), int):
            return value  # {rate: N, unit: UNIT}, the form the Policy keeps
        raise ValueError(
            "invalid limit; write N/second, N/minute or N/hour, or {rate: N/UNIT, burst: B}"
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """What an author writes (the ``{rate: N, unit: UNIT}`` form is the Policy's own)."""
        burst = {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_BURST,
            "description": "new connections accepted at once (default: the rate)",
        }
        return {
            "description": "new connections accepted per source: N/UNIT, or {rate: N/UNIT, burst: B}",
            "anyOf": [
                RATE_SCHEMA,
                {
                    "type": "object",
                    "properties": {"rate": RATE_SCHEMA, "burst": burst},
                    "required": ["rate"],
                    "additionalProperties": False,
                },
            ],
        }

    @field_validator("burst")
    @classmethod
    def _burst(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= MAX_BURST:
            raise ValueError(f"burst must be 1 to {MAX_BURST}, the connections accepted at once")
        return value


def _rate(value: Any) -> dict[str, Any]:
    match = LIMIT_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if not match:
        raise ValueError(
            f"invalid limit '{printable(str(value))}'; write N/second, N/minute or N/hour"
        )
    return {"rate": int(match.group(1)), "unit": match.group(2)}


class RuleSpec(BaseModel):
    """One allow rule, common to both directions."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"dependencies": {"port": ["name"]}}
    )

    service: Annotated[
        list[str],
        BeforeValidator(listify),
        one_or_many(SERVICE_SCHEMA, "services by name or alias: `fwgen ports NAME`"),
    ] = []
    port: Annotated[
        list[PortText],
        BeforeValidator(listify),
        one_or_many(PORT_SCHEMA, "literal ports instead of a service (needs `name`)"),
    ] = []
    protocol: Annotated[
        list[str],
        BeforeValidator(listify),
        one_or_many({"enum": list(PORTLESS)}, "IP protocols without ports: esp, ah, gre"),
    ] = []
    icmp: Annotated[
        list[str],
        BeforeValidator(listify),
        one_or_many({"enum": list(ICMP_TYPES)}, "ICMP (IPv4) types by name"),
    ] = []
    icmpv6: Annotated[
        list[str],
        BeforeValidator(listify),
        one_or_many({"enum": list(ICMPV6_TYPES)}, "ICMPv6 types by name"),
    ] = []
    name: str | None = Field(
        default=None,
        description="the rule's name in the output (required with `port`)",
        json_schema_extra={"pattern": f"^{RULE_NAME_RE.pattern}$"},
    )
    interface: Annotated[
        list[str],
        BeforeValidator(listify),
        one_or_many(
            IFACE_SCHEMA,
            "only on these interfaces (inbound: arriving on, outbound: leaving by): names, "
            "globs (wg*) or interface groups of `interfaces:` (default: every interface)",
        ),
    ] = []
    limit: Limit | None = None
    log: bool = Field(default=False, description="log each accepted new connection")
    comment: str | None = Field(
        default=None, description="free text, one line", json_schema_extra={"maxLength": MAX_TEXT}
    )
    allow_risky: str | None = Field(
        default=None,
        description="why this rule may open a known backdoor port (`fwgen check` FW001)",
        json_schema_extra={"maxLength": MAX_TEXT},
    )
    accept: dict[str, str | dict[str, str]] = Field(
        default={},
        description="`fwgen check` findings accepted for this rule, each for the services it "
        "names: {CODE: {SERVICE: why}}; {CODE: why} on a rule of one service or port",
        json_schema_extra=lambda schema: _accept_schema(schema),
    )

    @field_validator("service")
    @classmethod
    def _services(cls, value: list[str]) -> list[str]:
        for item in value:
            if not SERVICE_RE.fullmatch(item.lower()):
                raise ValueError(f"invalid service name {item!r}")
        return [item.lower() for item in value]

    @field_validator("port")
    @classmethod
    def _ports(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_port(item)
        return value

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocols(cls, value: Any) -> Any:
        return check_protocols(listify(value))

    @field_validator("interface", mode="before")
    @classmethod
    def _interfaces(cls, value: Any) -> Any:
        return check_interfaces(listify(value))

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not RULE_NAME_RE.fullmatch(value):
            raise ValueError(
                f"invalid rule name {value!r}; use letters, digits and _.+- (at most 48)"
            )
        return value

    @field_validator("comment", "allow_risky")
    @classmethod
    def _comment(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else check_text(value, str(info.field_name))

    @field_validator("accept", mode="before")
    @classmethod
    def _accept(cls, value: Any, info: ValidationInfo) -> Any:
        """``{CODE: {SERVICE: reason}}``, or ``{CODE: reason}`` on a rule of one service
        or port: `fwgen.profile.accept.parse_accept`."""
        return parse_accept(value, [*info.data.get("service", []), *info.data.get("port", [])])

    @model_validator(mode="after")
    def _one_kind(self) -> RuleSpec:
        kinds = [k for k in ("service", "port", "protocol") if getattr(self, k)]
        if self.icmp or self.icmpv6:
            kinds.append("icmp")
        if len(kinds) != 1:
            raise ValueError("a rule needs exactly one of: service, port, protocol, icmp/icmpv6")
        if self.port and not self.name:
            raise ValueError("a rule with `port` needs a `name` (it becomes the rule's comment)")
        return self


def _accept_schema(schema: JsonDict) -> None:
    codes: list[JsonValue] = [*acceptable_codes()]
    reason: JsonDict = {"type": "string", "pattern": "\\S", "maxLength": MAX_TEXT}
    schema["propertyNames"] = {"enum": codes}
    schema["additionalProperties"] = {
        "anyOf": [
            reason,
            {
                "type": "object",
                "propertyNames": SERVICE_SCHEMA,
                "additionalProperties": reason,
                "minProperties": 1,
            },
        ]
    }


PEER_SCHEMA: JsonDict = {"anyOf": [{"const": "any"}, ADDRESS_SCHEMA, NAME_SCHEMA]}
Peers = Annotated[
    list[str],
    BeforeValidator(listify),
    one_or_many(PEER_SCHEMA, "`any` (the default), addresses, CIDRs or network names"),
]


def _check_peers(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("an empty list matches nothing; leave the key out to mean any")
    for item in value:
        if not isinstance(item, str):
            raise ValueError(f"invalid address or network name {item!r}")
        if item != "any" and looks_like_address(item):
            check_address(item)
        elif item != "any" and not NAME_RE.fullmatch(item):
            raise ValueError(f"invalid network name {item!r}")
    if "any" in value and len(value) > 1:
        raise ValueError("'any' cannot be combined with other sources")
    return value


def _check_host_addresses(value: list[str]) -> list[str]:
    """The host's own addresses a rule is for: single addresses, parsed strictly."""
    if not value:
        raise ValueError("an empty list matches nothing; leave the key out to mean any")
    for item in value:
        if not isinstance(item, str) or not looks_like_address(item):
            raise ValueError(f"invalid host address {item!r}; give one of this host's addresses")
        _, first, last = parse_network(item)
        if first != last:
            raise ValueError(
                f"'{item}' is a network; `host` names one of this host's addresses, e.g. 192.0.2.10"
            )
    return [item.strip().partition("/")[0] for item in value]


class InboundRule(RuleSpec):
    """Traffic towards this host, from ``from`` (default any), to its addresses ``host``
    (default: every address it has)."""

    from_: Peers = Field(default=["any"], alias="from")
    host: Peers = []

    @field_validator("from_")
    @classmethod
    def _peers(cls, value: list[str]) -> list[str]:
        return _check_peers(value)

    @field_validator("host")
    @classmethod
    def _host(cls, value: list[str]) -> list[str]:
        return _check_host_addresses(value)


class OutboundRule(RuleSpec):
    """Traffic from this host, to ``to`` (default any)."""

    to: Peers = ["any"]

    @field_validator("to")
    @classmethod
    def _peers(cls, value: list[str]) -> list[str]:
        return _check_peers(value)


def _check_network_entry(item: Any) -> Any:
    if isinstance(item, dict):
        if set(item) != {"file"} or not isinstance(item["file"], str) or not item["file"]:
            raise ValueError(
                "a file entry is {file: PATH}, one address or CIDR per line in that file"
            )
        return item
    if not isinstance(item, str):
        raise ValueError(f"invalid address or network name {item!r}")
    if looks_like_address(item):
        check_address(item)
    elif not NAME_RE.fullmatch(item):
        raise ValueError(
            f"invalid network entry {item!r}; give an address, a CIDR or a network name"
        )
    return item


NETWORK_ENTRY_SCHEMA: JsonDict = {
    "anyOf": [
        ADDRESS_SCHEMA,
        {**NAME_SCHEMA, "description": "another network"},
        {
            "type": "object",
            "properties": {"file": {"type": "string", "minLength": 1}},
            "required": ["file"],
            "additionalProperties": False,
            "description": "a file beside the profile, one address or CIDR per line",
        },
    ]
}
NetworkEntries = Annotated[
    list[Annotated[Any, AfterValidator(_check_network_entry)]],
    BeforeValidator(listify),
    one_or_many(NETWORK_ENTRY_SCHEMA, "addresses, CIDRs, other networks or {file: PATH}"),
]


InterfaceEntries = Annotated[
    list[Annotated[Any, AfterValidator(check_interface)]],
    BeforeValidator(listify),
    one_or_many(
        {**IFACE_SCHEMA, "description": "an interface name or glob (wg*)"},
        "the host's interfaces in this group; [] until a site sets them",
    ),
]


class Profile(BaseModel):
    """One profile file."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(
        default="", description="one line", json_schema_extra={"maxLength": MAX_TEXT}
    )
    extends: Annotated[
        list[str],
        BeforeValidator(listify),
        one_or_many({"type": "string"}, "profiles to build on: names (base) or paths"),
    ] = []
    networks: dict[str, NetworkEntries] = Field(
        default={},
        description="named address sets; --set NAME=CIDR[,CIDR...] replaces one",
        json_schema_extra={"propertyNames": {**NAME_SCHEMA, "not": {"const": "any"}}},
    )
    interfaces: dict[str, InterfaceEntries] = Field(
        default={},
        description="interface groups a rule's `interface:` names; --set NAME=IFACE[,IFACE...] "
        "gives a group the host's interfaces (an empty group matches nothing)",
        json_schema_extra={"propertyNames": NAME_SCHEMA},
    )
    inbound: list[InboundRule] = []
    outbound: Literal["accept"] | list[OutboundRule] = "accept"
    options: Options = Options()

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        return check_text(value, "description")

    @field_validator("interfaces")
    @classmethod
    def _interface_groups(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name in value:
            if not NAME_RE.fullmatch(name):
                raise ValueError(
                    f"invalid interface group name {name!r}; start with a letter, then "
                    "letters, digits, _"
                )
        return value

    @field_validator("networks")
    @classmethod
    def _networks(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name in value:
            if not NAME_RE.fullmatch(name) or name == "any":
                raise ValueError(
                    f"invalid network name {name!r}; start with a letter, then letters, digits, _"
                )
        return value
