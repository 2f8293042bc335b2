"""A private mount namespace in the lab's server namespace, for daemons that write files.

One `sleep` process holds it (`Sandbox`); each daemon and command enters it with
`nsenter`. Inside: a tmpfs on /run (sockets, pidfiles, runtime state), private copies
bind-mounted over, or overlays on, the paths the daemons write, and the cgroup
controllers mounted again (`ip netns exec` mounts a fresh /sys). Each daemon is stopped
by its own pid; on close every process left in the mount namespace or the cgroups is
killed by pid, the cgroups removed and the copies deleted.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from fwgen.lab.netns import LabError

if TYPE_CHECKING:
    from fwgen.lab.netns import Lab

STARTUP = 60.0  # seconds a daemon may take to answer
RUN = "/run/fwgen-lab"  # sockets and pidfiles, on the sandbox's own /run


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
        private: tuple[str, ...],
        overlaid: tuple[str, ...] = (),
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
            raise LabError(f"the engines' sandbox could not be made: {err.strip()}")

    def private(self, path: str) -> Path:
        """The sandbox's copy of *path* (of `PRIVATE`, or the upper layer of `OVERLAID`),
        as the machine sees it."""
        return self.dir / "copies" / path.lstrip("/")

    def enter(self, *cmd: str) -> list[str]:
        return ["nsenter", "-t", str(self.holder.pid), "-m", "-n", *cmd]

    def run(self, *cmd: str, stdin: bytes | None = None, check: bool = True) -> str:
        result = subprocess.run(self.enter(*cmd), input=stdin, capture_output=True, timeout=120)
        if check and result.returncode != 0:
            raise LabError(f"{shlex.join(cmd)}: {result.stderr.decode().strip()}")
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
                raise LabError(f"{name} {why}; its log ends:\n" + "\n".join(tail))
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
