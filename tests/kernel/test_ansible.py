"""The collection fwgen.firewall on a host that is a network namespace.

ansible-playbook runs with a local connection inside `ip netns exec NS unshare -m
--propagation private`, with a private copy of /etc bind-mounted over the machine's (the
role writes /etc/nftables.d/fwgen.nft and /etc/nftables.conf, its defaults), an empty
folder over /var/lib (the module's record, /var/lib/fwgen/ansible) and a tmpfs on /run
(`fwgen apply`'s state, /run/fwgen). The role runs with its default paths; nothing of the
machine's is written. systemd does not run in there (/run/systemd/system is absent on the
tmpfs), so the role enables no service and says so: the systemd module itself is not run
here (tests/test_ansible.py checks the task that calls it).

SSH_CONNECTION is set as a controller at 198.18.1.2 would have it: the role passes it to
`fwgen apply --keep`, whose guard must find it admitted.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ansiblerun import PLAYBOOK, ansible, changed, local
from tests.kernel.conftest import require
from tests.kernel.lab import Lab

pytestmark = pytest.mark.kernel

CONTROLLER = "198.18.1.2 50000 198.18.1.1 22"  # SSH_CONNECTION: client, its port, server, 22
# In the host's private mount namespace: its own /etc, /var/lib and /run.
PRIVATE = (
    'mount --bind "$0" /etc && mount --bind "$1" /var/lib && mount -t tmpfs fwgen-run /run'
    ' && shift && exec "$@"'
)


def test_the_collection_changes_then_holds_then_reviews_without_changing(tmp_path: Path) -> None:
    require("nft", "unshare", "mount")
    etc, var_lib = tmp_path / "etc", tmp_path / "var-lib"
    subprocess.run(["cp", "-a", "/etc", str(etc)], check=True)
    var_lib.mkdir()
    machine_conf = (
        Path("/etc/nftables.conf").read_bytes() if Path("/etc/nftables.conf").exists() else b""
    )

    with Lab() as lab:

        def play(*extra: str, **host: Any) -> subprocess.CompletedProcess[str]:
            inventory = tmp_path / "inventory.yml"
            variables = local(**{"fwgen_networks": {"admins": ["198.18.1.0/24"]}, **host})
            inventory.write_text(yaml.safe_dump({"all": {"hosts": {"web": variables}}}))
            prefix = (
                "ip",
                "netns",
                "exec",
                lab.server,
                "unshare",
                "-m",
                "--propagation",
                "private",
            )
            prefix += ("sh", "-c", PRIVATE, str(etc), str(var_lib))
            args = ("-i", str(inventory), PLAYBOOK, *extra)
            return ansible(*args, home=tmp_path / "home", prefix=prefix, SSH_CONNECTION=CONTROLLER)

        def ruleset() -> str:
            return lab.run(lab.server, "nft", "-s", "list", "ruleset")

        def files() -> dict[str, bytes]:
            found = {"nftables.conf": (etc / "nftables.conf").read_bytes()}
            for root in (etc / "nftables.d", var_lib / "fwgen"):
                found |= {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}
            return found

        assert "table inet fwgen" not in ruleset()

        # First run: loaded by fwgen apply (the controller kept), installed, in force at boot.
        first = play()
        assert first.returncode == 0, first.stdout + first.stderr
        assert changed(first.stdout) == [2], first.stdout  # the ruleset, the include
        loaded = ruleset()
        assert "elements = { 198.18.1.0/24 }" in loaded and "tcp dport 443" in loaded
        installed = etc / "nftables.d" / "fwgen.nft"
        conf = (etc / "nftables.conf").read_bytes()
        assert conf == machine_conf + b'include "/etc/nftables.d/fwgen.nft"\n'
        # What boot loads is what was loaded: the installed file, into a fresh namespace.
        with Lab() as boot:
            boot.run(boot.server, "nft", "-f", "-", stdin=installed.read_text())
            assert boot.run(boot.server, "nft", "-s", "list", "ruleset") == loaded
        assert (var_lib / "fwgen" / "ansible" / "host.yaml").is_file()
        assert "systemd is not running here: nftables.service was not enabled" in first.stdout

        # Second run: no change, nothing loaded again.
        held = files()
        second = play()
        assert second.returncode == 0, second.stdout + second.stderr
        assert changed(second.stdout) == [0], second.stdout
        assert ruleset() == loaded and files() == held

        # A profile change reviewed with --check --diff: shown, and nothing changes.
        review = play("--check", "--diff", fwgen_profile="mailserver")
        assert review.returncode == 0, review.stdout + review.stderr
        assert changed(review.stdout) == [1]
        assert "What the rules admit, installed -> new (fwgen diff):" in review.stdout
        assert "+ opens smtp 25/tcp from any [ipv4+ipv6]" in review.stdout
        assert "- closes https 443/tcp from any [ipv4+ipv6]" in review.stdout
        assert "--- before: /etc/nftables.d/fwgen.nft" in review.stdout
        assert '+\t\tmeta nfproto ipv4 tcp dport 25 counter accept comment "smtp: SMTP"' in (
            review.stdout
        )
        assert ruleset() == loaded and files() == held

        # The guard: networks that would not admit the controller again are refused by
        # fwgen apply, and nothing is loaded or installed.
        locked_out = play(fwgen_profile="mailserver", fwgen_networks={"admins": ["10.9.0.0/16"]})
        assert locked_out.returncode != 0, locked_out.stdout
        assert "198.18.1.2" in locked_out.stdout, locked_out.stdout
        assert ruleset() == loaded and files() == held

        # The change made: loaded and installed, and the next run holds.
        made = play(fwgen_profile="mailserver")
        assert made.returncode == 0 and changed(made.stdout) == [1], made.stdout
        now = ruleset()
        assert "tcp dport 25 counter accept" in now and "tcp dport 443" not in now
        assert json.loads((var_lib / "fwgen" / "ansible" / "files.json").read_text()) == [
            "fwgen.nft"
        ]
        assert play(fwgen_profile="mailserver").stdout.count("changed=0") == 1
    if machine_conf:  # the machine's own file, never written (the session checks it too)
        assert Path("/etc/nftables.conf").read_bytes() == machine_conf
