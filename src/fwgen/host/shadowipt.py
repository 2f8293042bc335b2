"""The shadow on a live host, iptables (see `fwgen.targets.shadowipt` for its shape and
`fwgen.host.shadow` for nftables'): load it beside the live rules, read it, remove
exactly it: its jumps, its chains of the mangle table, its ipsets.

What the kernel returns is read as untrusted, as for nftables: a chain of the shadow's
name whose first rule lacks the mark is someone else's and is never touched, and every
set element is checked before it counts.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import cast

from fwgen.errors import FwgenError
from fwgen.host.backends import run
from fwgen.host.shadowmark import COMMENT, PROTOCOLS, NotOurs, Table, foreign
from fwgen.policy.ir import Direction, Family
from fwgen.policy.shadowed import Recorded, Sighting

CHAINS: dict[Direction, str] = {"in": "FWGEN-SHADOW-IN", "out": "FWGEN-SHADOW-OUT"}
HOOKS: dict[Direction, str] = {"in": "INPUT", "out": "OUTPUT"}
FULL = "fwgen shadow: the sets are full, not recorded"
LOADED = "fwgen-shadow-loaded"
TIMEOUT = 2147483
TOOLS: dict[Family, tuple[str, str, str]] = {
    "ipv4": ("iptables", "iptables-save", "iptables-restore"),
    "ipv6": ("ip6tables", "ip6tables-save", "ip6tables-restore"),
}
SET_NAME = re.compile(r"^fwgen-shadow-(last|first|count)-(in|out)-(v4|v6)$")
ELEMENT = re.compile(
    r"^add (\S+) ([0-9a-fA-F:.]+),([a-z0-9-]+):([0-9]+)(?:/[0-9]+)?"
    r"(?: timeout ([0-9]+))?(?: packets ([0-9]+) bytes ([0-9]+))?$"
)
LOADED_LINE = re.compile(rf'^add {LOADED} 0 timeout ([0-9]+) comment "([ -~]*)"$')
PORTED = ("tcp", "udp", "udplite", "sctp")
FAMILIES: dict[str, Family] = {"v4": "ipv4", "v6": "ipv6"}


def parse(saves: dict[Family, str], sets: str, now: float) -> Table | None:
    """The shadow in `iptables-save -c -t mangle` (per family) and `ipset save` output, or
    None when neither family has its chains. NotOurs when a chain lacks the mark."""
    mark = None
    unrecorded: dict[tuple[str, str], int] = {}
    for family, text in saves.items():
        for direction, chain in CHAINS.items():
            lines = [
                line
                for line in text.splitlines()
                if re.match(rf"^(\[\d+:\d+\] )?-A {chain} ", line)
            ]
            if not lines and f":{chain} " not in text:
                continue
            first = re.search(r'--comment "([ -~]*?)" -j RETURN$', lines[0]) if lines else None
            found = COMMENT.fullmatch(first.group(1)) if first else None
            if found is None:
                raise foreign(
                    f"chain {chain} of the mangle table",
                    "its first rule does not carry fwgen's mark",
                    f"{TOOLS[family][0]} -t mangle -F {chain} and -X {chain}",
                )
            mark = found
            for line in lines:
                full = re.match(
                    rf'^\[(\d+):\d+\] -A {chain} -m comment --comment "{FULL}" -j RETURN$', line
                )
                if full and int(full.group(1)):
                    unrecorded[(direction, family)] = int(full.group(1))
    if mark is None:
        return None
    prefix_v4, prefix_v6, size = (int(mark.group(i)) for i in (1, 2, 3))
    recorded = Recorded(mark.group(4), prefix_v4, prefix_v6, size, None, unrecorded=unrecorded)
    times: dict[tuple[str, str, str, str, int], float] = {}
    counts: list[Sighting] = []
    bad = 0
    for line in sets.splitlines():
        loaded = LOADED_LINE.match(line)
        if loaded and int(loaded.group(1)) <= TIMEOUT:
            recorded.loaded_at = now - (TIMEOUT - int(loaded.group(1)))
        if not line.startswith("add fwgen-shadow-") or line.startswith(f"add {LOADED} "):
            continue
        found = ELEMENT.match(line)
        name = SET_NAME.match(found.group(1)) if found else None
        if found is None or name is None:
            bad += 1
            continue
        kind, way, tail = name.groups()
        key = _key(found.group(2), found.group(3), found.group(4), FAMILIES[tail], recorded)
        if key is None:
            bad += 1
        elif kind == "count" and found.group(6) is not None:
            seen = Sighting(
                cast(Direction, way), FAMILIES[tail], *key, int(found.group(6)), int(found.group(7))
            )
            counts.append(seen)
        elif kind != "count" and found.group(5) is not None and int(found.group(5)) <= TIMEOUT:
            times[(kind, way, key[0], key[1], key[2])] = now - (TIMEOUT - int(found.group(5)))
        else:
            bad += 1
    for seen in counts:
        at = (seen.direction, seen.network, seen.proto, seen.port)
        since, until = times.get(("first", *at)), times.get(("last", *at))
        recorded.sightings.append(replace(seen, first_seen=since, last_seen=until))
    if bad:
        recorded.ignored.append(
            f"the shadow's ipsets: {bad} elements with unexpected contents left out"
        )
    return Table(0, recorded)


def _key(
    address: str, proto: str, port: str, family: Family, recorded: Recorded
) -> tuple[str, str, int] | None:
    prefix = recorded.prefix_v4 if family == "ipv4" else recorded.prefix_v6
    try:
        network = ipaddress.ip_network(f"{address}/{prefix}", strict=True)
    except ValueError:
        return None
    if network.version != (4 if family == "ipv4" else 6) or not 0 <= int(port) < 65536:
        return None
    if proto in PROTOCOLS:
        name = PROTOCOLS[proto]
    elif proto.isdigit() and int(proto) < 256:
        name = f"proto {int(proto)}"
    else:
        return None
    return str(network), name, int(port) if name in PORTED else 0


def read() -> Table | None:
    saves = {family: run(tools[1], "-c", "-t", "mangle") for family, tools in TOOLS.items()}
    sets = run("ipset", "save", check=False)
    return parse(saves, sets, time.time())


def _ours_everywhere() -> list[str]:
    """The shadow's ipsets on this host."""
    return [
        name
        for name in run("ipset", "list", "-n").split()
        if name == LOADED or SET_NAME.match(name)
    ]


