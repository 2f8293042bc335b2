"""The real Docker engine and the real fail2ban beside fwgen's rules, proved with packets.

Each test starts its own containerd and dockerd (and fail2ban) in the lab's server
namespace (see engines.py) and one container published with every kind of port:

    -p 8080:80  -p 9000-9002:9000-9002  -p 7000:7000/udp  -p 127.0.0.1:8082:82  -p 8083:81

The profile allows 8080, 9000-9002, 7000/udp and 8082 from the `trusted` client only
(both families); 8083 has no rule; 8082 is published on the host's loopback only. The
clients route the container networks through the server, so they also try the
container's own addresses.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render
from tests.kernel.conftest import need
from tests.kernel.engines import (
    DOCKER_IPV4,
    DOCKER_IPV6,
    OVERLAID,
    PRIVATE,
    RUN,
    Docker,
    Fail2ban,
    Sandbox,
    missing_engine,
)
from tests.kernel.lab import Lab

pytestmark = pytest.mark.kernel

TARGETS = ["nftables", "iptables", "ufw"]
MODES = ["default", "ipv6"]  # ipv6: --ipv6 --ip6tables --experimental --userland-proxy=false
LISTEN = ["tcp:80", "tcp:81", "tcp:82", "tcp:83", "tcp:9000", "tcp:9001", "tcp:9002", "udp:7000"]
PUBLISH = ["8080:80", "9000-9002:9000-9002", "7000:7000/udp", "127.0.0.1:8082:82", "8083:81"]
ALLOWED = ["tcp:8080", "tcp:9000", "tcp:9002", "udp:7000"]  # published, with a rule for trusted
CLOSED = ["tcp:8082", "tcp:8083"]  # on the host's loopback only; published with no rule
PORTS = ALLOWED + CLOSED
# Straight to the container's address, not DNATed: the inbound rules govern these as
# they govern the published ports. 9000 has a rule (for trusted); 80 has none (its rule
# is for the host's 8080); 83 is not published and has no rule.
DIRECT = ["tcp:80", "tcp:83", "tcp:9000"]


def profile(lab: Lab, folder: Path) -> Path:
    trusted = lab.clients["trusted"]
    path = folder / "real-engines.yaml"
    path.write_text(
        "description: published ports of every kind\nextends: base\n"
        f'networks: {{web: [{trusted.ipv4}, "{trusted.ipv6}"]}}\n'
        "inbound:\n"
        "  - {service: ssh, from: web}\n"
        "  - {port: [8080/tcp, 9000-9002/tcp, 7000/udp, 8082/tcp], name: web, from: web}\n"
        "options: {containers: docker}\n"
    )
    return path


@pytest.fixture
def box(lab: Lab) -> Iterator[Sandbox]:
    need(missing_engine())
    sandbox = Sandbox(lab)
    try:
        yield sandbox
    finally:
        sandbox.close()


def rules(lab: Lab, target: str, tmp_path: Path) -> dict[str, str]:
    return render(resolve_profile(str(profile(lab, tmp_path))), target)


def start_docker(lab: Lab, box: Sandbox, mode: str) -> tuple[Docker, dict[str, str]]:
    """dockerd with one published container; the clients route its networks via the server."""
    docker = Docker(box, ipv6=mode == "ipv6")
    docker.start()
    container = docker.serve("web", PUBLISH, LISTEN)
    lab.run(lab.server, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    for c in lab.clients.values():
        lab.run(c.ns, "ip", "route", "replace", DOCKER_IPV4, "via", c.server_ipv4)
        lab.run(c.ns, "ip", "-6", "route", "replace", DOCKER_IPV6, "via", c.server_ipv6)
    return docker, container


def expected(open_to: dict[tuple[str, str], list[str]]) -> dict[tuple[str, str, str], str]:
    """The probe matrix with *open_to[(client, family)]* open and everything else blocked."""
    return {
        (client, family, spec): "open" if spec in open_to.get((client, family), []) else "blocked"
        for client in ("trusted", "outside")
        for family in ("ipv4", "ipv6")
        for spec in PORTS
    }


AS_WRITTEN = expected({("trusted", "ipv4"): ALLOWED, ("trusted", "ipv6"): ALLOWED})


def assert_direct_follows_the_profile(lab: Lab, container: dict[str, str]) -> None:
    """Connections straight to the container's addresses (both families in the IPv6
    mode), from every client: only what an inbound rule admits gets through."""
    pairs = [(c, f) for c in lab.clients for f, address in container.items() if address]
    with ThreadPoolExecutor(max_workers=len(pairs)) as pool:
        results = pool.map(
            lambda pair: lab.probe_from(lab.clients[pair[0]].ns, container[pair[1]], DIRECT), pairs
        )
        found = {
            (client, family, spec): state
            for (client, family), states in zip(pairs, results, strict=True)
            for spec, state in states.items()
        }
    assert found == {
        key: "open" if key[0] == "trusted" and key[2] == "tcp:9000" else "blocked" for key in found
    }


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("target", TARGETS)
def test_published_ports_follow_the_profile(
    lab: Lab, box: Sandbox, target: str, mode: str, tmp_path: Path
) -> None:
    _, container = start_docker(lab, box, mode)
    assert bool(container["ipv6"]) == (mode == "ipv6")
    # without fwgen, Docker publishes to everyone: the probes see an open port
    assert set(lab.matrix(ALLOWED).values()) == {"open"}
    lab.apply(target, rules(lab, target, tmp_path))
    assert lab.matrix(PORTS) == AS_WRITTEN
    assert_direct_follows_the_profile(lab, container)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("target", TARGETS)
def test_loaded_before_dockerd_and_after_its_restart(
    lab: Lab, box: Sandbox, target: str, mode: str, tmp_path: Path
) -> None:
    """Boot order (fwgen first, then the engine) and an engine restart: the loader is run
    again after each engine start, as docs/containers.md tells admins to do."""
    files = rules(lab, target, tmp_path)
    lab.apply(target, files)
    docker, container = start_docker(lab, box, mode)
    lab.apply(target, files)
    assert lab.matrix(PORTS) == AS_WRITTEN
    docker.restart()
    container = docker.ready("web")
    lab.apply(target, files)
    assert lab.matrix(PORTS) == AS_WRITTEN
    assert_direct_follows_the_profile(lab, container)


@pytest.mark.parametrize("mode", MODES)
def test_nftables_needs_no_reload_after_a_dockerd_restart(
    lab: Lab, box: Sandbox, mode: str, tmp_path: Path
) -> None:
    lab.apply("nftables", rules(lab, "nftables", tmp_path))
    docker, _ = start_docker(lab, box, mode)
    assert lab.matrix(PORTS) == AS_WRITTEN
    docker.restart()
    container = docker.ready("web")
    assert lab.matrix(PORTS) == AS_WRITTEN
    assert_direct_follows_the_profile(lab, container)


def test_iptables_after_a_dockerd_restart_without_the_loader(
    lab: Lab, box: Sandbox, tmp_path: Path
) -> None:
    """What holds when the loader is NOT run again after an engine restart (a documented
    fact, docs/containers.md): Docker moves its IPv4 jump to
    DOCKER-USER first, so IPv4 still follows the profile; in its IPv6 mode it puts its
    own accepts ahead of fwgen's IPv6 jump, so over IPv6 every published port is open to
    everyone until `fwgen-iptables.sh` runs again."""
    files = rules(lab, "iptables", tmp_path)
    docker, _ = start_docker(lab, box, "ipv6")
    lab.apply("iptables", files)
    assert lab.matrix(PORTS) == AS_WRITTEN
    docker.restart()
    docker.ready("web")
    published = [spec for spec in PORTS if spec != "tcp:8082"]  # 8082: IPv4 loopback only
    assert lab.matrix(PORTS) == expected(
        {
            ("trusted", "ipv4"): ALLOWED,
            ("trusted", "ipv6"): published,
            ("outside", "ipv6"): published,
        }
    )
    lab.apply("iptables", files)
    assert lab.matrix(PORTS) == AS_WRITTEN


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("target", ["nftables", "iptables"])
def test_fail2ban_bans_survive_a_reload(
    lab: Lab, box: Sandbox, target: str, mode: str, tmp_path: Path
) -> None:
    """fail2ban bans the trusted client's IPv4 address in INPUT and in DOCKER-USER; fwgen's
    rules are loaded again, twice; the bans still hold, its IPv6 address (not banned) still
    gets in, and fail2ban's chains and jumps are as fail2ban left them. (Docker 20.10 makes
    no IPv6 DOCKER-USER chain, so fail2ban could not ban there on nftables.)"""
    start_docker(lab, box, mode)
    lab.listen(["tcp:22"])
    files = rules(lab, target, tmp_path)
    lab.apply(target, files)
    fail2ban = Fail2ban(box)
    fail2ban.start()
    assert [box.holds(daemon.pid) for daemon in box.daemons] == [True] * 3
    specs = ["tcp:22", "tcp:8080", "udp:7000"]
    assert lab.probe("trusted", "ipv4", specs) == dict.fromkeys(specs, "open")
    address = lab.clients["trusted"].ipv4
    fail2ban.ban("fwgen-input", address)
    assert lab.probe("trusted", "ipv4", specs) == {
        "tcp:22": "blocked",
        "tcp:8080": "open",
        "udp:7000": "open",
    }
    fail2ban.ban("fwgen-docker", address)
    theirs = f2b_rules(lab)
    for reload in (1, 2):
        lab.apply(target, files)
        assert (reload, f2b_rules(lab)) == (reload, theirs)
        assert (reload, lab.probe("trusted", "ipv4", specs)) == (
            reload,
            dict.fromkeys(specs, "blocked"),
        )
        assert lab.probe("trusted", "ipv6", specs) == dict.fromkeys(specs, "open")
    assert address in fail2ban.banned("fwgen-docker")


def f2b_rules(lab: Lab) -> list[str]:
    """fail2ban's chains, rules and jumps in both families, as iptables-save lists them."""
    return [
        f"{tool}: {line}"
        for tool in ("iptables-save", "ip6tables-save")
        for line in lab.run(lab.server, tool).splitlines()
        if "f2b-" in line
    ]


def test_the_sandbox_writes_only_its_own_copies(box: Sandbox) -> None:
    """What the daemons write lands in the sandbox's copies, never in the machine's files."""
    for path in (*PRIVATE, *OVERLAID, "/run"):  # first make sure: a write would be private
        box.run("mountpoint", "-q", path)
    written = [f"{path}/fwgen-probe" for path in (*PRIVATE, *OVERLAID, "/run")]
    written.append("/var/lib/docker/probe")
    for path in written:
        box.run("sh", "-c", f"mkdir -p {os.path.dirname(path)} && echo x > {path}")
        assert not os.path.exists(path), path
    assert (box.private("/etc/docker") / "fwgen-probe").read_text() == "x\n"
    assert (box.private("/var/log") / "fwgen-probe").read_text() == "x\n"
    assert box.run("cat", "/var/lib/docker/probe") == "x\n"


def test_a_daemon_that_cannot_start_fails_with_its_log(box: Sandbox) -> None:
    proc = box.spawn("dockerd", "dockerd", "--no-such-option")
    with pytest.raises(AssertionError, match=r"dockerd exited; its log ends:\n.*no-such-option"):
        box.wait_for("dockerd", proc, "docker", "-H", f"unix://{RUN}/docker.sock", "info")
