"""`fwgen render -t firewalld` and `fwgen apply -t firewalld` under the real firewalld
(see firewalld_lab.py), proved with packets: a reload keeps another zone's rules and the
connections established before it, `apply` refuses a runtime it could not give back, and
an unconfirmed, killed or first apply gives back the old files and ruleset byte for byte.
(That a second run of the install script changes nothing is test_firewalld_install.py's.)

One daemon serves the whole module (every test first puts /etc/firewalld back to the
package's state and reloads). The clients: `trusted` on the server's first link,
`outside` on its second, and `engine` on a third that the server binds to a zone of its
own, `docker` (the zone container engines add to firewalld), with port 8443 open.
"""

from __future__ import annotations

import difflib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render
from tests.kernel.conftest import need, require
from tests.kernel.firewalld_lab import Firewalld, missing_firewalld
from tests.kernel.lab import Lab
from tests.kernel.test_apply import NEW, OLD, PARTNERS, TRUSTED_SSH, Host, still_up

pytestmark = pytest.mark.kernel

PORTS = ["tcp:8080", "tcp:8443", "tcp:9090"]


@pytest.fixture(scope="module")
def daemon() -> Iterator[Firewalld]:
    require("nft")
    need(missing_firewalld())
    with Lab() as lab:
        for client in ("trusted", "outside", "engine"):
            lab.add_client(client)
        lab.listen(PORTS)
        found = Firewalld(lab)
        found.start()
        yield found  # stopped with the lab


@pytest.fixture
def fw(daemon: Firewalld) -> Firewalld:
    """The module's daemon with the package's configuration (no zone, ipset or policy
    files of anyone, the machine's firewalld.conf) and the engine's zone, reloaded."""
    for kind in ("zones", "ipsets", "policies", "services"):
        for old in (daemon.etc / kind).glob("*.xml*"):
            old.unlink()
    conf = daemon.etc / "firewalld.conf"
    conf.write_bytes(Path("/etc/firewalld/firewalld.conf").read_bytes())
    conf.chmod(0o644)
    (daemon.etc / "zones" / "docker.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<zone>\n  <short>docker</short>\n'
        f'  <interface name="{daemon.box.lab.link(3, "s")}"/>\n'
        '  <port port="8443" protocol="tcp"/>\n</zone>\n'
    )
    daemon.cmd("--reload")
    return daemon


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    (tmp_path / "old.yaml").write_text(OLD)
    (tmp_path / "new.yaml").write_text(NEW.format(partners=PARTNERS["other"]))
    return tmp_path


def files(profiles: Path, name: str) -> dict[str, str]:
    return render(resolve_profile(str(profiles / name)), "firewalld")


def snapshot(fw: Firewalld) -> str:
    """What a load changes: the files of /etc/firewalld (their modes too) and the
    ruleset firewalld made. Not the ``*.old`` copies firewalld itself keeps of a file
    it rewrites (firewalld.conf.old when the default zone is set)."""
    found = sorted(p for p in fw.etc.rglob("*") if p.is_file() and p.suffix != ".old")
    text = "".join(
        f"== {p.relative_to(fw.etc)} {p.stat().st_mode & 0o7777:o}\n{p.read_text()}" for p in found
    )
    return text + fw.ruleset()


def same(now: str, before: str) -> None:
    """*now* is *before*; otherwise the lines that differ."""
    diff = difflib.unified_diff(before.splitlines(), now.splitlines(), "before", "now", lineterm="")
    assert now == before, "\n".join(diff)


def reach(lab: Lab) -> dict[tuple[str, str], dict[str, str]]:
    found = lab.matrix(PORTS)
    pairs = [(c, f) for c in lab.clients for f in ("ipv4", "ipv6")]
    return {pair: {spec: found[(*pair, spec)] for spec in PORTS} for pair in pairs}


