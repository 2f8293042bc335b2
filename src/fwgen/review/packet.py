"""Packets as admins write them, for `fwgen query`: ``tcp 203.0.113.5 -> 443``.

The grammar (words apart by spaces or tabs; ``->`` may touch its neighbours)::

    PACKET   = [in | out] PROTOCOL [ICMP-TYPE] [ENDPOINT] [-> ENDPOINT] CLAUSE...
    PROTOCOL = tcp | udp | sctp | icmp | icmpv6 | esp | ah | gre
    ENDPOINT = ADDRESS | ADDRESS:PORT | [IPV6] | [IPV6]:PORT | PORT | any
    CLAUSE   = from ENDPOINT | to ENDPOINT | on INTERFACE | hop-limit N
             | new | established | related | invalid

The endpoint left of ``->`` (or after ``from``) sends, the one right of it (or after
``to``) receives: inbound (the default) the sender is the remote peer and the receiver
this host; outbound (``out``) the other way round. An endpoint alone, without ``->``,
is the peer (``out tcp 198.51.100.7:25``). A packet that names no peer address
comes from (or goes to) an address none of the profile's networks holds, over IPv4 and
IPv6 both, unless its protocol or an address fixes the family; one that names no
interface arrives (leaves) on an interface no rule names, ``lo`` for a loopback
address. ``new`` is the default state. An ICMPv6 type whose messages must arrive with
hop limit 255 (neighbour discovery) or 1 (MLD) has that hop limit unless told.

Text is checked before it is read: printable ASCII only, so Unicode digits, separators
and look-alike characters are refused with their column, never read as something else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

from fwgen.errors import FwgenError, did_you_mean
from fwgen.policy.ir import FAMILIES, Direction, Family
from fwgen.profile import icmp
from fwgen.profile.addresses import Interval, parse_network
from fwgen.profile.fields import IFACE_RE

State = Literal["new", "established", "related", "invalid"]
PROTOCOLS = ("tcp", "udp", "sctp", "icmp", "icmpv6", "esp", "ah", "gre")
PORTED = ("tcp", "udp", "sctp")
STATES: tuple[State, ...] = ("new", "established", "related", "invalid")
MAX_TEXT = 400  # characters of one packet
LOOPBACK = {"ipv4": parse_network("127.0.0.0/8"), "ipv6": parse_network("::1")}
_WORD = re.compile(r"[^ \t]+")


class PacketError(FwgenError):
    """Packet text that cannot be read: where (the column) and what to write instead."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.column = column

    def at(self, where: str) -> FwgenError:
        """The error as one line of a file or an argument: ``FILE:LINE:COLUMN: what``."""
        return FwgenError(f"{where}:{self.column}: {self.message}")


@dataclass(frozen=True)
class Endpoint:
    address: Interval | None = None  # (version, first, last), first == last
    text: str = ""  # the address as written
    port: int | None = None


@dataclass(frozen=True)
class Packet:
    text: str
    direction: Direction
    proto: str
    families: tuple[Family, ...]
    icmp_type: str | None = None
    remote: Endpoint = Endpoint()
    local: Endpoint = Endpoint()
    interface: str | None = None
    state: State = "new"
    hop_limit: int | None = None

    @property
    def port(self) -> int | None:
        """The destination port: this host's inbound, the peer's outbound."""
        return (self.local if self.direction == "in" else self.remote).port

    def on(self, family: Family) -> str | None:
        """The interface it arrives or leaves on: ``lo`` for a loopback peer unless told."""
        if self.interface is None and self.remote.address is not None:
            _, first, last = LOOPBACK[family]
            if self.remote.address[0] == (4 if family == "ipv4" else 6) and (
                first <= self.remote.address[1] <= last
            ):
                return "lo"
        return self.interface


def _words(text: str) -> list[tuple[int, str]]:
    """(column, word): words apart by spaces and tabs, ``->`` a word of its own."""
    out = []
    for match in _WORD.finditer(text):
        word, column = match.group(), match.start() + 1
        for i, part in enumerate(word.split("->")):
            if i:
                out.append((column - 2, "->"))
            if part:
                out.append((column, part))
            column += len(part) + 2
    return out


