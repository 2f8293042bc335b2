"""`fwgen ports`: look services up in the port database by port, range, name or words.

A port query lists the services that name the port first (backdoors, then the
narrowest), then under a marker the broad ranges that merely hold it (RTP media,
Kubernetes NodePorts), so that the specific answer is never drowned.
"""

from __future__ import annotations

import re
import socket
from typing import Any

from fwgen.errors import FwgenError
from fwgen.profile.portdb import Catalogue, span, specific_first
from fwgen.profile.services import Service, ServicePort
from fwgen.table import format_table

# The reference documents the built-in catalogue was checked against, fact by fact;
# an entry's `sources:` names them by these keys, and users see each by its title
# (tests/data/port-facts.yaml says which file each one was read from).
DOCUMENTS: dict[str, str] = {
    "netconcepts": "Networking Concepts: Ports, common ports with a risk factor and LAN-only "
    "advice",
    "tutorial": "What are Ports and Services, a tutorial's table of common TCP/IP ports",
    "ports-notes": "Ports, notes of August 2024: common services, lsof, ss and nmap",
    "computer-port": "What is a computer port?, with port-scanner packages: basic, web, games, "
    "malicious",
    "farrow": "Rik Farrow, Ports and Services (1995-2001), a port list with a Safe? column",
    "firewalld": "firewalld 1.3's service definitions (/usr/lib/firewalld/services), where "
    "they differ from fwgen's and why",
}
BROAD_MARKER = "-- broad ranges that hold the port but do not name it:"
QUERY_PORT = re.compile(r"([0-9]{1,5})(?:-([0-9]{1,5}))?(?:/(tcp|udp))?")
SOURCE_RE = re.compile(r"([a-z0-9][a-z0-9-]*)(?::\s*(.*))?", re.DOTALL)


def split_source(text: str) -> tuple[str, str]:
    """``"farrow: lists 445 as LDAP"`` → ``("farrow", "lists 445 as LDAP")``."""
    match = SOURCE_RE.fullmatch(text)
    if match is None:
        return text, ""
    return match.group(1), match.group(2) or ""


def system_service(port: int, proto: str) -> str | None:
    """The name the system's services database gives a port, if any."""
    try:
        return socket.getservbyport(port, proto)
    except (OSError, OverflowError):
        return None


def describe(service: Service, source: str, broad: bool = False) -> dict[str, Any]:
    """A service as a JSON-ready dict (the shape `fwgen ports --format json` prints)."""
    sources = []
    for text in service.sources:
        key, note = split_source(text)
        sources.append({"document": key, "title": DOCUMENTS.get(key, ""), "note": note})
    return {**service.model_dump(mode="json"), "sources": sources, "source": source, "broad": broad}


def query(cat: Catalogue, text: str | None) -> list[dict[str, Any]]:
    """Entries matching a port (``3306``), port/proto (``514/udp``), range (``6000-6010``),
    name or alias (``www``), or words (``mail``); everything when *text* is empty.

    For ports, the services that name them come first (``broad`` false), then the broad
    ranges that only hold them (``broad`` true). A port number the catalogue does not know
    is looked up in the system's services database and returned without risk data.
    """
    text = (text or "").strip().lower()
    if not text:
        return [describe(s, cat.origin(s)) for s in cat.services]
    match = QUERY_PORT.fullmatch(text)
    if match:
        start = int(match.group(1))
        end = int(match.group(2) or start)
        proto = match.group(3)
        if not (0 < start <= end <= 65535):
            raise FwgenError(f"invalid port query '{text}'; ports are 1-65535, lower first")
        named = {
            s.name
            for p in ((proto,) if proto else ("tcp", "udp"))
            for s in cat.named_at(start, end, p)
        }
        found = cat.by_port(start, end, proto)
        specific = sorted((s for s in found if s.name in named), key=specific_first)
        broad = sorted((s for s in found if s.name not in named), key=lambda s: (span(s), s.name))
        out = [describe(s, cat.origin(s)) for s in specific]
        out += [describe(s, cat.origin(s), broad=True) for s in broad]
        return out or _system(start, end, proto)
    service = cat.get(text)
    if service is not None:
        return [describe(service, cat.origin(service))]
    return [describe(s, cat.origin(s)) for s in cat.search(text)]


def as_text(found: list[dict[str, Any]], sources: bool = False) -> str:
    """The `fwgen ports` table; with *sources*, a SOURCES column and what each key means."""
    headers = ["NAME", "PORTS", "RISK", "EXPOSURE", "CATEGORY", "TITLE"]
    if sources:
        headers.insert(5, "SOURCES")
    rows = []
    for e in found:
        row = [
            e["name"],
            ", ".join(str(ServicePort(**p)) for p in e["ports"]),
            e["risk"] or "-",
            e["exposure"] or "-",
            e["category"] or "-",
            e["title"] + (f" (aliases: {', '.join(e['aliases'])})" if e["aliases"] else ""),
        ]
        if sources:
            row.insert(5, ", ".join(s["document"] for s in e["sources"]) or "-")
        rows.append(row)
    lines = format_table(headers, rows).splitlines()
    first_broad = next((i for i, e in enumerate(found) if e.get("broad")), None)
    if first_broad is not None:
        lines.insert(first_broad + 1, BROAD_MARKER)
    if sources:
        lines += _legend(found)
    return "\n".join(lines) + "\n"


def _legend(found: list[dict[str, Any]]) -> list[str]:
    """What each document key means, then every entry's notes on where it disagrees."""
    keys = sorted({s["document"] for e in found for s in e["sources"]})
    if not keys:
        return []
    lines = ["", "sources:"]
    width = max(len(k) for k in keys)
    lines += [f"  {k:<{width}}  {DOCUMENTS.get(k, '(not a built-in reference)')}" for k in keys]
    notes = [
        f"  {e['name']}: {s['document']}: {s['note']}"
        for e in found
        for s in e["sources"]
        if s["note"]
    ]
    return lines + (["notes:", *notes] if notes else [])


def _system(start: int, end: int, proto: str | None) -> list[dict[str, Any]]:
    out = []
    for port in range(start, min(end, start + 1024) + 1):
        for p in (proto,) if proto else ("tcp", "udp"):
            name = system_service(port, p)
            if name:
                out.append(
                    {
                        "name": name,
                        "title": f"{name} (system services database)",
                        "description": "",
                        "aliases": [],
                        "ports": [{"proto": p, "start": port, "end": port}],
                        "risk": None,
                        "risk_notes": "",
                        "exposure": None,
                        "category": None,
                        "alternative": None,
                        "helper": None,
                        "destinations": [],
                        "family": None,
                        "processes": [],
                        "sources": [],
                        "source": "system",
                        "broad": False,
                    }
                )
    return out