def test_a_reload_keeps_other_zones_rules_and_established_connections(
    fw: Firewalld, profiles: Path
) -> None:
    lab = fw.box.lab
    docker = fw.cmd("--zone=docker", "--list-all")
    engine = {"tcp:8080": "blocked", "tcp:8443": "open", "tcp:9090": "blocked"}
    lab.apply("firewalld", files(profiles, "old.yaml"))
    old = {"tcp:8080": "open", "tcp:8443": "blocked", "tcp:9090": "blocked"}
    assert reach(lab) == {
        **{(c, f): old for c in ("trusted", "outside") for f in ("ipv4", "ipv6")},
        **{("engine", f): engine for f in ("ipv4", "ipv6")},
    }
    held = [lab.hold("outside", family, 8080) for family in ("ipv4", "ipv6")]
    lab.apply("firewalld", files(profiles, "new.yaml"))  # a reload: other files changed
    new = {"tcp:8080": "blocked", "tcp:8443": "blocked", "tcp:9090": "open"}  # partners
    closed = {"tcp:8080": "blocked", "tcp:8443": "blocked", "tcp:9090": "blocked"}
    assert reach(lab) == {  # the partners are IPv4 networks
        ("trusted", "ipv4"): new,
        ("trusted", "ipv6"): closed,
        **{("outside", f): closed for f in ("ipv4", "ipv6")},
        **{("engine", f): engine for f in ("ipv4", "ipv6")},
    }
    assert fw.cmd("--zone=docker", "--list-all") == docker
    assert still_up(held) == ["ok", "ok"]  # 8080 is closed to new connections only


@pytest.fixture
def host(fw: Firewalld, profiles: Path, tmp_path: Path) -> Iterator[Host]:
    """`fwgen apply -t firewalld` in the daemon's sandbox, OLD applied with --yes."""
    found = Host(fw.box.lab, "firewalld", tmp_path / "state", profiles)
    done = found.run(*found.apply_args("old.yaml", "--yes"), ssh=TRUSTED_SSH)
    assert done.returncode == 0, done.stdout + done.stderr
    # Making fwgen the default zone leaves the chains of the old default zone in the
    # ruleset, unused, until the next reload (which every rollback does): reloaded here,
    # so that "byte for byte" compares rulesets firewalld built the same way.
    fw.cmd("--reload")
    yield found
    assert not found.pending()


def test_unconfirmed_apply_gives_back_the_old_files_and_ruleset(fw: Firewalld, host: Host) -> None:
    before = snapshot(fw)
    lab = fw.box.lab
    held = [lab.hold("trusted", family, 8080) for family in ("ipv4", "ipv6")]
    proc = host.start(*host.apply_args("new.yaml", "--confirm", "3"))
    out, _ = proc.communicate(timeout=120)  # stdin closed, no answer
    assert proc.returncode == 1, out + host.log()
    assert "rolled back" in out
    same(snapshot(fw), before)
    assert lab.probe("trusted", "ipv4", PORTS) == {
        "tcp:8080": "open",
        "tcp:8443": "blocked",
        "tcp:9090": "blocked",
    }
    assert still_up(held) == ["ok", "ok"]


def test_killed_apply_still_rolls_back(fw: Firewalld, host: Host) -> None:
    before = snapshot(fw)
    proc = host.start(*host.apply_args("new.yaml", "--confirm", "3"))
    assert "fwgen-partners" in fw.cmd("--get-ipsets")  # NEW's 21 partners: an ipset
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    end = time.time() + 60
    while host.pending() and time.time() < end:
        time.sleep(0.2)
    assert not host.pending(), host.log()
    same(snapshot(fw), before)
    assert "fwgen-partners" not in fw.cmd("--get-ipsets")


def test_apply_refuses_a_runtime_a_reload_would_lose(fw: Firewalld, host: Host) -> None:
    fw.cmd("--zone=public", "--add-port=1234/tcp")  # runtime only
    before = snapshot(fw)
    refused = host.run(*host.apply_args("new.yaml", "--yes"), ssh=TRUSTED_SSH)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "zone public: runtime only: ports: 1234/tcp" in refused.stderr, refused.stderr
    assert "nothing was loaded" in refused.stderr
    same(snapshot(fw), before)
    assert "1234/tcp" in fw.cmd("--zone=public", "--list-ports")


def test_a_rolled_back_first_apply_gives_the_default_zone_back(
    fw: Firewalld, profiles: Path, tmp_path: Path
) -> None:
    """The install script makes fwgen's zone the default one; the rollback of the first
    apply puts firewalld.conf back and reloads: public is the default zone again."""
    before = snapshot(fw)
    assert fw.cmd("--get-default-zone").strip() == "public"
    host = Host(fw.box.lab, "firewalld", tmp_path / "state", profiles)
    proc = host.start(*host.apply_args("old.yaml", "--confirm", "10"))
    assert fw.cmd("--get-default-zone").strip() == "fwgen"
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + host.log()
    same(snapshot(fw), before)
    assert fw.cmd("--get-default-zone").strip() == "public"
    assert not host.pending()