def stop() -> Recorded | None:
    """Remove the jumps, the chains and the ipsets of the shadow: what it had recorded."""
    table = read()
    if table is None:
        _leftovers()
        return None
    _remove()
    return table.recorded


def _leftovers() -> None:
    """Sets of a shadow whose chains are gone (a load that flushed the mangle table):
    destroyed when the shadow's mark says they are fwgen's, refused otherwise."""
    names = _ours_everywhere()
    if not names:
        return
    marked = [
        found
        for line in run("ipset", "save", LOADED, check=False).splitlines()
        if (found := LOADED_LINE.match(line)) and COMMENT.fullmatch(found.group(2))
    ]
    if not marked:
        raise NotOurs(
            f"ipsets named like the shadow's ({', '.join(names)}) are here without its chains "
            "or its mark; fwgen leaves them alone: if no one needs them, `ipset destroy` them"
        )
    for name in names:
        run("ipset", "destroy", name)


def _remove() -> None:
    """Every jump to the shadow's chains, the chains, then its ipsets (which the chains use)."""
    for tool, save, _ in TOOLS.values():
        text = run(save, "-t", "mangle")
        for direction, chain in CHAINS.items():
            if f":{chain} " not in text:
                continue
            for line in text.splitlines():
                if line.startswith(f"-A {HOOKS[direction]} ") and line.endswith(f"-j {chain}"):
                    run(tool, "-t", "mangle", "-D", *shlex.split(line)[1:])
            run(tool, "-t", "mangle", "-F", chain)
            run(tool, "-t", "mangle", "-X", chain)
    for name in _ours_everywhere():
        run("ipset", "destroy", name)


def start(files: dict[str, str]) -> bool:
    """Load the shadow (replacing an earlier one); on any failure, remove what was loaded."""
    replaced = stop() is not None
    with tempfile.TemporaryDirectory(prefix="fwgen-shadow-") as folder:
        paths = {name: Path(folder, name) for name in files}
        for name, path in paths.items():
            path.write_text(files[name], encoding="utf-8")
        try:
            run("ipset", "restore", stdin=paths["fwgen-shadow.ipsets"])
            for family, (_, _, restore) in TOOLS.items():
                name = "fwgen-shadow.v4" if family == "ipv4" else "fwgen-shadow.v6"
                run(restore, "--noflush", stdin=paths[name])
        except FwgenError:
            _remove()
            raise
    return replaced
