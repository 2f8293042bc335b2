"""The README's quickstart, word for word, as on a fresh Debian 12 host.

The README's shell blocks of "Quickstart" (and the Debian line of "Install") run in
one bash, in order, from a folder holding a copy of the repository named `fwgen` (the
clone), with the PATH of a fresh host. Nothing of the machine changes:

- the script runs in private mount and PID namespaces: `/run` is a tmpfs, `/etc` a
  private copy, `/opt` a tmpfs (the machine's folders in it
  bound back), `/usr/local/bin` an empty tmpfs, so the venv in `/opt/fwgen`, the link
  in `/usr/local/bin`, `/etc/nftables.d` and the edited `/etc/nftables.conf` are the
  test's own;
- `sudo` is a stand-in that runs the command as it is (the test runs as root), except
  that `nft`, `fwgen` and `systemctl` run inside a throw-away network namespace: the
  apply loads its rules there and nowhere else (the install keeps the machine's
  network, as pip needs it);
- `apt-get install` checks that each package is installed (it installs nothing:
  .ci/run does); `systemctl` records what it was asked (`enable nftables`).

The apply is answered `yes` at its prompt, as at a console (the namespace has no SSH
connection). The test then proves what the quickstart promised: the applied table is
loaded, and what nftables.service would load at boot (`nft -f /etc/nftables.conf`, in a
second fresh namespace) brings fwgen's table back without `flush ruleset`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.kernel.conftest import need, require

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parents[2]
PREFIX = os.environ.get("FWGEN_NETNS_PREFIX", "fw")
SANDBOX = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc"]
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def shell_blocks(section: str) -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index(f"\n## {section}\n")
    end = readme.find("\n## ", start + 1)
    return re.findall(r"^```sh\n(.*?)^```$", readme[start:end], re.M | re.S)


SUDO = """#!/bin/bash
# sudo's stand-in: as root already; what touches a firewall runs in the test's namespace
case "${1##*/}" in
  nft|fwgen|systemctl) exec ip netns exec "$QS_NETNS" "$@" ;;
  *) exec "$@" ;;
esac
"""
APT = """#!/bin/bash
# apt-get's stand-in: the packages must be installed already (.ci/run installs them)
[ "$1" = install ] || { echo "apt-get stand-in: only install" >&2; exit 1; }
shift
for p in "$@"; do
  case "$p" in -*) continue ;; esac
  dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' \\
    || { echo "package $p is not installed" >&2; exit 1; }
done
"""
SYSTEMCTL = """#!/bin/bash
echo "$*" >> "$QS_LOG"
"""


def sandbox(tmp: Path, netns: str) -> str:
    """The shell lines that make the private mounts and the namespace."""
    return f"""set -euo pipefail
mount -t tmpfs tmpfs /run
mkdir -p {tmp}/opt-machine && mount --bind /opt {tmp}/opt-machine
mount -t tmpfs tmpfs /opt
for d in {tmp}/opt-machine/*; do [ -d "$d" ] || continue
  mkdir "/opt/${{d##*/}}" && mount --bind "$d" "/opt/${{d##*/}}"; done
mount -t tmpfs tmpfs /usr/local/bin
cp -a /etc {tmp}/etc && mount --bind {tmp}/etc /etc
ip netns add {netns} && ip netns add {netns}b
ip netns exec {netns} ip link set lo up
"""


def test_the_readme_quickstart_runs_word_for_word(tmp_path: Path) -> None:
    require("nft", "ip", "unshare", "git", "dpkg")
    need("" if os.geteuid() == 0 else "the quickstart's sandbox needs root")
    install = [line for b in shell_blocks("Install") for line in b.splitlines()]
    debian = [line for line in install if line.startswith("sudo apt-get install")]
    quickstart = shell_blocks("Quickstart")
    assert len(debian) == 1 and len(quickstart) == 3, (debian, quickstart)
    assert "fwgen apply" in quickstart[1] and "systemctl enable nftables" in quickstart[2]

    home = tmp_path / "home"
    files = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (home / "fwgen" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, home / "fwgen" / name)
    shims = tmp_path / "shims"
    shims.mkdir()
    for name, text in (("sudo", SUDO), ("apt-get", APT), ("systemctl", SYSTEMCTL)):
        (shims / name).write_text(text)
        (shims / name).chmod(0o755)
    netns = f"{PREFIX}qs{os.getpid() % 10000}"
    log = tmp_path / "systemctl.log"
    script = (
        sandbox(tmp_path, netns)
        + f"cd {home}\n# --- README: Install (Debian 12)\n"
        + debian[0]
        + "\n# --- README: Quickstart\n"
        + "\n# ---\n".join(quickstart)
        + f"""
# --- the test's checks
ip netns exec {netns} nft list table inet fwgen > /dev/null && echo "QS applied table loaded"
! grep -q '^flush ruleset' /etc/nftables.conf && echo "QS no flush ruleset"
ip netns exec {netns}b nft -f /etc/nftables.conf
ip netns exec {netns}b nft list table inet fwgen > /dev/null && echo "QS boot loads fwgen"
readlink /usr/local/bin/fwgen
"""
    )
    env = {
        "PATH": f"{shims}:{HOST_PATH}",
        "HOME": str(home),
        "LC_ALL": "C.UTF-8",
        "QS_NETNS": netns,
        "QS_LOG": str(log),
        "TMPDIR": str(tmp_path),
    }
    result = subprocess.run(
        [*SANDBOX, "bash", "-c", script],
        input="yes\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    for mark in ("QS applied table loaded", "QS no flush ruleset", "QS boot loads fwgen"):
        assert mark in result.stdout, output[-4000:]
    assert "fwgen 0.5.0" in result.stdout  # the README's `fwgen --version`
    assert "/opt/fwgen/bin/fwgen" in result.stdout
    assert "applied" in output, output[-4000:]
    assert log.read_text().split("\n")[0] == "enable nftables"
