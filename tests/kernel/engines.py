"""Real Docker (dockerd, containerd, runc) and real fail2ban in the lab's server namespace.

Everything runs inside a private mount namespace held open by one `sleep` process
(`Sandbox`), entered with `nsenter` for each daemon and command: a tmpfs on /run (the
sockets and pidfiles), private copies bind-mounted over, or overlays on, every path
the daemons write (`PRIVATE`, `OVERLAID`), and the cgroup controllers mounted again
(`ip netns exec` mounts a fresh /sys). Each daemon is stopped by its own pid; on exit
every process left in the mount namespace or the cgroups is killed by pid, the cgroups
removed and the copies deleted, even when a test fails.

Containers are made from busybox-static (`docker import`) and run the lab's agent with
the machine's /usr mounted read-only, so their listeners answer TCP and UDP as the
lab's do (busybox's nc has no UDP).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

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
STARTUP = 60.0  # seconds a daemon may take to answer
RUN = "/run/fwgen-test"  # sockets and pidfiles, on the sandbox's own /run
DOCKER_IPV6 = "2001:db8:d0c::/64"  # --fixed-cidr-v6 in the IPv6 mode
DOCKER_IPV4 = "172.17.0.0/16"  # Docker's default bridge


def missing_engine() -> str:
    """Why the real engines cannot run here, or the empty string."""
    for tool, package in ENGINE_TOOLS.items():
        if shutil.which(tool) is None:
            return f"real-engine tests need `{tool}` (apt-get install {package})"
    if not os.access(BUSYBOX, os.X_OK):
        return f"real-engine tests need {BUSYBOX} (apt-get install busybox-static)"
    return ""


def _cgroup_mounts() -> list[str]:
    """Shell lines that mount the machine's cgroup hierarchies again on /sys/fs/cgroup."""
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():  # v2 only
        return ["mount -t cgroup2 cgroup2 /sys/fs/cgroup"]
    lines = ["mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup"]
    for entry in Path("/proc/self/cgroup").read_text().splitlines():
        controllers = entry.split(":")[1]
        if controllers and not controllers.startswith("name="):
            where = shlex.quote(f"/sys/fs/cgroup/{controllers}")
            lines.append(f"mkdir {where} && mount -t cgroup -o {controllers} cgroup {where}")
    return lines


