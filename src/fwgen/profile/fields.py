"""The words of a profile: names, ports, addresses and free text, each with its pattern,
its check and its JSON schema, shared by the profile models and the port database."""

from __future__ import annotations

import re
from typing import Any

from pydantic import WithJsonSchema
from pydantic.config import JsonDict

from fwgen.errors import printable
from fwgen.profile.addresses import parse_network

# Matched with fullmatch (``$`` would also match before a final newline), ASCII only.
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
RULE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,47}")
SERVICE_RE = re.compile(r"[a-z0-9][a-z0-9_.+-]{0,63}")
PORT_RE = re.compile(r"([0-9]{1,5})(?:-([0-9]{1,5}))?/(tcp|udp|sctp)")
# IP protocols without ports a rule may open by name (`protocol:`), with their numbers.
PORTLESS = {"esp": 50, "ah": 51, "gre": 47}
# An interface name as Linux allows it (at most 15 characters), in the characters every
# target can write unquoted, with an optional final glob: ``wg*`` (or iptables' ``wg+``).
IFACE_RE = re.compile(r"(?=.{1,15}$)[A-Za-z0-9][A-Za-z0-9_.-]*[*+]?")
LIMIT_RE = re.compile(r"([1-9][0-9]{0,5})/(second|minute|hour)")
MAX_BURST = 10000  # xt_hashlimit's largest burst in its first revision
MAX_TEXT = 200

# What the JSON Schema (`fwgen schema`) tells an editor about values the validators
# below check: the same patterns, anchored, in the syntax JSON Schema uses (ECMA-262).
NAME_SCHEMA: JsonDict = {"type": "string", "pattern": f"^{NAME_RE.pattern}$"}
SERVICE_SCHEMA: JsonDict = {
    "type": "string",
    "pattern": "^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$",
    "description": "a service name or alias from the port database (`fwgen ports`)",
}
_PORT_NUMBER = (
    "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
)
PORT_SCHEMA: JsonDict = {
    "type": "string",
    "pattern": f"^{_PORT_NUMBER}(-{_PORT_NUMBER})?/([Tt][Cc][Pp]|[Uu][Dd][Pp]|[Ss][Cc][Tt][Pp])$",
    "description": "PORT/PROTO or FIRST-LAST/PROTO, ports 1-65535, PROTO tcp, udp or sctp, "
    "e.g. 8443/tcp, 60000-61000/udp, 3868/sctp",
}
IFACE_SCHEMA: JsonDict = {
    "type": "string",
    "pattern": "^(?=.{1,15}$)[A-Za-z0-9][A-Za-z0-9_.-]*[*+]?$",
    "description": "an interface name (at most 15 characters), a glob such as wg* or veth+, "
    "or an interface group of `interfaces:`",
}
ADDRESS_SCHEMA: JsonDict = {
    "type": "string",
    "pattern": "^([0-9][0-9.]*|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)(/[0-9]{1,3})?$",
    "description": "an IPv4 or IPv6 address or CIDR, e.g. 192.0.2.0/24, 2001:db8::/32",
}
RATE_SCHEMA: JsonDict = {
    "type": "string",
    "pattern": "^[1-9][0-9]{0,5}/(second|minute|hour)$",
    "description": "N/second, N/minute or N/hour, e.g. 10/minute",
}


def one_or_many(item: JsonDict, description: str) -> WithJsonSchema:
    """The schema of a list that may also be written as its one item (`listify`)."""
    return WithJsonSchema(
        {"anyOf": [item, {"type": "array", "items": item}], "description": description}
    )


def listify(value: Any) -> Any:
    """Accept a single value wherever a list is expected."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def check_text(value: str, what: str, limit: int = MAX_TEXT) -> str:
    """Free text (descriptions, comments): one line, printable, bounded."""
    if len(value) > limit:
        raise ValueError(f"{what} is longer than {limit} characters")
    bad = [c for c in value if not c.isprintable()]
    if bad:
        raise ValueError(
            f"{what} contains a control character {bad[0]!r}; use one line of plain text"
        )
    return value


def parse_port(text: str) -> tuple[str, int, int]:
    """``"8443/tcp"`` or ``"60000-61000/udp"`` → ``(proto, start, end)``."""
    match = PORT_RE.fullmatch(text.strip().lower())
    if not match:
        raise ValueError(
            f"invalid port '{text}'; write PORT/PROTO or FIRST-LAST/PROTO with PROTO tcp, udp "
            "or sctp, e.g. 8443/tcp (esp, ah and gre have no ports: `protocol: esp`)"
        )
    start = int(match.group(1))
    end = int(match.group(2) or start)
    if not 1 <= start <= 65535 or not 1 <= end <= 65535:
        raise ValueError(f"invalid port '{text}'; ports are 1-65535")
    if end < start:
        raise ValueError(f"invalid port range '{text}'; write the lower port first ({end}-{start})")
    return match.group(3), start, end


def check_interface(text: Any) -> str:
    """An interface name or glob, ``+`` written as ``*`` (each target spells its own)."""
    if not isinstance(text, str) or not IFACE_RE.fullmatch(text):
        shown = printable(repr(text))[:40]
        raise ValueError(
            f"invalid interface {shown}; write a name of at most 15 letters, digits and _.- "
            "(a final * matches every name it starts), or an interface group's name"
        )
    return text[:-1] + "*" if text.endswith("+") else text


def check_interfaces(values: list[Any]) -> list[str]:
    """A rule's `interface:` list: names, globs or groups' names, at least one."""
    if not values:
        raise ValueError("an empty list matches nothing; leave the key out to mean any")
    return [check_interface(item) for item in values]


def check_protocols(values: list[Any]) -> list[str]:
    """A rule's `protocol:` list: IP protocols without ports, by name."""
    for item in values:
        if not isinstance(item, str) or item.lower() not in PORTLESS:
            shown = printable(repr(item))[:40]
            raise ValueError(
                f"invalid protocol {shown}; `protocol:` takes esp, ah and gre "
                "(tcp, udp and sctp are written with their ports under `port:`)"
            )
    return [item.lower() for item in values]


def looks_like_address(text: str) -> bool:
    return bool(text) and (text[0].isdigit() or ":" in text)


def check_address(text: str) -> None:
    """Refuse an address or CIDR that `parse_network` would not take (with its reason)."""
    parse_network(text)