def _check_characters(text: str) -> None:
    if len(text) > MAX_TEXT:
        raise PacketError(f"a packet is at most {MAX_TEXT} characters", MAX_TEXT + 1)
    for i, char in enumerate(text):
        if not (char.isascii() and (char.isprintable() or char == "\t")):
            raise PacketError(
                f"U+{ord(char):04X} is not allowed: write packets in plain ASCII "
                "(digits 0-9, spaces or tabs between words)",
                i + 1,
            )


def _port(word: str, column: int) -> int:
    if not (word.isascii() and word.isdigit()) or len(word) > 5 or not 1 <= int(word) <= 65535:
        raise PacketError(f"invalid port '{word}'; a port is a number 1-65535", column)
    return int(word)


def _address(word: str, column: int) -> Interval:
    try:
        interval = parse_network(word)
    except ValueError as error:
        raise PacketError(str(error), column) from None
    if interval[1] != interval[2] or "/" in word:
        raise PacketError(f"'{word}' is a network; a packet has one address", column)
    return interval


def endpoint(word: str, column: int) -> Endpoint:
    """``203.0.113.5``, ``203.0.113.5:80``, ``[2001:db8::5]:53``, ``2001:db8::5``, ``443``
    or ``any``."""
    if word == "any":
        return Endpoint()
    if not any(c in word for c in ".:["):  # neither an IPv4 nor an IPv6 address: a port
        return Endpoint(port=_port(word, column))
    if word.startswith("["):
        inside, bracket, rest = word[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise PacketError(
                f"'{word}': write an IPv6 address with a port as [ADDRESS]:PORT", column
            )
        port = _port(rest[1:], column + len(inside) + 3) if rest else None
        if ":" not in inside:
            raise PacketError(f"'{inside}' in brackets is not an IPv6 address", column + 1)
        return Endpoint(_address(inside, column + 1), inside, port)
    if word.count(":") == 1:  # an IPv4 address and its port
        address, _, after = word.partition(":")
        return Endpoint(_address(address, column), address, _port(after, column + len(address) + 1))
    return Endpoint(_address(word, column), word)


def parse_packet(text: str) -> Packet:
    """One packet (see the module's grammar), or a `PacketError` with its column."""
    _check_characters(text)
    words = _words(text)
    end = len(text) + 1
    if not words:
        raise PacketError("empty packet; write e.g. 'tcp 203.0.113.5 -> 443'", 1)
    i = 0
    direction: Direction = "in"
    if words[0][1] in ("in", "out"):
        direction = "out" if words[0][1] == "out" else "in"
        i = 1
    if i >= len(words):
        raise PacketError(f"name a protocol ({', '.join(PROTOCOLS)})", end)
    column, proto = words[i]
    if proto not in PROTOCOLS:
        hint = did_you_mean(proto, PROTOCOLS) or f" (one of {', '.join(PROTOCOLS)})"
        raise PacketError(f"unknown protocol '{proto}'{hint}", column)
    i += 1
    found: dict[str, tuple[int, object]] = {}
    if proto in ("icmp", "icmpv6") and i < len(words) and _type_like(words[i][1]):
        column, word = words[i]
        if word not in icmp.table(proto):
            raise PacketError(_unexpected(word, proto), column)
        found["type"] = words[i]
        i += 1
    sides: list[tuple[str, int, str]] = []  # (side, column, word)
    while i < len(words):
        column, word = words[i]
        if word in ("from", "to", "on", "hop-limit") or word == "->":
            if i + 1 >= len(words):
                raise PacketError(f"'{word}' needs a value after it", end)
            value_column, value = words[i + 1]
            if word == "->" or word == "to":
                sides.append(("to", value_column, value))
            elif word == "from":
                sides.append(("from", value_column, value))
            else:
                _once(found, word, column)
                found[word] = (value_column, value)
            i += 2
        elif word in STATES:
            _once(found, "state", column)
            found["state"] = (column, word)
            i += 1
        elif not sides:
            sides.append(("bare", column, word))
            i += 1
        else:
            raise PacketError(_unexpected(word, proto), column)
    return _packet(text, direction, proto, found, sides)


def _type_like(word: str) -> bool:
    """Whether *word* is written like an ICMP type's name (not an address or a keyword)."""
    keywords = ("from", "to", "on", "hop-limit", "any", *STATES)
    return bool(re.fullmatch(r"[a-z][a-z0-9-]*", word)) and word not in keywords


def _once(found: dict[str, tuple[int, object]], key: str, column: int) -> None:
    if key in found:
        raise PacketError(f"{key} is said twice", column)


def _unexpected(word: str, proto: str) -> str:
    if proto in ("icmp", "icmpv6") and re.fullmatch(r"[a-z0-9-]+", word):
        hint = did_you_mean(word, icmp.table(proto)) or " (e.g. echo-request)"
        return f"unknown {proto} type '{word}'{hint}; the type comes right after the protocol"
    return (
        f"unexpected '{word}'; write [in|out] PROTOCOL [TYPE] [FROM] [-> TO] "
        "[on INTERFACE] [new|established|related|invalid] [hop-limit N]"
    )


def _packet(
    text: str,
    direction: Direction,
    proto: str,
    found: dict[str, tuple[int, object]],
    sides: list[tuple[str, int, str]],
) -> Packet:
    ends: dict[str, Endpoint] = {}
    families: set[Family] = set(_proto_families(proto))
    given = {side for side, _, _ in sides}
    # a bare first endpoint sends, when `->` names the receiver; alone, it is the peer
    bare = "from" if "to" in given or direction == "in" else "to"
    for side, column, word in ((bare if s == "bare" else s, c, w) for s, c, w in sides):
        if side in ends:
            raise PacketError(f"a second {'sender' if side == 'from' else 'receiver'}", column)
        point = endpoint(word, column)
        if point.port is not None and proto not in PORTED:
            raise PacketError(f"{proto} has no ports; leave ':{point.port}' out", column)
        if point.address is not None:
            family: Family = "ipv4" if point.address[0] == 4 else "ipv6"
            if family not in families:
                raise PacketError(_family_clash(word, family, proto, families), column)
            families = {family}
        ends[side] = point
    sender, receiver = ends.get("from", Endpoint()), ends.get("to", Endpoint())
    remote, local = (sender, receiver) if direction == "in" else (receiver, sender)
    packet = Packet(
        text=text.strip(" \t"),
        direction=direction,
        proto=proto,
        families=tuple(f for f in FAMILIES if f in families),
        remote=remote,
        local=local,
    )
    if proto in PORTED and receiver.port is None:
        raise PacketError(f"name the destination port: {proto} 203.0.113.5 -> 443", len(text) + 1)
    if proto in ("icmp", "icmpv6") and "type" not in found:
        raise PacketError(
            f"name the {proto} type right after it, e.g. {proto} echo-request", len(text) + 1
        )
    return _clauses(packet, found)


def _clauses(packet: Packet, found: dict[str, tuple[int, object]]) -> Packet:
    changes: dict[str, object] = {}
    if "type" in found:
        changes["icmp_type"] = found["type"][1]
        changes["hop_limit"] = icmp.hop_limit(str(found["type"][1]))
    if "on" in found:
        column, name = found["on"]
        if not IFACE_RE.fullmatch(str(name)) or str(name).endswith(("*", "+")):
            raise PacketError(
                f"invalid interface '{name}'; a name of at most 15 letters, digits and _.-",
                column,
            )
        changes["interface"] = name
    if "hop-limit" in found:
        column, value = found["hop-limit"]
        text = str(value)
        if not (text.isascii() and text.isdigit()) or len(text) > 3 or int(text) > 255:
            raise PacketError(f"invalid hop limit '{text}'; a number 0-255", column)
        changes["hop_limit"] = int(text)
    if "state" in found:
        changes["state"] = found["state"][1]
    return replace(packet, **changes)  # type: ignore[arg-type]


def _proto_families(proto: str) -> tuple[Family, ...]:
    return {"icmp": ("ipv4",), "icmpv6": ("ipv6",)}.get(proto, FAMILIES)  # type: ignore[return-value]


def _family_clash(word: str, family: Family, proto: str, families: set[Family]) -> str:
    if proto in ("icmp", "icmpv6"):
        other = "icmpv6" if proto == "icmp" else "icmp"
        return f"'{word}' is an {family.replace('ip', 'IP')} address, {proto} is not; write {other}"
    return f"'{word}' is an {family.replace('ip', 'IP')} address and the other one is not"
