"""Throw-away network namespaces: a server and clients joined by veth links.

Every link i gets 198.18.i.0/24 and 2001:db8:i::/64; the server is .1 / ::1 on
each link, the client .2 / ::2. Names are unique per run: FWGEN_NETNS_PREFIX ("fwg"
unless set), then a random part. Everything is deleted on exit even when a test
fails. Nothing touches the host's own namespace.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fwgen import stopping
from fwgen.errors import FwgenError
from fwgen.lab.loaders import UFW_WRITES as UFW_WRITES
from fwgen.lab.loaders import Loader, Loaders

AGENT = Path(__file__).with_name("agent.py")
# The agent runs isolated (-I: no environment, no user site, not its own folder on the
# path) from /: it imports nothing from where fwgen runs.
AGENT_CMD = (sys.executable, "-I", str(AGENT))
STRAGGLERS_WAIT = 10.0  # seconds a killed process may take to leave the lab's namespaces
# At most 4 characters: the veth names keep 8 of the prefix and its random part.
PREFIX = os.environ.get("FWGEN_NETNS_PREFIX", "fwg")[:4]


class LabError(FwgenError, AssertionError):
    """A command in the lab failed (for the tests, a failed assertion too)."""


def missing_tools(*tools: str, who: str = "kernel tests need") -> str:
    """Why the lab cannot run here, or the empty string."""
    if os.geteuid() != 0:
        return f"{who} root (network namespaces)"
    for tool in ("ip", *tools):
        if shutil.which(tool) is None:
            return f"{who} `{tool}` (apt-get install {tool_package(tool)})"
    return ""


def _processes_in(inodes: set[int]) -> list[int]:
    """The pids of the processes in the network namespaces *inodes*, never this one (a
    process that has ended, unreaped, is in none)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if os.stat(entry / "ns" / "net").st_ino in inodes:
                    found.append(int(entry.name))
    return found


def tool_package(tool: str) -> str:
    packages = {"ip": "iproute2", "nft": "nftables", "unshare": "util-linux"}
    packages |= {"iptables-restore": "iptables", "ip6tables-restore": "iptables"}
    return packages.get(tool, tool)


@dataclass
class Client:
    name: str
    ns: str
    ipv4: str
    ipv6: str
    server_ipv4: str
    server_ipv6: str
    device: str = ""  # the client's end of its link
    server_device: str = ""  # the server's end


