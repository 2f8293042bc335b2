"""Deny and reject rules and ``refuse: reject`` on the real firewalld, judged by packets.

The server namespace runs dbus-daemon and firewalld in a private mount namespace (a tmpfs
on /run, a temporary copy of /etc/firewalld bind-mounted over the machine's), installs
fwgen's files with fwgen-firewalld.sh, and holds until the probes are done; both daemons
are stopped by their pids. A client on the lab link plays several hosts by addresses of
its own.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render
from tests.kernel.conftest import need
from tests.kernel.lab import Lab
from tests.kernel.test_firewalld_install import TOOLS, write

pytestmark = pytest.mark.kernel

PROFILE = """\
description: a deny inside an allowed any, a reject of one port, and refusals
inbound:
  - {port: 8080/tcp, name: web}
  - {port: 8081/tcp, name: admin, from: [198.18.1.0/24]}
  - {from: [198.18.1.128/25, "2001:db8:1::8000/113"], action: deny}
  - {port: 8080/tcp, name: lab, from: [198.18.1.64/26], action: reject}
options: {refuse: reject, ping: false}
"""

DAEMONS = """
set -u
mount --bind "$ETC_COPY" /etc/firewalld
mount -t tmpfs tmpfs /run
mkdir -p /run/dbus
bus=$(dbus-daemon --system --fork --print-pid)
firewalld --nofork --nopid --log-target console >"$WORK/firewalld.log" 2>&1 &
daemon=$!
for _ in $(seq 150); do firewall-cmd --state >/dev/null 2>&1 && break; sleep 0.2; done
bash "$WORK/fw/fwgen-firewalld.sh" >"$WORK/install.log" 2>&1
echo "$?" >"$WORK/ready"
for _ in $(seq 600); do [ -e "$WORK/stop" ] && break; sleep 0.2; done
kill "$daemon"; wait "$daemon"
kill "$bus"
"""


def test_firewalld_denies_rejects_and_refuses_as_the_profile_says(tmp_path: Path) -> None:
    need(next((f"the firewalld tests need `{t}`" for t in TOOLS if not shutil.which(t)), ""))
    (tmp_path / "p.yaml").write_text(PROFILE)
    write(render(resolve_profile(str(tmp_path / "p.yaml")), "firewalld"), tmp_path / "fw")
    etc = tmp_path / "etc-firewalld"
    shutil.copytree("/etc/firewalld", etc, symlinks=True)
    with Lab() as lab:
        lab.add_client("c")
        for address in ("198.18.1.70", "198.18.1.200", "2001:db8:1::8001"):
            lab.add_address("c", address)
        lab.listen(["tcp:8080", "tcp:8081", "tcp:8082"])
        env = f"ETC_COPY={shlex.quote(str(etc))} WORK={shlex.quote(str(tmp_path))}"
        session = subprocess.Popen(
            ["ip", "netns", "exec", lab.server, "unshare", "-m", "--propagation", "private",
             "bash", "-c", f"{env}; export ETC_COPY WORK; {DAEMONS}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            for _ in range(300):
                if (tmp_path / "ready").exists() or session.poll() is not None:
                    break
                time.sleep(0.2)
            installed = (tmp_path / "ready").read_text().strip()
            assert installed == "0", (tmp_path / "install.log").read_text()
            found = {
                (source, spec): lab.answer("c", "ipv6" if ":" in source else "ipv4", spec, source)
                for source, spec in (
                    ("198.18.1.2", "tcp:8080"),  # open to any
                    ("198.18.1.2", "tcp:8082"),  # nothing admits it: refused (RST)
                    ("198.18.1.200", "tcp:8080"),  # the deny inside the any: silence
                    ("198.18.1.200", "tcp:8081"),
                    ("198.18.1.70", "tcp:8080"),  # the reject of one port
                    ("198.18.1.70", "tcp:8081"),  # ... and no other
                    ("2001:db8:1::2", "tcp:8080"),
                    ("2001:db8:1::2", "tcp:8082"),
                    ("2001:db8:1::8001", "tcp:8080"),
                )
            }
        finally:
            (tmp_path / "stop").touch()
            out = session.communicate(timeout=60)[0]
    results = {key: result for key, (result, _) in found.items()}
    assert results == {
        ("198.18.1.2", "tcp:8080"): "open",
        ("198.18.1.2", "tcp:8082"): "refused",
        ("198.18.1.200", "tcp:8080"): "timeout",
        ("198.18.1.200", "tcp:8081"): "timeout",
        ("198.18.1.70", "tcp:8080"): "refused",
        ("198.18.1.70", "tcp:8081"): "open",
        ("2001:db8:1::2", "tcp:8080"): "open",
        ("2001:db8:1::2", "tcp:8082"): "refused",
        ("2001:db8:1::8001", "tcp:8080"): "timeout",
    }, out + (tmp_path / "firewalld.log").read_text()
    # refused at once, not after a timeout
    assert all(s < 1 for (r, s) in found.values() if r == "refused"), found
    assert session.returncode == 0, out
