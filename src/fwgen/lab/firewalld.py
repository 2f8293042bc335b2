"""The real firewalld, and the D-Bus system bus it answers on, in the lab's server namespace.

Both run in a `Sandbox` (sandbox.py): a private mount namespace with a tmpfs on /run (the
bus socket in /run/dbus, firewalld's runtime state in /run/firewalld) and a private copy
of /etc/firewalld bind-mounted over the machine's. `dbus-daemon --system --fork` says its
pid; firewalld runs with ``--nofork --nopid --log-target console``, its output in the
sandbox's log. Each is stopped by its own pid; the sandbox kills anything left by pid.

firewalld is ready when ``firewall-cmd --state`` answers; a reload is done when
``firewall-cmd --reload`` returns (the call waits for it): tests wait on state, never
on a sleep.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from fwgen.host.firewalld import SCRIPT
from fwgen.lab.netns import Lab, LabError
from fwgen.lab.sandbox import Sandbox

# What the real firewalld needs, and the Debian package of each.
FIREWALLD_TOOLS = {
    "firewalld": "firewalld",
    "firewall-cmd": "firewalld",
    "firewall-offline-cmd": "firewalld",
    "dbus-daemon": "dbus-daemon",
    "nsenter": "util-linux",
}
ETC = "/etc/firewalld"


def missing_firewalld(who: str = "firewalld tests need") -> str:
    """Why the real firewalld cannot run here, or the empty string."""
    for tool, package in FIREWALLD_TOOLS.items():
        if shutil.which(tool) is None:
            return f"{who} `{tool}` (apt-get install {package})"
    return ""


class Firewalld:
    """dbus-daemon and firewalld of their own in a sandbox of *lab*'s server namespace;
    `lab.apply(..., target="firewalld")` loads through it once it is `lab.firewalld`."""

    def __init__(self, lab: Lab) -> None:
        self.box = Sandbox(lab, private=(ETC,), overlaid=(), cgroups=False)
        self.bus = 0
        self.proc: subprocess.Popen[bytes] | None = None
        lab.firewalld = self

    @property
    def etc(self) -> Path:
        """The sandbox's /etc/firewalld, as the machine sees it."""
        return self.box.private(ETC)

    def start(self) -> None:
        self.box.run("mkdir", "-p", "/run/dbus")
        out = self.box.run("dbus-daemon", "--system", "--fork", "--print-pid")
        self.bus = int(out.split()[0])
        if not self.box.holds(self.bus):
            raise LabError("dbus-daemon is not in the sandbox")
        self.proc = self.box.spawn(
            "firewalld", "firewalld", "--nofork", "--nopid", "--log-target", "console"
        )
        self.box.wait_for("firewalld", self.proc, "firewall-cmd", "--state")

    def wrap(self) -> list[str]:
        """A prefix for a command run in the server namespace: into the sandbox's mounts."""
        return ["nsenter", "-t", str(self.box.holder.pid), "-m"]

    def cmd(self, *args: str) -> str:
        """``firewall-cmd ARGS`` in the sandbox; its output (a failure raises)."""
        return self.box.run("firewall-cmd", *args)

    def load(self, files: dict[str, str]) -> None:
        """Run the rendered install script from a folder of the rendered files, in the
        sandbox, as an admin would: it places fwgen's files and reloads firewalld."""
        folder = Path(tempfile.mkdtemp(prefix="render-", dir=self.box.dir))
        for name, text in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text, encoding="utf-8")
        self.box.run("bash", str(folder / SCRIPT))

    def ruleset(self) -> str:
        """The namespace's nftables ruleset as firewalld left it (no counters)."""
        return self.box.run("nft", "-s", "list", "ruleset")

    def stop(self) -> None:
        if self.proc is not None:
            self.box.stop(self.proc)
            self.proc = None
        with contextlib.suppress(OSError):  # gone already
            if self.bus > 0 and self.box.holds(self.bus):  # never 0 or -1: process groups
                os.kill(self.bus, signal.SIGTERM)
        self.bus = 0

    def close(self) -> None:
        self.stop()
        self.box.close()
        if self.box.lab.firewalld is self:
            self.box.lab.firewalld = None
