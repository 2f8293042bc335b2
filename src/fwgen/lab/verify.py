"""`fwgen verify`: load a ruleset into a throw-away lab and probe every cell its Policy
implies (fwgen.lab.cells); what the kernel answers is compared with what the Policy says.

The lab is the tests' lab: network namespaces of its own (never the machine's), ufw
over private copies of the paths it writes, firewalld and its D-Bus in a private mount
namespace. Everything it started is stopped by pid and every namespace deleted when it
ends, also on SIGINT, SIGTERM or SIGHUP (fwgen.stopping): one that comes while that
happens waits until it is done, and the run then ends as stopped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fwgen import stopping
from fwgen.errors import FwgenError
from fwgen.lab import cells
from fwgen.lab.cells import Cell, Plan, server_address
from fwgen.lab.firewalld import Firewalld, missing_firewalld
from fwgen.lab.netns import Lab, LabError, missing_tools
from fwgen.policy.ir import FAMILIES, Family, Policy

SYNSCAN = Path(__file__).with_name("synscan.py")
# The tools each target's loader runs in the lab, beside `ip`.
TOOLS = {
    "nftables": ("nft",),
    "iptables": ("iptables-restore", "ip6tables-restore", "ipset"),
    "ufw": ("ufw", "iptables-restore", "ipset", "unshare"),
    "firewalld": ("nft", "unshare"),
}
MAX_RETRIES = 256  # ports a scan asks again with a connection
WHO = "fwgen verify needs"


@dataclass
class Result:
    cell: Cell
    got: str

    @property
    def ok(self) -> bool:
        return self.got == self.cell.expected


@dataclass
class Report:
    profile: str
    target: str
    results: list[Result] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    scanned: int = 0  # TCP ports scanned beyond the cells (their mismatches are results)

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if not r.ok]


def missing(target: str) -> str:
    """Why `fwgen verify -t target` cannot run here, or the empty string."""
    found = missing_tools(*TOOLS[target], who=WHO)
    if not found and target == "firewalld":
        found = missing_firewalld(who=WHO)
    return found


def verify(
    policy: Policy, target: str, files: dict[str, str], progress: Callable[[str], None]
) -> Report:
    """Load *files* (rendered for *target*, or given) into a new lab and probe it.
    SIGINT, SIGTERM and SIGHUP stop it (`fwgen.stopping.Stopped`), the lab removed; one
    that comes while the lab is removed is raised once it is."""
    with stopping.stopping(stopping.STOP_SIGNALS):
        lab = Lab()
        try:
            lab.__enter__()
            return verify_in(lab, policy, target, files, progress)
        finally:
            with stopping.held():  # a second Ctrl-C cannot leave half of the lab
                lab.__exit__()


def verify_in(
    lab: Lab,
    policy: Policy,
    target: str,
    files: dict[str, str],
    progress: Callable[[str], None],
) -> Report:
    """Probe *files* loaded into *lab*, on links of their own (a lab may serve several
    profiles in turn: each load replaces the last, as on a host)."""
    report = Report(policy.profile, target)
    first = lab.made + 1
    plan = cells.plan(policy, f"{lab.prefix[:8]}s%d", first)
    report.skipped = plan.skipped
    progress(f"lab: {len(plan.links)} link(s), namespaces {lab.prefix}-*")
    build(lab, plan)
    if target == "firewalld" and lab.firewalld is None:
        progress("starting firewalld and its D-Bus in the lab")
        Firewalld(lab).start()
    progress(f"loading the {target} ruleset into the lab")
    try:
        lab.apply(target, files)
    except LabError as error:
        why = str(error).partition(" failed: ")[2].strip() or str(error)
        raise FwgenError(f"the {target} ruleset does not load: {why.splitlines()[0]}") from None
    lab.listen(plan.specs)
    try:
        progress(f"probing {len(plan.cells)} cells")
        report.results = probe(lab, plan)
        report.results += neighbours(lab, plan)
        progress(f"scanning every other TCP port from {len(plan.scans)} source(s)")
        found, report.scanned = scan(lab, policy, plan)
        report.results += found
    finally:
        lab.stop_listeners()
        for i in plan.links:
            if f"l{i}" in lab.clients:
                lab.remove_client(f"l{i}")
    return report


def build(lab: Lab, plan: Plan) -> None:
    """A client per link, the server's end named as the plan says, and the sources."""
    for i, interface in plan.links.items():
        name = f"l{i}"
        lab.add_client(name, interface)
        for address in plan.sources[i]:
            lab.add_source(name, address)


