"""fwgen's files under the real firewalld (see firewalld_lab.py), proved with packets: a
reload keeps other zones' rules, a second load changes nothing (an established connection
survives it), and `apply` refuses a runtime it could not give back and rolls back to the
old files and ruleset byte for byte.

One daemon serves the whole module (starting it takes a second; every test first puts
/etc/firewalld back to the package's state and reloads). The clients: `trusted` on the
server's first link, `outside` on its second.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.conftest import need, require
from tests.kernel.firewalld_lab import Firewalld, missing_firewalld
from tests.kernel.lab import Lab

pytestmark = pytest.mark.kernel

PORTS = ["tcp:8080", "tcp:8443", "tcp:9090"]


@pytest.fixture(scope="module")
def daemon() -> Iterator[Firewalld]:
    require("nft")
    need(missing_firewalld())
    with Lab() as lab:
        lab.add_client("trusted")
        lab.add_client("outside")
        lab.listen(PORTS)
        found = Firewalld(lab)
        try:
            found.start()
            yield found
        finally:
            found.close()


@pytest.fixture
def fw(daemon: Firewalld) -> Firewalld:
    """The module's daemon with the package's configuration: no zone, ipset or policy
    files of anyone, the machine's firewalld.conf, reloaded."""
    for kind in ("zones", "ipsets", "policies", "services"):
        for old in (daemon.etc / kind).glob("*.xml"):
            old.unlink()
    (daemon.etc / "firewalld.conf").write_bytes(Path("/etc/firewalld/firewalld.conf").read_bytes())
    daemon.cmd("--reload")
    return daemon


def zone(lab: Lab, ports: list[int], partners: bool = True) -> dict[str, str]:
    """A zone of fwgen's bound to both of the server's links: *ports* open to all, and
    with *partners* 9090 to the members of the ipsets fwgen-partners and
    fwgen-partners-v6 (the `trusted` client's networks)."""
    trusted = lab.clients["trusted"]
    devices = "".join(
        f'  <interface name="{lab.link(i, "s")}"/>\n' for i in range(1, len(lab.clients) + 1)
    )
    opened = "".join(f'  <port port="{port}" protocol="tcp"/>\n' for port in ports)
    rules = "".join(
        f'  <rule family="{family}"><source ipset="fwgen-partners{suffix}"/>'
        '<port port="9090" protocol="tcp"/><accept/></rule>\n'
        for family, suffix in (("ipv4", ""), ("ipv6", "-v6"))
    )
    sets = {
        f"fwgen-partners{suffix}.xml": '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<ipset type="hash:net">{option}<entry>{network}</entry></ipset>\n'
        for suffix, option, network in (
            ("", "", "198.18.1.0/24"),
            ("-v6", '<option name="family" value="inet6"/>', f"{trusted.ipv6}/128"),
        )
    }
    if not partners:
        rules, sets = "", {}
    text = (
        '<?xml version="1.0" encoding="utf-8"?>\n<zone target="DROP">\n'
        f"  <short>fwgen</short>\n{devices}{opened}{rules}</zone>\n"
    )
    return {"fwgen.xml": text, **sets}


def snapshot(fw: Firewalld) -> str:
    """What a load changes: fwgen's files, firewalld.conf and the ruleset firewalld made."""
    files = sorted(p for p in fw.etc.rglob("*") if p.is_file())
    text = "".join(f"== {p.relative_to(fw.etc)}\n{p.read_text()}" for p in files)
    return text + fw.ruleset()


def test_a_reload_keeps_other_zones_rules(fw: Firewalld) -> None:
    lab = fw.box.lab
    outside = lab.clients["outside"]
    # the admin's own zone: the outside client's IPv4 address, with port 8443
    fw.cmd("--permanent", "--zone=internal", f"--add-source={outside.ipv4}/32")
    fw.cmd("--permanent", "--zone=internal", "--add-port=8443/tcp")
    fw.cmd("--reload")
    internal = fw.cmd("--zone=internal", "--list-all")
    lab.apply("firewalld", zone(lab, [8080]))
    expected = {
        ("trusted", "ipv4"): {"tcp:8080": "open", "tcp:8443": "blocked", "tcp:9090": "open"},
        ("trusted", "ipv6"): {"tcp:8080": "open", "tcp:8443": "blocked", "tcp:9090": "open"},
        ("outside", "ipv4"): {"tcp:8080": "blocked", "tcp:8443": "open", "tcp:9090": "blocked"},
        ("outside", "ipv6"): {"tcp:8080": "open", "tcp:8443": "blocked", "tcp:9090": "blocked"},
    }
    found = lab.matrix(PORTS)
    assert {key: {s: found[(*key, s)] for s in PORTS} for key in expected} == expected
    # fwgen's next load: 8080 closes in fwgen's zone, the admin's zone is as it was
    lab.apply("firewalld", zone(lab, []))
    assert lab.probe("trusted", "ipv4", ["tcp:8080"]) == {"tcp:8080": "blocked"}
    assert lab.probe("outside", "ipv4", ["tcp:8443", "tcp:8080"]) == {
        "tcp:8443": "open",
        "tcp:8080": "blocked",
    }
    assert fw.cmd("--zone=internal", "--list-all") == internal