class Sandbox:
    """A private mount namespace in the lab's server namespace (see the module's doc):
    *private* paths copied and bind-mounted, *overlaid* ones overlaid, and the cgroup
    controllers mounted unless *cgroups* is false (firewalld needs none)."""

    def __init__(
        self,
        lab: Lab,
        private: tuple[str, ...] = PRIVATE,
        overlaid: tuple[str, ...] = OVERLAID,
        cgroups: bool = True,
    ) -> None:
        self.lab = lab
        self.dir = Path(tempfile.mkdtemp(prefix="fwgen-engines-"))
        self.cgroup = f"{lab.prefix}-{uuid.uuid4().hex[:6]}"  # --cgroup-parent
        self.daemons: list[subprocess.Popen[bytes]] = []
        lines = ["set -e", "mount -t tmpfs -o mode=755 tmpfs /run", f"mkdir -p {RUN}"]
        for path in overlaid:
            upper, work = self.private(path), self.dir / "work" / path.lstrip("/")
            upper.mkdir(parents=True)
            work.mkdir(parents=True)
            options = shlex.quote(f"lowerdir={path},upperdir={upper},workdir={work}")
            lines.append(f"mount -t overlay overlay -o {options} {path}")
        for path in private:
            copy = self.private(path)
            shutil.copytree(path, copy, symlinks=True)
            lines.append(f"mount --bind {shlex.quote(str(copy))} {path}")
        lines += [*(_cgroup_mounts() if cgroups else []), "echo ready", "exec sleep infinity"]
        enter = ["ip", "netns", "exec", lab.server, "unshare", "-m", "--propagation", "private"]
        self.holder = subprocess.Popen(
            [*enter, "sh", "-c", "\n".join(lines)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.holder.stdout is not None
        if self.holder.stdout.readline().strip() != "ready":
            _, err = self.holder.communicate(timeout=10)
            shutil.rmtree(self.dir, ignore_errors=True)
            raise AssertionError(f"the engines' sandbox could not be made: {err.strip()}")

    def private(self, path: str) -> Path:
        """The sandbox's copy of *path* (of `PRIVATE`, or the upper layer of `OVERLAID`),
        as the machine sees it."""
        return self.dir / "copies" / path.lstrip("/")

    def enter(self, *cmd: str) -> list[str]:
        return ["nsenter", "-t", str(self.holder.pid), "-m", "-n", *cmd]

    def run(self, *cmd: str, stdin: bytes | None = None, check: bool = True) -> str:
        result = subprocess.run(self.enter(*cmd), input=stdin, capture_output=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"{shlex.join(cmd)}: {result.stderr.decode().strip()}")
        return result.stdout.decode()

    def spawn(self, name: str, *cmd: str) -> subprocess.Popen[bytes]:
        """Start a daemon in the sandbox, its output in the log *name*."""
        with open(self.log(name), "ab") as log:
            proc = subprocess.Popen(self.enter(*cmd), stdout=log, stderr=subprocess.STDOUT)
        self.daemons.append(proc)
        return proc

    def holds(self, pid: int) -> bool:
        """Process *pid* runs in the lab's server namespace and the sandbox's mounts."""
        netns = os.stat(f"/run/netns/{self.lab.server}").st_ino
        mine = os.readlink(f"/proc/{self.holder.pid}/ns/mnt")
        return (
            os.stat(f"/proc/{pid}/ns/net").st_ino == netns
            and os.readlink(f"/proc/{pid}/ns/mnt") == mine
        )

    def log(self, name: str) -> Path:
        return self.dir / f"{name}.log"

    def wait_for(self, name: str, proc: subprocess.Popen[bytes], *probe: str) -> None:
        """Until *probe* succeeds in the sandbox; a clear failure, with the end of the
        daemon's log, when daemon *name* exits or after `STARTUP` seconds."""
        deadline = time.monotonic() + STARTUP
        while subprocess.run(self.enter(*probe), capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                why = "exited" if proc.poll() is not None else f"did not answer in {STARTUP:.0f}s"
                tail = self.log(name).read_text(errors="replace").splitlines()[-15:]
                raise AssertionError(f"{name} {why}; its log ends:\n" + "\n".join(tail))
            time.sleep(0.2)

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop one daemon by its own pid: SIGTERM, then SIGKILL after 20 seconds."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.daemons:
            self.daemons.remove(proc)

    def close(self) -> None:
        for proc in reversed(self.daemons):
            self.stop(proc)
        for pid in self._leftovers():
            _kill(pid)
        self.holder.kill()
        self.holder.communicate()
        for hierarchy in sorted(Path("/sys/fs/cgroup").glob(f"**/{self.cgroup}"), reverse=True):
            for sub in sorted(hierarchy.rglob("*"), key=lambda p: -len(p.parts)):
                if sub.is_dir():
                    sub.rmdir()
            hierarchy.rmdir()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _leftovers(self) -> list[int]:
        """Processes still in the sandbox's mount namespace or in its cgroups (containers,
        shims), by pid; never the holder itself."""
        pids: set[int] = set()
        ns = os.readlink(f"/proc/{self.holder.pid}/ns/mnt")
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != self.holder.pid:
                try:
                    if os.readlink(entry / "ns" / "mnt") == ns:
                        pids.add(int(entry.name))
                except OSError:
                    continue
        for procs in Path("/sys/fs/cgroup").glob(f"**/{self.cgroup}/**/cgroup.procs"):
            pids.update(int(p) for p in procs.read_text().split())
        return sorted(pids)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


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