def probe(lab: Lab, plan: Plan) -> list[Result]:
    """Every cell of the plan, the links at once; then loopback."""

    def sweep(link: int) -> list[Result]:
        mine = [c for c in plan.cells if c.link == link]
        ports = [c for c in mine if c.kind == "port"]
        pings = [c for c in mine if c.kind == "ping"]
        asked = {
            "probes": [[c.source, server_address(link, c.family), c.spec] for c in ports],
            "pings": [[c.source, server_address(link, c.family)] for c in pings],
        }
        found = lab.sweep(f"l{link}", asked)
        return [
            *(Result(c, got) for c, got in zip(ports, found["probes"], strict=True)),
            *(Result(c, got) for c, got in zip(pings, found["pings"], strict=True)),
        ]

    with ThreadPoolExecutor(max_workers=len(plan.links)) as pool:
        results = [r for found in pool.map(sweep, plan.links) for r in found]
    if plan.loopback:
        spec = plan.specs[0]
        for family in FAMILIES:
            address = "127.0.0.1" if family == "ipv4" else "::1"
            got = lab.probe_from(lab.server, address, [spec])[spec]
            cell = Cell(
                "port", 0, "lo", family, address, "the host itself", spec, "open", "loopback"
            )
            results.append(Result(cell, got))
    return results


def scan(lab: Lab, policy: Policy, plan: Plan) -> tuple[list[Result], int]:
    """Every TCP port the cells leave out, from each scan source of the plan: a
    mismatch is a cell of its own; and how many ports were scanned."""
    sampled = {int(s.split(":")[1]) for s in plan.specs if s.startswith("tcp:")}

    def one(scan: tuple[int, Family, str]) -> list[Result]:
        link, family, source = scan
        interface = plan.links[link]
        address = server_address(link, family)
        args = [address, source, *(str(p) for p in sorted(sampled))]
        ns = lab.clients[f"l{link}"].ns
        reached = set(json.loads(lab.run(ns, sys.executable, "-I", str(SYNSCAN), *args)))
        expected = cells.tcp_open(policy, family, source, interface) - sampled
        missed = sorted(expected - reached)[:MAX_RETRIES]  # a SYN lost on the way?
        asked = {"probes": [[source, address, f"tcp:{p}"] for p in missed]}
        again = lab.sweep(f"l{link}", asked)["probes"] if missed else []
        reached |= {p for p, got in zip(missed, again, strict=True) if got == "open"}
        about = cells.about(policy, source, family)
        out = []
        for port in sorted(reached ^ expected):
            spec = f"tcp:{port}"
            state, why = cells.decide(policy, family, source, "tcp", port, "", interface)
            cell = Cell("port", link, interface, family, source, about, spec, state, why)
            out.append(Result(cell, "open" if port in reached else "blocked"))
        return out

    with ThreadPoolExecutor(max_workers=max(1, len(plan.scans))) as pool:
        found = [r for part in pool.map(one, plan.scans) for r in part]
    return found, len(plan.scans) * (65535 - len(sampled))


def neighbours(lab: Lab, plan: Plan) -> list[Result]:
    """IPv6 neighbour discovery on each link: both ends forget their neighbours, the
    client sends again; the server must have answered its solicitation."""
    out = []
    for i, interface in plan.links.items():
        client = lab.clients[f"l{i}"]
        for ns in (lab.server, client.ns):
            lab.run(ns, "ip", "-6", "neigh", "flush", "all")
        lab.probe_from(client.ns, client.server_ipv6, plan.specs[:1])
        neigh = lab.run(client.ns, "ip", "-6", "neigh", "show", client.server_ipv6)
        got = "open" if "lladdr" in neigh else "blocked"
        spec = "neighbour-discovery"
        cell = Cell("neighbours", i, interface, "ipv6", client.ipv6, "", spec, "open", "base")
        out.append(Result(cell, got))
    return out
