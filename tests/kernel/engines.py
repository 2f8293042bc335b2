"""Real Docker (dockerd, containerd, runc) and real fail2ban in the lab's server namespace,
each in a `Sandbox` (fwgen.lab.sandbox): a private mount namespace with a tmpfs on /run
(the sockets and pidfiles), private copies bind-mounted over, or overlays on, every path
the daemons write (`PRIVATE`, `OVERLAID`), and the cgroup controllers mounted again.

Containers are made from busybox-static (`docker import`) and run the lab's agent with
the machine's /usr mounted read-only, so their listeners answer TCP and UDP as the
lab's do (busybox's nc has no UDP).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

from fwgen.lab import sandbox
from fwgen.lab.sandbox import RUN as RUN
from fwgen.lab.sandbox import STARTUP
from tests.kernel.lab import AGENT, Lab

# What the real-engine tests need, and the Debian package of each.
ENGINE_TOOLS = {
    "dockerd": "docker.io",
    "docker": "docker.io",
    "containerd": "containerd",
    "runc": "runc",
    "fail2ban-client": "fail2ban",
    "busybox": "busybox-static",
    "ctr": "containerd",
    "nsenter": "util-linux",
}
BUSYBOX = "/bin/busybox"
# What the daemons write. Overlaid: written through an overlay whose upper layer is the
# sandbox's (/var/lib/docker and /var/lib/containerd may not exist; /var/log may be
# large). Private: copied, then bind-mounted over the original (after the overlays).
OVERLAID = ("/var/lib", "/var/log")
PRIVATE = ("/etc/docker", "/etc/fail2ban", "/var/lib/fail2ban")
DOCKER_IPV6 = "2001:db8:d0c::/64"  # --fixed-cidr-v6 in the IPv6 mode
DOCKER_IPV4 = "172.17.0.0/16"  # Docker's default bridge


class Sandbox(sandbox.Sandbox):
    """The engines' sandbox: `PRIVATE` copied, `OVERLAID` overlaid, cgroups mounted."""

    def __init__(
        self,
        lab: Lab,
        private: tuple[str, ...] = PRIVATE,
        overlaid: tuple[str, ...] = OVERLAID,
        cgroups: bool = True,
    ) -> None:
        super().__init__(lab, private, overlaid, cgroups)


def missing_engine() -> str:
    """Why the real engines cannot run here, or the empty string."""
    for tool, package in ENGINE_TOOLS.items():
        if shutil.which(tool) is None:
            return f"real-engine tests need `{tool}` (apt-get install {package})"
    if not os.access(BUSYBOX, os.X_OK):
        return f"real-engine tests need {BUSYBOX} (apt-get install busybox-static)"
    return ""


