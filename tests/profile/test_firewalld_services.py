"""A second opinion on the port database: firewalld's own service definitions.

tests/data/firewalld-services.json is a snapshot of the 221 services firewalld 1.3 ships
(/usr/lib/firewalld/services), so the test needs no firewalld. Every service whose name
is also a name or alias in fwgen's catalogue must open the same ports, or the entry's
`sources:` must say why not, as ``"firewalld: ..."``; a note on an entry that agrees
with firewalld now is stale and fails too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fwgen.profile.portdb import catalogue
from fwgen.profile.portquery import split_source
from fwgen.profile.services import Service
from tests.conftest import REPO

SNAPSHOT = REPO / "tests" / "data" / "firewalld-services.json"
SERVICES: dict[str, dict[str, Any]] = json.loads(SNAPSHOT.read_text(encoding="utf-8"))["services"]


def spread(ports: list[str]) -> set[str]:
    """``9101-9103/tcp`` → {9101/tcp, 9102/tcp, 9103/tcp}; ``/esp`` (a protocol) as is."""
    out = set()
    for port in ports:
        number, _, proto = port.partition("/")
        if number and not number[:1].isdigit():  # a protocol in fwgen's catalogue: gre, esp
            out.add(f"{number} (protocol)")
            continue
        first, _, last = number.partition("-")
        if not first:
            out.add(f"{proto} (protocol)")
            continue
        out |= {f"{n}/{proto}" for n in range(int(first), int(last or first) + 1)}
    return out


def firewalld_ports(name: str) -> set[str]:
    """A firewalld service's ports and protocols, its includes' too."""
    service = SERVICES[name]
    found = spread(service["ports"]) | {f"{p} (protocol)" for p in service.get("protocols", [])}
    for included in service.get("includes", []):
        found |= firewalld_ports(included)
    return found


def fwgen_ports(service: Service) -> set[str]:
    return spread([str(p) for p in service.ports])


def shared() -> dict[str, Service]:
    """firewalld's service names that fwgen knows, by name or alias."""
    by_name = {}
    for service in catalogue().services:
        for name in (service.name, *service.aliases):
            by_name.setdefault(name, service)
    return {name: by_name[name] for name in SERVICES if name in by_name}


def firewalld_note(service: Service) -> str:
    return next(
        (note for key, note in map(split_source, service.sources) if key == "firewalld"), ""
    )


def test_the_snapshot_is_firewalld_1_3() -> None:
    assert len(SERVICES) == 221
    assert SERVICES["ssh"] == {"ports": ["22/tcp"]}
    assert SERVICES["samba"]["includes"] == ["samba-client"]


def test_every_difference_from_firewalld_is_explained() -> None:
    unexplained = [
        f"{name} ({service.name}): fwgen {sorted(fwgen_ports(service))}, "
        f"firewalld {sorted(firewalld_ports(name))}"
        for name, service in shared().items()
        if fwgen_ports(service) != firewalld_ports(name) and not firewalld_note(service)
    ]
    assert unexplained == [], "add a 'firewalld: why' source to each entry"


def test_no_firewalld_note_is_stale() -> None:
    """A note names firewalld's service, and that service still differs (the entry of its
    own, plex-discovery, explains a part of firewalld's plex)."""
    differs = {s.name for n, s in shared().items() if fwgen_ports(s) != firewalld_ports(n)}
    noted = {s.name for s in catalogue().services if firewalld_note(s)}
    assert noted - differs == {"plex-discovery"}
    for service in catalogue().services:
        note = firewalld_note(service)
        if note and service.name != "plex-discovery":
            assert note.split()[0] in SERVICES, (
                f"{service.name}: the note names no firewalld service"
            )


def test_the_gaps_firewalld_showed_are_closed() -> None:
    """What broke real deployments: RADIUS accounting, and discovery that has an entry
    its main entry points to."""
    services = {s.name: s for s in catalogue().services}
    assert fwgen_ports(services["radius"]) == {"1812/udp", "1813/udp"}
    assert fwgen_ports(services["syncthing-discovery"]) == {"21027/udp"}
    assert "syncthing-discovery" in services["syncthing"].description
    assert fwgen_ports(services["plex-discovery"]) == {
        f"{p}/udp" for p in (32410, 32412, 32413, 32414)
    }
    assert services["plex-discovery"].exposure == "lan-only"
    assert "plex-discovery" in services["plex"].description


def test_the_docs_count_what_the_comparison_finds() -> None:
    differs = [n for n, s in shared().items() if fwgen_ports(s) != firewalld_ports(n)]
    readme = " ".join((REPO / "docs/ports.md").read_text(encoding="utf-8").split())
    assert (
        f"firewalld 1.3 ships {len(SERVICES)} service definitions; {len(shared())} of their "
        f"names are names or aliases here, and {len(differs)} of those open other ports"
    ) in readme


def snapshot_of(folder: Path) -> dict[str, Any]:
    """The snapshot's `services`, read from firewalld's own folder of definitions."""
    from xml.etree import ElementTree

    out: dict[str, Any] = {}
    for path in sorted(folder.glob("*.xml")):
        root = ElementTree.parse(path).getroot()
        entry: dict[str, Any] = {
            "ports": sorted(f"{p.get('port')}/{p.get('protocol')}" for p in root.findall("port"))
        }
        lists = {
            "protocols": [p.get("value") for p in root.findall("protocol")],
            "source_ports": [
                f"{p.get('port')}/{p.get('protocol')}" for p in root.findall("source-port")
            ],
            "includes": [i.get("service") for i in root.findall("include")],
            "helpers": [h.get("name") for h in root.findall("helper")],
        }
        entry |= {k: sorted(v) for k, v in lists.items() if v}
        destination = root.find("destination")
        if destination is not None:
            entry["destination"] = dict(sorted(destination.attrib.items()))
        out[path.stem] = entry
    return out


def test_the_snapshot_matches_an_installed_firewalld() -> None:
    """Where firewalld 1.3.3 is installed (CI installs it), the snapshot is what it ships."""
    folder = Path("/usr/lib/firewalld/services")
    if not (folder / "ssh.xml").is_file():
        return  # nothing to compare with here; the snapshot stands
    version = Path("/usr/lib/python3/dist-packages/firewall/config/__init__.py")
    if version.is_file() and "VERSION = '1.3.3'" not in version.read_text():
        return  # another release: the snapshot is of 1.3.3
    assert snapshot_of(folder) == SERVICES


if __name__ == "__main__":  # python -m tests.profile.test_firewalld_services: refresh the snapshot
    about = json.loads(SNAPSHOT.read_text(encoding="utf-8"))["about"]
    data = {"about": about, "services": snapshot_of(Path("/usr/lib/firewalld/services"))}
    SNAPSHOT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
