"""Packets by the line, from a file, standard input or the command line; and tables of
packets with the verdict each must get (``fwgen query --expect``)::

    # what must pass and what must not, beside the site's profiles
    accept tcp 10.20.0.5 -> 22        # the admins reach SSH
    drop   tcp 198.51.100.9 -> 22
    reject tcp 10.66.1.1 -> 22 on eth1

A line is a packet (`fwgen.review.packet`), after its verdict in an expectations table:
``accept``, ``drop`` or ``reject`` (or ``accepted``, ``dropped``, ``rejected``). ``#``
starts a comment; blank lines are skipped. Every bad line is reported, each as
``FILE:LINE:COLUMN: what is wrong``.
"""

from __future__ import annotations

from dataclasses import dataclass

from fwgen.errors import FwgenError, FwgenErrors
from fwgen.read.yamlsource import lines
from fwgen.review.packet import Packet, PacketError, parse_packet
from fwgen.review.query import VERDICTS, Verdict

MAX_PACKETS = 100_000
MAX_REPORTED = 20  # bad lines reported one by one; the rest are counted
EXPECTED: dict[str, Verdict] = {
    **{v: v for v in VERDICTS},
    "accept": "accepted",
    "drop": "dropped",
    "reject": "rejected",
}


@dataclass(frozen=True)
class Line:
    where: str  # FILE:LINE, or "packet N" for the command line's
    packet: Packet
    expected: Verdict | None = None


def read_packets(text: str, display: str, expect: bool = False) -> list[Line]:
    """The packets of *text* (checked by the guarded reader), one a line; with *expect*,
    each after the verdict it must get."""
    found: list[Line] = []
    errors: list[FwgenError] = []
    for number, raw in lines(text):
        body = raw.split("#", 1)[0]
        if not body.strip(" \t"):
            continue
        where = f"{display}:{number}"
        if len(found) >= MAX_PACKETS:
            raise FwgenError(f"{where}: more than {MAX_PACKETS:,} packets; split the table")
        try:
            found.append(_line(body, where, expect))
        except PacketError as error:
            errors.append(error.at(where))
    _report(errors)
    return found


def packets_of(arguments: list[str]) -> list[Line]:
    """Packets given on the command line, one an argument."""
    found, errors = [], []
    for n, text in enumerate(arguments, 1):
        where = f"packet {n}"
        try:
            found.append(Line(where, parse_packet(text)))
        except PacketError as error:
            quoted = (
                f" '{text}'" if text.isascii() and text.isprintable() and len(text) <= 60 else ""
            )
            errors.append(FwgenError(f"{where}{quoted}, column {error.column}: {error.message}"))
    _report(errors)
    return found


def _line(body: str, where: str, expect: bool) -> Line:
    if not expect:
        return Line(where, parse_packet(body))
    stripped = body.lstrip(" \t")
    indent = len(body) - len(stripped)
    word = stripped.split(" ", 1)[0].split("\t", 1)[0]
    if word not in EXPECTED:
        raise PacketError(
            f"'{word[:20]}': start the line with the verdict the packet must get "
            "(accept, drop or reject), e.g. 'drop tcp 198.51.100.9 -> 22'",
            indent + 1,
        )
    rest = indent + len(word)
    try:
        packet = parse_packet(body[rest:])
    except PacketError as error:
        raise PacketError(error.message, error.column + rest) from None
    return Line(where, packet, EXPECTED[word])


def _report(errors: list[FwgenError]) -> None:
    if not errors:
        return
    if len(errors) == 1:
        raise errors[0]
    shown = errors[:MAX_REPORTED]
    if len(errors) > MAX_REPORTED:
        shown.append(FwgenError(f"... and {len(errors) - MAX_REPORTED} more bad lines"))
    raise FwgenErrors(shown)
