"""A profile's ``options:``: host-wide switches, each with what it does (the schema's
descriptions, which an editor shows). Unset options inherit from the extended profile."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
)

from fwgen.profile.addresses import PREFIX_BITS
from fwgen.profile.fields import ADDRESS_SCHEMA, NAME_SCHEMA, check_peers, listify, one_or_many


class Options(BaseModel):
    """Host-wide switches. Unset options inherit from the extended profile."""

    model_config = ConfigDict(extra="forbid")

    ping: bool = Field(
        default=False, description="accept echo requests (ping) in, 5/second per source"
    )
    log_drops: bool = Field(
        default=False,
        description="log what the default policies drop, rate limited (prefix 'fwgen input drop: ')",
    )
    forward: Literal["drop", "accept", "ignore"] = Field(
        default="drop",
        description="forwarded traffic: drop (a host is not a router), accept (a router or VPN "
        "gateway: between all interfaces), or ignore (leave it to Docker, libvirt, kube-proxy)",
    )
    loopback: bool = Field(
        default=True,
        description="accept what programs on this host send each other over lo; false drops "
        "it (a local resolver at 127.0.0.53 too): `check` FW018, refused by --strict",
    )
    established: bool = Field(
        default=True,
        description="accept replies to connections this host opened or accepted "
        "(established/related); false drops them: `check` FW017, refused by --strict",
    )
    drop_invalid: bool = Field(
        default=True,
        description="drop packets conntrack cannot place in a connection, before any rule",
    )
    # How the host gets its addresses: `dhcp` keeps DHCP and DHCPv6 open (clienthost);
    # `static` says no DHCP is needed. Unset: unknown (`check` warns with outbound deny).
    address: Literal["dhcp", "static"] | None = Field(
        default=None,
        description="dhcp: accept DHCP and DHCPv6 replies (and with outbound rules, let the "
        "requests out); static: addresses and routes set by hand, no DHCP or router "
        "advertisements needed. Unset: unknown (`check` FW014 with outbound deny)",
    )
    limit_prefix_v4: StrictInt = Field(
        default=32,
        description="rate limits count IPv4 sources that share this prefix as one",
        json_schema_extra={"minimum": 1, "maximum": PREFIX_BITS["ipv4"]},
    )
    limit_prefix_v6: StrictInt = Field(
        default=64,
        description="rate limits count IPv6 sources that share this prefix as one",
        json_schema_extra={"minimum": 1, "maximum": PREFIX_BITS["ipv6"]},
    )
    # A container engine on the host: `inbound` rules also govern the connections it
    # DNATs to its containers (published ports); every other one from outside is dropped.
    containers: Literal["docker", "podman"] | None = Field(
        default=None,
        description="a container engine on this host: inbound rules also govern its "
        "published ports (`-p`), every other connection to a container from outside is "
        "dropped; forwarding is left to the engine",
    )
    # iptables: fwgen's rules in chains of its own, loaded with --noflush, so that other
    # programs' chains (Docker, fail2ban, libvirt) survive. Default: on with `containers`.
    coexist: bool | None = Field(
        default=None,
        description="iptables: load fwgen's own chains with --noflush beside the chains of "
        "Docker, fail2ban or libvirt instead of replacing the filter table (default: on with "
        "`containers`)",
    )

    # What the default inbound policy does with a connection no rule admits: drop it
    # silently, or refuse it (TCP RST, ICMP port unreachable or administratively
    # prohibited), rate-limited so that the host cannot be made a reflector.
    refuse: Literal["drop", "reject"] = Field(
        default="drop",
        description="what inbound connections no rule admits get: drop (silence) or reject "
        "(TCP RST, ICMP port unreachable / administratively prohibited, at most "
        "20/second, the rest dropped), so clients fail fast; see refuse_from",
    )
    refuse_from: Annotated[
        list[str] | None,
        BeforeValidator(listify),
        one_or_many(
            {"anyOf": [ADDRESS_SCHEMA, NAME_SCHEMA]},
            "with refuse: reject, reject only these sources (networks, addresses); others "
            "are dropped silently (default: every source)",
        ),
    ] = None

    @field_validator("refuse_from")
    @classmethod
    def _refuse_from(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if "any" in value:
            raise ValueError("leave refuse_from out to reject every source")
        return check_peers(value)

    @field_validator("limit_prefix_v4", "limit_prefix_v6")
    @classmethod
    def _prefix(cls, value: int, info: ValidationInfo) -> int:
        bits = PREFIX_BITS["ipv4" if info.field_name == "limit_prefix_v4" else "ipv6"]
        if not 1 <= value <= bits:
            raise ValueError(
                f"a prefix length, 1 to {bits}: rate limits count sources that share it as one"
            )
        return value
