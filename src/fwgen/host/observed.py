"""What a host is seen to expose, read from what admins already collect: an nmap XML
report taken from outside (``nmap -oX``), and ``ss -tulpnH`` output taken on the host
(``-p`` names the programs; ``ss -tulnH`` works too).

A port's state is nmap's own word: ``open|filtered`` (no answer, which is what every
UDP port a firewall drops looks like) stays that, and is not ``open``.
"""

from __future__ import annotations

import io
import ipaddress
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from fwgen.errors import FwgenError
from fwgen.policy.ir import Family
from fwgen.read.yamlsource import check_text, lines, read_text


@dataclass(frozen=True)
class Observed:
    """One port seen on the host: by a scan (nmap's state, e.g. open, filtered or
    open|filtered) or listening (``ss``; the address keeps its ``%DEVICE``)."""

    family: Family
    proto: str
    port: int
    state: str
    address: str = ""
    process: str = ""


MAX_INPUT = 64 * 1024 * 1024  # nmap XML of a /16 with every port is well under this
MAX_HOST_ELEMENTS = 1_000_000  # one host with every port, each with its service, is ~400,000


def read_nmap(path: Path, shown: str | None = None) -> tuple[list[Observed], dict[str, set[int]]]:
    """Ports nmap reported for every host in the file, and the ports it scanned per protocol.

    The report is read like every other input (a regular file, bounded, printable text);
    a document type with entity declarations is refused, since nmap never writes one and
    entities are how XML expands a small file into a huge one.
    """
    shown = shown or str(path)
    text = read_text(path, shown, what="scan", limit=MAX_INPUT)
    if "<!ENTITY" in text:
        raise FwgenError(
            "the scan declares XML entities, which nmap never writes; give nmap's own -oX output",
            path=shown,
            line=text.count("\n", 0, text.index("<!ENTITY")) + 1,
        )
    scanned: dict[str, list[tuple[int, int]]] = {}
    seen: list[Observed] = []
    events = ET.iterparse(io.BytesIO(text.encode()), events=("start", "end"))
    try:
        _, root = next(events)
        if root.tag != "nmaprun":
            raise FwgenError(
                "not an nmap XML report (expected <nmaprun>; run nmap with -oX)", path=shown
            )
        open_elements, in_host = [root], 0
        for event, element in events:
            if event == "start":
                open_elements.append(element)
                if element.tag == "host" or in_host:
                    in_host += 1  # elements read inside the <host> being read
                if in_host > MAX_HOST_ELEMENTS:
                    raise FwgenError(
                        f"a <host> of more than {MAX_HOST_ELEMENTS:,} elements; is this nmap's "
                        "own -oX output?",
                        path=shown,
                    )
                continue
            open_elements.pop()
            if element.tag == "scaninfo":
                spans = scanned.setdefault(element.get("protocol", ""), [])
                spans += _port_spans(element.get("services", ""), shown)
            elif element.tag == "host":
                seen += _host_ports(element, shown)
                in_host = 0  # hosts do not nest in nmap's reports
            if open_elements and not in_host and len(open_elements[-1]) > 64:
                open_elements[-1].clear()  # what is read is let go: memory stays small
    except ET.ParseError as exc:
        raise FwgenError(
            f"not an nmap XML report: {str(exc).partition(':')[0]}",
            path=shown,
            line=exc.position[0],
        ) from None
    except StopIteration:
        raise FwgenError("not an nmap XML report: the file is empty", path=shown) from None
    return seen, {proto: _expand(spans) for proto, spans in scanned.items()}


def _host_ports(host: ET.Element, shown: str) -> list[Observed]:
    address = next((a for a in host.iter("address") if a.get("addrtype") in ("ipv4", "ipv6")), None)
    if address is None:
        return []
    family: Family = "ipv6" if address.get("addrtype") == "ipv6" else "ipv4"
    out = []
    for port in host.iter("port"):
        state = port.find("state")
        out.append(
            Observed(
                family=family,
                proto=port.get("protocol", ""),
                port=_port_number(port.get("portid", ""), shown, "portid"),
                state=state.get("state", "") if state is not None else "",
                address=address.get("addr", ""),
            )
        )
    return out


def _port_number(text: str, shown: str, what: str, line: int | None = None) -> int:
    """A port number 0-65535 from a report (nmap can scan port 0); else a one-line error."""
    if text.isascii() and text.isdigit() and len(text) <= 5 and int(text) <= 65535:
        return int(text)
    quoted = text if len(text) <= 20 else text[:17] + "..."
    raise FwgenError(f"{what} {quoted!r} is not a port number (0-65535)", path=shown, line=line)


def _port_spans(text: str, shown: str) -> list[tuple[int, int]]:
    """nmap's ``services="1-1000,8080"`` as (first, last) spans of real port numbers."""
    spans = []
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        first = _port_number(low, shown, "scaninfo services")
        spans.append((first, _port_number(high, shown, "scaninfo services") if high else first))
    return spans


def _expand(spans: list[tuple[int, int]]) -> set[int]:
    """The ports of overlapping spans, each counted once (at most the 65,536 there are)."""
    ports: set[int] = set()
    end = -1
    for first, last in sorted(spans):
        if last > end:
            ports.update(range(max(first, end + 1), last + 1))
            end = last
    return ports


SS_LINE = re.compile(
    r"^(?P<proto>tcp|udp)\s+\S+\s+\d+\s+\d+\s+(?P<local>\S+):(?P<port>\d+|\*)\s+\S+(?:\s+(?P<process>.*))?$"
)


def read_ss(text: str, shown: str) -> list[Observed]:
    """Listeners from `ss -tulpnH` (or `ss -tulnH`) output (a header line is skipped)."""
    out = []
    for number, line in lines(check_text(text, shown)):
        if not line.strip() or line.startswith("Netid"):
            continue
        match = SS_LINE.match(line.strip())
        if not match:
            raise FwgenError(
                "not `ss -tulpnH` output (expected: PROTO STATE RECV-Q SEND-Q LOCAL:PORT PEER [PROCESS])",
                path=shown,
                line=number,
            )
        if match["port"] == "*":
            continue
        local = match["local"].replace("[", "").replace("]", "")  # keeps %DEVICE
        family: Family = "ipv6" if ":" in local else "ipv4"
        process = re.search(r'users:\(\("([^"]+)"', match["process"] or "")
        out.append(
            Observed(
                family,
                match["proto"],
                _port_number(match["port"], shown, "port", number),
                "listening",
                local,
                process[1] if process else "",
            )
        )
    return out


def loopback(address: str) -> bool:
    """Whether a listener is reachable from this host only: a loopback address in any
    spelling (``127.0.0.53``, ``::1``, ``::ffff:127.0.0.1``), or bound to the loopback
    interface (``0.0.0.0%lo``, as ``ss`` shows ``SO_BINDTODEVICE``)."""
    address, _, device = address.strip("[]").partition("%")
    if device == "lo":
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return ip.is_loopback or bool(mapped and mapped.is_loopback)
