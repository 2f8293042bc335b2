"""A Docker host in the lab's server namespace: a container behind Docker's bridge and
Docker's own rules for it, recorded (see DOCKER_RULES). A mixin of `Lab`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.kernel.lab import Client

DOCKER_DATA = Path(__file__).parents[1] / "data" / "docker"
DOCKER_RULES = {
    "ipv4": DOCKER_DATA / "docker-host.rules",
    "ipv6": DOCKER_DATA / "docker-host6.rules",
}
CONTAINER_IPV4 = "172.17.0.2"  # Docker's first address on its default bridge
BRIDGE_IPV4 = "172.17.0.1"
CONTAINER_IPV6 = "2001:db8:17::2"  # a routed IPv6 network (Docker's fixed-cidr-v6)
BRIDGE_IPV6 = "2001:db8:17::1"
CONTAINER_NET6 = "2001:db8:17::/64"
BRIDGE = "docker0"  # Docker's name; the server namespace has its own


class DockerHost:
    """What `Lab` has that these methods use."""

    prefix: str
    clients: dict[str, Client]

    @property
    def server(self) -> str:
        raise NotImplementedError

    def run(self, ns: str, *cmd: str, check: bool = True, stdin: str | None = None) -> str:
        raise NotImplementedError

    def add_namespace(self, ns: str) -> None:
        raise NotImplementedError

    @property
    def container(self) -> str:
        return f"{self.prefix}-ctr"

    @property
    def bridge(self) -> str:
        return BRIDGE

    def add_container(self) -> None:
        """A container as Docker makes one: a namespace behind a bridge on the server
        (172.17.0.2 on 172.17.0.0/16, and 2001:db8:17::2 on a routed /64), the server
        forwarding; the clients route the container networks through the server, as a
        neighbour may, so they can try to reach the container directly."""
        self.add_namespace(self.container)
        host_end = f"{self.prefix[:8]}v0"
        self.run(self.server, "ip", "link", "add", BRIDGE, "type", "bridge")
        self.run(self.server, "sysctl", "-qw", f"net.ipv6.conf.{BRIDGE}.accept_dad=0")
        self.run(self.server, "ip", "addr", "add", f"{BRIDGE_IPV4}/16", "dev", BRIDGE)
        self.run(
            self.server, "ip", "-6", "addr", "add", f"{BRIDGE_IPV6}/64", "dev", BRIDGE, "nodad"
        )
        self.run(self.server, "ip", "link", "set", BRIDGE, "up")
        self.run(
            self.server, "ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0",
            "netns", self.container,
        )  # fmt: skip
        self.run(self.server, "ip", "link", "set", host_end, "master", BRIDGE, "up")
        self.run(self.container, "ip", "link", "set", "lo", "up")
        self.run(self.container, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0")
        self.run(self.container, "ip", "addr", "add", f"{CONTAINER_IPV4}/16", "dev", "eth0")
        self.run(
            self.container,
            "ip",
            "-6",
            "addr",
            "add",
            f"{CONTAINER_IPV6}/64",
            "dev",
            "eth0",
            "nodad",
        )
        self.run(self.container, "ip", "link", "set", "eth0", "up")
        self.run(self.container, "ip", "route", "add", "default", "via", BRIDGE_IPV4)
        self.run(self.container, "ip", "-6", "route", "add", "default", "via", BRIDGE_IPV6)
        for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
            self.run(self.server, "sysctl", "-qw", key)
        for c in self.clients.values():
            self.run(c.ns, "ip", "route", "add", "172.17.0.0/16", "via", c.server_ipv4)
            self.run(c.ns, "ip", "-6", "route", "add", CONTAINER_NET6, "via", c.server_ipv6)

    def docker_rules(self, user_chain: bool = True) -> None:
        """Docker's own rules for the container, published as 8080 in both families
        (see DOCKER_RULES): IPv6 in the order Docker 20.10 leaves, its accepts first.
        Without *user_chain*, DOCKER-USER is made as Docker makes it when the chain is
        there already: kept, a RETURN appended if missing, FORWARD's jump moved first."""
        for family, command in (("ipv4", "iptables"), ("ipv6", "ip6tables")):
            lines = DOCKER_RULES[family].read_text().splitlines(keepends=True)
            if not user_chain:
                lines = [line for line in lines if "DOCKER-USER" not in line]
            self.run(self.server, f"{command}-restore", "--noflush", stdin="".join(lines))
            if not user_chain:
                self.run(
                    self.server, "sh", "-c",
                    f"{command} -n -L DOCKER-USER >/dev/null 2>&1 || {command} -N DOCKER-USER; "
                    f"{command} -C DOCKER-USER -j RETURN 2>/dev/null || "
                    f"{command} -A DOCKER-USER -j RETURN; "
                    f"{command} -D FORWARD -j DOCKER-USER 2>/dev/null; "
                    f"{command} -I FORWARD 1 -j DOCKER-USER",
                )  # fmt: skip

    def docker_chains(self, save: str = "iptables-save") -> list[str]:
        """Docker's rules as *save* prints them (counters off): what must survive."""
        lines = self.run(self.server, save).splitlines()
        return sorted(line for line in lines if "DOCKER" in line or "MASQUERADE" in line)

    def chain(self, save: str, name: str) -> list[str]:
        """The rules of one chain of the filter table, in order, as *save* prints them."""
        lines = self.run(self.server, save, "-t", "filter").splitlines()
        return [line for line in lines if line.startswith(f"-A {name} ")]
