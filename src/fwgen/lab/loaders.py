"""How the lab loads a ruleset into its server namespace, the way each firewall does:
``nft -f``, ``iptables-restore`` (or the coexist script), the ufw script over private
copies of every path ufw writes, and the real firewalld (fwgen.lab.firewalld).
A mixin of `fwgen.lab.netns.Lab`."""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

# Every path ufw writes (found with strace): its rules and settings, its defaults, and
# /run for its lock file (and, through TMPDIR, its temporary files). `Lab.ufw_root` mounts
# a private copy over each, inside a private mount namespace.
UFW_WRITES = {"/etc/ufw": "etc-ufw", "/etc/default/ufw": "default-ufw", "/run": "run"}
UFW_EMPTY = {"/run"}  # mounted empty: nothing of the machine's /run is needed inside


class Loader(Protocol):
    """A firewall daemon in the lab that loads rendered files (firewalld_lab.Firewalld)."""

    def load(self, files: dict[str, str]) -> None: ...

    def close(self) -> None: ...

    def wrap(self) -> list[str]:
        """A command prefix that runs its command beside the daemon (its mounts)."""
        ...


class Loaders:
    """What `Lab` has that these methods use."""

    ufw_dir: str | None
    firewalld: Loader | None

    @property
    def server(self) -> str:
        raise NotImplementedError

    def run(self, ns: str, *cmd: str, check: bool = True, stdin: str | None = None) -> str:
        raise NotImplementedError

    def nft(self, text: str) -> None:
        self.run(self.server, "nft", "-f", "-", stdin=text)

    def ufw_root(self) -> list[str]:
        """A command prefix that runs its command over private copies of every path ufw
        writes (see `UFW_WRITES`): the machine's own files are never touched."""
        if self.ufw_dir is None:
            self.ufw_dir = tempfile.mkdtemp(prefix="fwgen-ufw-")
            for path, private in UFW_WRITES.items():
                copy = os.path.join(self.ufw_dir, private)
                if path in UFW_EMPTY:
                    os.mkdir(copy)
                elif os.path.isdir(path):
                    shutil.copytree(path, copy, symlinks=True)
                else:
                    shutil.copy2(path, copy)
        mounts = " && ".join(
            f"mount --bind {shlex.quote(os.path.join(self.ufw_dir, private))} {path}"
            for path, private in UFW_WRITES.items()
        )
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            f'{mounts} && TMPDIR=/run exec "$0" "$@"',
        ]

    def ufw(self, script: str) -> str:
        """Run a ufw script in the server namespace over private copies (`ufw_root`)."""
        return self.run(
            self.server,
            *self.ufw_root(),
            "bash",
            "-c",
            'bash -s && echo "--- added" && ufw show added',
            stdin=script,
        )

    def iptables(self, files: dict[str, str]) -> None:
        if "fwgen-iptables.sh" in files:  # coexist: the files beside the script that loads them
            with tempfile.TemporaryDirectory(prefix="fwgen-iptables-") as folder:
                for name, text in files.items():
                    Path(folder, name).write_text(text)
                self.run(self.server, "sh", os.path.join(folder, "fwgen-iptables.sh"))
            return
        if "ipsets" in files:
            self.run(self.server, "ipset", "restore", "-exist", stdin=files["ipsets"])
        self.run(self.server, "iptables-restore", stdin=files["rules.v4"])
        self.run(self.server, "ip6tables-restore", stdin=files["rules.v6"])

    def apply(self, target: str, files: dict[str, str]) -> None:
        """Load a rendered ruleset into the server namespace the way its firewall does."""
        if target == "nftables":
            self.nft(files["fwgen.nft"])
        elif target == "iptables":
            self.iptables(files)
        elif target == "firewalld":
            assert self.firewalld is not None, "start firewalld_lab.Firewalld(lab) first"
            self.firewalld.load(files)
        else:
            self.ufw(files["fwgen-ufw.sh"])