@dataclass
class Lab(Loaders):
    clients: dict[str, Client] = field(default_factory=dict)
    prefix: str = field(default_factory=lambda: f"{PREFIX}{uuid.uuid4().hex[:8]}")
    listeners: list[subprocess.Popen[str]] = field(default_factory=list)
    ufw_dir: str | None = None
    firewalld: Loader | None = None  # set by fwgen.lab.firewalld.Firewalld
    namespaces: list[str] = field(default_factory=list)  # made so far, deleted on exit
    made: int = 0  # links made so far: link i has 198.18.i.0/24 and 2001:db8:i::/64

    @property
    def server(self) -> str:
        return f"{self.prefix}-srv"

    def run(self, ns: str, *cmd: str, check: bool = True, stdin: str | None = None) -> str:
        result = subprocess.run(
            ["ip", "netns", "exec", ns, *cmd],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
        )
        if check and result.returncode != 0:
            raise LabError(f"{' '.join(cmd)} in {ns} failed: {result.stderr.strip()}")
        return result.stdout

    def __enter__(self) -> Lab:
        try:
            self.add_namespace(self.server)
            self.run(self.server, "ip", "link", "set", "lo", "up")
        except BaseException:
            with stopping.held():
                self.__exit__()
            raise
        return self

    def add_namespace(self, ns: str) -> None:
        """A new network namespace *ns*, deleted on exit."""
        self.namespaces.append(ns)
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)

    def add_client(self, name: str, interface: str = "") -> Client:
        """A client on a link of its own; the server's end named *interface* if given."""
        self.made += 1
        i = self.made
        ns = f"{self.prefix}-{name}"
        self.add_namespace(ns)
        here, there = self.link(i, "s"), self.link(i, "c")
        subprocess.run(
            [
                "ip",
                "link",
                "add",
                here,
                "netns",
                self.server,
                "type",
                "veth",
                "peer",
                "name",
                there,
                "netns",
                ns,
            ],
            check=True,
        )
        if interface and interface != here:
            self.run(self.server, "ip", "link", "set", "dev", here, "name", interface)
            here = interface
        client = Client(
            name,
            ns,
            f"198.18.{i}.2",
            f"2001:db8:{i}::2",
            f"198.18.{i}.1",
            f"2001:db8:{i}::1",
            device=there,
            server_device=here,
        )
        for where, dev, v4, v6 in (
            (self.server, here, client.server_ipv4, client.server_ipv6),
            (ns, there, client.ipv4, client.ipv6),
        ):
            self.run(where, "ip", "link", "set", "lo", "up")
            # No duplicate address detection: link-local addresses are usable at once.
            self.run(where, "sysctl", "-qw", f"net.ipv6.conf.{dev}.accept_dad=0")
            self.run(where, "ip", "addr", "add", f"{v4}/24", "dev", dev)
            self.run(where, "ip", "-6", "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            self.run(where, "ip", "link", "set", dev, "up")
        self.clients[name] = client
        return client

    def remove_client(self, name: str) -> None:
        """Delete *name*'s namespace, and so its link (its number is not used again)."""
        client = self.clients.pop(name)
        subprocess.run(["ip", "netns", "del", client.ns], capture_output=True)
        self.namespaces.remove(client.ns)

    def stop_listeners(self) -> None:
        """Stop every agent started in the background, by its pid."""
        for proc in self.listeners:
            with contextlib.suppress(OSError):
                proc.kill()
            proc.communicate()
        self.listeners.clear()

    def kill_stragglers(self) -> int:
        """SIGKILL, by pid, every process still in one of the lab's namespaces (all of
        them started by the lab: what a command stopped halfway left, its own children),
        until none is left; how many there were."""
        inodes = set()
        for ns in self.namespaces:
            with contextlib.suppress(OSError):
                inodes.add(os.stat(f"/run/netns/{ns}").st_ino)
        killed: set[int] = set()
        deadline = time.monotonic() + STRAGGLERS_WAIT
        while inodes and time.monotonic() < deadline:
            left = _processes_in(inodes)
            if not left:
                break
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            killed.update(left)
            time.sleep(0.01)  # a killed process leaves its namespace as it is torn down
        return len(killed)

    def add_source(self, client: str, address: str) -> None:
        """One more address on *client* (a host of its own: /32 or /128), routed there by
        the server, to send from inside (or outside) a network of the profile."""
        c = self.clients[client]
        if ":" in address:
            self.run(c.ns, "ip", "-6", "addr", "add", f"{address}/128", "dev", c.device, "nodad")
            self.run(
                self.server, "ip", "-6", "route", "add", f"{address}/128", "dev", c.server_device
            )
        else:
            self.run(c.ns, "ip", "addr", "add", f"{address}/32", "dev", c.device)
            self.run(self.server, "ip", "route", "add", f"{address}/32", "dev", c.server_device)

    def sweep(self, client: str, asked: dict[str, list[list[str]]]) -> dict[str, list[str]]:
        """Probes and pings from *client* (see the agent's ``sweep``): their answers."""
        out = self.run(self.clients[client].ns, *AGENT_CMD, "sweep", stdin=json.dumps(asked))
        return dict(json.loads(out))

    def link(self, i: int, end: str) -> str:
        """The veth device of link *i* at the server ("s") or client ("c") end."""
        return f"{self.prefix[:8]}{end}{i}"

    def __exit__(self, *exc: object) -> None:
        """Stop every process of the lab by its pid and delete its namespaces and files;
        each step runs even when one before it fails."""
        try:
            if self.firewalld is not None:
                self.firewalld.close()
        finally:
            self.stop_listeners()
            self.kill_stragglers()
            for ns in reversed(self.namespaces):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            self.namespaces.clear()
            if self.ufw_dir is not None:
                shutil.rmtree(self.ufw_dir, ignore_errors=True)
                self.ufw_dir = None

    # traffic --------------------------------------------------------------

    def listen_loopback(self, port: int) -> None:
        """A TCP listener on 127.0.0.1 only (what audit and discover must ignore)."""
        self._background(self.server, "listen-loopback", str(port))

    def listen(self, specs: list[str]) -> None:
        """Dual-stack TCP/UDP listeners on the server (UDP echoes)."""
        self._background(self.server, "listen", *specs)

    def probe(self, client: str, family: str, specs: list[str]) -> dict[str, str]:
        """{"tcp:80": "open" | "blocked"} as seen from *client* over *family*."""
        return self.probe_from(self.clients[client].ns, self.address(client, family), specs)

    def address(self, client: str, family: str) -> str:
        """The server's address on *client*'s link."""
        c = self.clients[client]
        return c.server_ipv4 if family == "ipv4" else c.server_ipv6

    def agent(self, ns: str, *args: str) -> str:
        return self.run(ns, *AGENT_CMD, *args)

    def ping(self, client: str, family: str) -> str:
        return self.agent(self.clients[client].ns, "ping", self.address(client, family)).strip()

    def send(self, client: str, specs: list[str]) -> dict[str, str]:
        """One UDP datagram per ``ADDRESS,PORT,SPORT`` from the server out of its link to
        *client*: {"ADDRESS,PORT,SPORT": "sent" | "EPERM" | ...} (see agent.py)."""
        device = self.link(list(self.clients).index(client) + 1, "s")
        return dict(json.loads(self.agent(self.server, "send", device, *specs)))

    def burst(
        self, client: str, family: str, port: int, count: int, source: str = ""
    ) -> list[bool]:
        """*count* new TCP connections in a row from *client* (from its address *source*,
        if given): which got through."""
        args = [self.address(client, family), str(port), str(count)]
        out = self.agent(self.clients[client].ns, "burst", *args, *([source] if source else []))
        return list(json.loads(out))

    def answer(self, client: str, family: str, spec: str, source: str = "") -> tuple[str, float]:
        """What a connection from *client* (from its address *source*) to *spec* gets:
        open, refused, unreachable or timeout; and how many seconds that took."""
        args = [self.address(client, family), spec, *([source] if source else [])]
        found = json.loads(self.agent(self.clients[client].ns, "answer", *args))
        return str(found["result"]), float(found["seconds"])

    def add_address(self, client: str, address: str) -> None:
        """One more address on *client*'s link (a /64 or /24 of its own, routed there by
        the server), to play several hosts of one network."""
        c = self.clients[client]
        prefix = "/64" if ":" in address else "/24"
        version = "-6" if ":" in address else "-4"
        self.run(c.ns, "ip", version, "addr", "add", address + prefix, "dev", c.device, "nodad")
        network = str(ipaddress.ip_network(address + prefix, strict=False))
        if network not in (
            str(ipaddress.ip_network(a + p, strict=False))
            for a, p in ((c.ipv4, "/24"), (c.ipv6, "/64"))
        ):
            self.run(self.server, "ip", version, "route", "add", network, "dev", c.server_device)

    def echo(self, client: str, family: str, count: int, spacing: float) -> tuple[list[int], float]:
        """*count* echo requests of one flow from *client*, *spacing* seconds apart: the
        sequence numbers answered, and how many seconds sending took."""
        args = [self.address(client, family), str(count), str(spacing)]
        found = json.loads(self.agent(self.clients[client].ns, "echo", *args))
        return list(found["answered"]), float(found["seconds"])

    def udp_error(self, ns: str, address: str, port: int) -> str:
        """ "refused" when an ICMP port unreachable for a datagram from *ns* gets back in."""
        return self.agent(ns, "udp-error", address, str(port)).strip()

    def mld_queries_delivered(self, client: str, sends: list[tuple[int, str]]) -> list[int]:
        """For each (hop limit, "link" or "global" source) an MLD query from *client*
        to ff02::1: how many of them the server's firewall let in (0 or 1)."""
        out = []
        for hop_limit, source in sends:
            proc = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.server,
                    *AGENT_CMD,
                    "sniff-icmpv6",
                    "130",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            c = self.clients[client]
            self.agent(c.ns, "mld-query", c.device, str(hop_limit), source)
            count, _ = proc.communicate("", timeout=10)
            out.append(int(count))
        return out

    def hold(self, client: str, family: str, port: int) -> subprocess.Popen[str]:
        """An open TCP connection from *client*; write a line to stdin, read "ok" or "fail"."""
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.clients[client].ns,
                *AGENT_CMD,
                "hold",
                self.address(client, family),
                str(port),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "connected"
        self.listeners.append(proc)
        return proc

    def route_through_server(self) -> None:
        """Make the server the clients' router, so traffic between clients is forwarded."""
        for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
            self.run(self.server, "sysctl", "-qw", key)
        for c in self.clients.values():
            self.run(c.ns, "ip", "route", "add", "default", "via", c.server_ipv4)
            self.run(c.ns, "ip", "-6", "route", "add", "default", "via", c.server_ipv6)

    def listen_in(self, ns: str, specs: list[str]) -> None:
        self._background(ns, "listen", *specs)

    def sshd(self, port: int, command: list[str]) -> None:
        """sshd's stand-in on the server (see agent.py): a process per connection."""
        self._background(self.server, "sshd", str(port), *command)

    def _background(self, ns: str, *args: str) -> None:
        """Start the agent in *ns* and wait until it says it is ready; stopped in __exit__."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *AGENT_CMD, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd="/",
        )
        self.listeners.append(proc)
        if proc.stdout is None or proc.stdout.readline().strip() != "ready":
            raise LabError(f"the lab's agent did not start in {ns}: {shlex.join(args)}")

    def probe_from(self, ns: str, address: str, specs: list[str]) -> dict[str, str]:
        return dict(json.loads(self.agent(ns, "probe", address, *specs)))

    def matrix(self, specs: list[str]) -> dict[tuple[str, str, str], str]:
        """(client, family, spec) → open | blocked, for every client and family, probed at once."""
        pairs = [(client, family) for client in self.clients for family in ("ipv4", "ipv6")]
        with ThreadPoolExecutor(max_workers=len(pairs)) as pool:
            results = pool.map(lambda pair: self.probe(pair[0], pair[1], specs), pairs)
            return {
                (client, family, spec): state
                for (client, family), found in zip(pairs, results, strict=True)
                for spec, state in found.items()
            }