def test_a_second_load_changes_nothing(fw: Firewalld) -> None:
    lab = fw.box.lab
    files = zone(lab, [8080])
    lab.apply("firewalld", files)
    first = snapshot(fw)
    held = [lab.hold("outside", family, 8080) for family in ("ipv4", "ipv6")]
    lab.apply("firewalld", files)
    assert snapshot(fw) == first
    for conn in held:  # established across the reload
        assert conn.stdin is not None and conn.stdout is not None
        conn.stdin.write("still there\n")
        conn.stdin.flush()
        assert conn.stdout.readline().strip() == "ok"


APPLY = """\
import json, sys
from fwgen.errors import FwgenError
from fwgen.host import apply as applying
files = json.load(open(sys.argv[1]))
request = applying.Request("firewalld", files, "test", confirm=float(sys.argv[2]) or None)
try:
    sys.exit(applying.apply(request, lambda line: print("fwgen:", line), applying.stdin_answer))
except FwgenError as error:
    sys.exit(f"fwgen: {error}")
"""


def apply(fw: Firewalld, files: dict[str, str], confirm: float) -> subprocess.CompletedProcess[str]:
    """`fwgen.host.apply.apply` in the sandbox (root, no admin connection), with no answer
    (stdin at its end): *confirm* 0 is --yes. Its output and exit code."""
    (fw.box.dir / "files.json").write_text(json.dumps(files))
    state = fw.box.dir / "state"
    cmd = fw.box.enter(
        "env", f"FWGEN_STATE_DIR={state}", sys.executable, "-c", APPLY,
        str(fw.box.dir / "files.json"), str(confirm),
    )  # fmt: skip
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL
    )


def test_apply_rolls_back_to_the_old_files_and_ruleset(fw: Firewalld) -> None:
    lab = fw.box.lab
    done = apply(fw, zone(lab, [8080]), 0)
    assert done.returncode == 0, done.stdout + done.stderr
    before = snapshot(fw)
    assert lab.probe("trusted", "ipv4", ["tcp:8080"]) == {"tcp:8080": "open"}
    done = apply(fw, zone(lab, [8443], partners=False), 3)  # its ipsets' files go
    assert done.returncode == 1, done.stdout + done.stderr
    assert "fwgen: loaded: test" in done.stdout
    assert "rolled back: the saved state was restored" in done.stdout, done.stdout
    assert snapshot(fw) == before
    assert lab.probe("trusted", "ipv4", ["tcp:8080", "tcp:8443"]) == {
        "tcp:8080": "open",
        "tcp:8443": "blocked",
    }
    # kept this time: the ipsets the new rules no longer have are gone
    done = apply(fw, zone(lab, [8443], partners=False), 0)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in fw.etc.rglob("fwgen*")) == ["fwgen.xml"]
    assert "fwgen-partners" not in fw.cmd("--get-ipsets")
    assert lab.probe("trusted", "ipv4", ["tcp:8080", "tcp:8443"]) == {
        "tcp:8080": "blocked",
        "tcp:8443": "open",
    }


def test_apply_refuses_a_runtime_a_reload_would_lose(fw: Firewalld) -> None:
    lab = fw.box.lab
    fw.cmd("--zone=public", "--add-port=1234/tcp")  # runtime only
    before = snapshot(fw)
    refused = apply(fw, zone(lab, [8080]), 0)
    assert refused.returncode == 1 and not refused.stdout.count("loaded:"), refused.stdout
    assert "zone public: runtime only: ports: 1234/tcp" in refused.stderr, refused.stderr
    assert "nothing was loaded" in refused.stderr
    assert snapshot(fw) == before
    assert "1234/tcp" in fw.cmd("--zone=public", "--list-ports")