class Docker:
    """containerd and dockerd of their own in a sandbox; `ipv6` is Docker's
    `--ipv6 --ip6tables --experimental --userland-proxy=false` mode."""

    def __init__(self, box: Sandbox, ipv6: bool = False) -> None:
        self.box, self.ipv6 = box, ipv6
        self.socket = f"{RUN}/docker.sock"
        self.containerd_socket = f"{RUN}/containerd/containerd.sock"
        self.dockerd: subprocess.Popen[bytes] | None = None
        self.containerd: subprocess.Popen[bytes] | None = None
        self.image = ""

    def start(self) -> None:
        if self.containerd is None:
            config = self.box.dir / "containerd.toml"
            config.write_text(
                f'version = 2\nroot = "{self.box.dir}/containerd"\n'
                f'state = "{RUN}/containerd-state"\n'
                f'[grpc]\n  address = "{self.containerd_socket}"\n'
            )
            self.containerd = self.box.spawn("containerd", "containerd", "--config", str(config))
            ctr = ["ctr", "-a", self.containerd_socket, "version"]
            self.box.wait_for("containerd", self.containerd, *ctr)
        flags = ["--storage-driver", "vfs", "--data-root", str(self.box.dir / "docker")]
        flags += ["--exec-root", f"{RUN}/docker", "-H", f"unix://{self.socket}"]
        flags += ["--pidfile", f"{RUN}/docker.pid", "--containerd", self.containerd_socket]
        flags += ["--cgroup-parent", self.box.cgroup]
        if self.ipv6:
            flags += ["--ipv6", "--fixed-cidr-v6", DOCKER_IPV6, "--ip6tables", "--experimental"]
            flags += ["--userland-proxy=false"]
        self.dockerd = self.box.spawn("dockerd", "dockerd", *flags)
        self.box.wait_for("dockerd", self.dockerd, "docker", "-H", f"unix://{self.socket}", "info")

    def stop(self) -> None:
        if self.dockerd is not None:
            self.box.stop(self.dockerd)
            self.dockerd = None

    def restart(self) -> None:
        """dockerd stopped and started again; the containers (`--restart always`) come back."""
        self.stop()
        self.start()

    def cli(self, *args: str, stdin: bytes | None = None) -> str:
        return self.box.run("docker", "-H", f"unix://{self.socket}", *args, stdin=stdin)

    def serve(self, name: str, publish: list[str], listen: list[str]) -> dict[str, str]:
        """A container running the lab's agent listening on *listen*, published with
        ``-p`` *publish*: its addresses {"ipv4": ..., "ipv6": ...} once it is ready."""
        if not self.image:
            self.image = self._import()
        # --init: a SIGTERM stops the agent at once (docker stop and dockerd's exit)
        args = ["run", "-d", "-i", "--init", "--restart", "always", "--name", name]
        args += ["-v", "/usr:/usr:ro", "-v", f"{AGENT.parent}:/agent:ro"]
        for spec in publish:
            args += ["-p", spec]
        self.cli(*args, self.image, "/usr/bin/python3", "/agent/agent.py", "listen", *listen)
        return self.ready(name)

    def ready(self, name: str) -> dict[str, str]:
        """Waits until container *name* listens (see `_listening`); its addresses."""
        deadline = time.monotonic() + STARTUP
        while not self._listening(name):
            if time.monotonic() > deadline:
                raise AssertionError(f"container {name} did not start: {self.cli('ps', '-a')}")
            time.sleep(0.2)
        found = json.loads(self.cli("inspect", name))[0]["NetworkSettings"]
        return {"ipv4": found["IPAddress"], "ipv6": found["GlobalIPv6Address"]}

    def _listening(self, name: str) -> bool:
        """The agent in *name* said "ready" and, in the IPv6 mode, no IPv6 address on
        either end of its link is still in duplicate address detection (until then the
        container cannot answer over IPv6)."""
        if "ready" not in self.cli("logs", name):
            return False
        if not self.ipv6:
            return True
        ends = self.box.run("ip", "-6", "addr") + self.cli(
            "exec", name, "busybox", "ip", "-6", "addr"
        )
        return "tentative" not in ends

    def _import(self) -> str:
        """An image of busybox-static and empty mount points (`docker import`)."""
        root = self.box.dir / "rootfs"
        for folder in ("bin", "usr", "agent", "tmp", "proc", "sys", "dev", "etc"):
            (root / folder).mkdir(parents=True)
        shutil.copy2(BUSYBOX, root / "bin" / "busybox")
        (root / "bin" / "sh").symlink_to("busybox")
        for merged in ("lib", "lib64"):  # Debian's merged /usr, for the mounted python3
            (root / merged).symlink_to(f"usr/{merged}")
        tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True, check=True)
        self.cli("import", "-", "fwgen-test:busybox", stdin=tar.stdout)
        return "fwgen-test:busybox"


# fail2ban: one jail banning in INPUT, one in DOCKER-USER, on a log file of its own.
FAIL2BAN_JAILS = {"fwgen-input": "INPUT", "fwgen-docker": "DOCKER-USER"}


class Fail2ban:
    """fail2ban's server in a sandbox, its own socket and pidfile, iptables actions."""

    def __init__(self, box: Sandbox) -> None:
        self.box = box
        self.proc: subprocess.Popen[bytes] | None = None
        etc = box.private("/etc/fail2ban")
        (etc / "filter.d" / "fwgen-test.conf").write_text(
            "[Definition]\nfailregex = ^fail from <HOST>$\n"
        )
        (etc / "fail2ban.d" / "fwgen-test.local").write_text(
            "[Definition]\nlogtarget = /var/log/fail2ban.log\n"
            f"socket = {RUN}/fail2ban.sock\npidfile = {RUN}/fail2ban.pid\ndbfile = :memory:\n"
        )
        jails = ["[DEFAULT]", "backend = polling"]
        for jail, chain in FAIL2BAN_JAILS.items():
            jails += [
                f"[{jail}]",
                "enabled = true",
                "filter = fwgen-test",
                "logpath = /var/log/fwgen-test.log",
                f"action = iptables-allports[name={jail}, chain={chain}, protocol=all]",
            ]
        # replaces Debian's jail.d file (its sshd jail reads a log this machine lacks)
        for old in (etc / "jail.d").iterdir():
            old.unlink()
        (etc / "jail.d" / "fwgen-test.conf").write_text("\n".join(jails) + "\n")
        box.private("/var/log").joinpath("fwgen-test.log").touch()

    def start(self) -> None:
        self.proc = self.box.spawn("fail2ban", "fail2ban-client", "-x", "-f", "start")
        self.box.wait_for("fail2ban", self.proc, "fail2ban-client", "ping")

    def ban(self, jail: str, *addresses: str) -> None:
        self.box.run("fail2ban-client", "set", jail, "banip", *addresses)

    def banned(self, jail: str) -> str:
        return self.box.run("fail2ban-client", "get", jail, "banned")
