"""Container hosts: Docker's real rules in the server namespace (both families), a
container behind Docker's bridge, and fwgen's rules on top. The inbound rules govern
the published port and connections routed straight to the container's address."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render
from tests.kernel.docker_lab import CONTAINER_IPV4, CONTAINER_IPV6
from tests.kernel.lab import Lab
from tests.kernel.test_apply import OLD, TRUSTED_SSH, Host

pytestmark = pytest.mark.kernel

TARGETS = ["nftables", "iptables", "ufw"]
LOADERS = ["iptables", "ufw"]  # the targets whose script puts jumps in Docker's chains
FAMILIES = ("ipv4", "ipv6")
CONTAINER = {"ipv4": CONTAINER_IPV4, "ipv6": CONTAINER_IPV6}
SAVE = {"ipv4": "iptables-save", "ipv6": "ip6tables-save"}
COMMAND = {"ipv4": "iptables", "ipv6": "ip6tables"}


def docker_host(lab: Lab, target: str) -> dict[str, str]:
    """docker-host: 80, 443 and 8080 from the trusted client only, both families."""
    trusted = lab.clients["trusted"]
    addresses = [trusted.ipv4, trusted.ipv6]
    policy = resolve_profile("docker-host", {"admins": addresses, "web_clients": addresses})
    return render(policy, target)


def docker_lab(lab: Lab) -> None:
    lab.add_container()
    lab.docker_rules()
    lab.listen_in(lab.container, ["tcp:80", "tcp:81"])


def forward_is_docker_first(lab: Lab) -> None:
    """Docker's contract restored: FORWARD jumps to DOCKER-USER first, exactly once; and
    DOCKER-USER jumps to fwgen's chain first, exactly once."""
    for family in FAMILIES:
        forward = lab.chain(SAVE[family], "FORWARD")
        assert forward[0] == "-A FORWARD -j DOCKER-USER", (family, forward)
        assert forward.count("-A FORWARD -j DOCKER-USER") == 1, (family, forward)
        user = lab.chain(SAVE[family], "DOCKER-USER")
        assert user[0] == "-A DOCKER-USER -j FWGEN-CONTAINERS", (family, user)
        assert user.count("-A DOCKER-USER -j FWGEN-CONTAINERS") == 1, (family, user)


def restricted(lab: Lab) -> None:
    """What docker-host admits, in both families: the published port 8080 and the
    container's port 80 reached straight through its address from the trusted client
    only; the container's port 81 (no rule allows it) from no one."""
    trusted, outside = lab.clients["trusted"], lab.clients["outside"]
    for family in FAMILIES:
        assert lab.probe("trusted", family, ["tcp:8080", "tcp:81"]) == {
            "tcp:8080": "open",
            "tcp:81": "blocked",
        }, family
        assert lab.probe("outside", family, ["tcp:8080"]) == {"tcp:8080": "blocked"}, family
        direct = lab.probe_from(trusted.ns, CONTAINER[family], ["tcp:80", "tcp:81"])
        assert direct == {"tcp:80": "open", "tcp:81": "blocked"}, family
        direct = lab.probe_from(outside.ns, CONTAINER[family], ["tcp:80", "tcp:81"])
        assert direct == {"tcp:80": "blocked", "tcp:81": "blocked"}, family


@pytest.mark.parametrize("target", TARGETS)
def test_published_port_follows_the_inbound_rules(lab: Lab, target: str) -> None:
    docker_lab(lab)
    docker = {family: lab.docker_chains(SAVE[family]) for family in FAMILIES}
    lab.listen_in(lab.clients["trusted"].ns, ["tcp:9999"])
    # fail2ban's chain, jumped to first from INPUT: it must survive too
    lab.run(lab.server, "iptables", "-N", "f2b-sshd")
    lab.run(lab.server, "iptables", "-A", "f2b-sshd", "-s", "192.0.2.66", "-j", "REJECT")
    lab.run(lab.server, "iptables", "-I", "INPUT", "1", "-p", "tcp", "-j", "f2b-sshd")
    fail2ban = [line for line in lab.run(lab.server, "iptables-save").splitlines() if "f2b" in line]
    files = docker_host(lab, target)
    lab.apply(target, files)
    lab.apply(target, files)
    restricted(lab)
    # Docker's chains, twice reloaded over, hold what they held (fwgen's jump aside)
    for family in FAMILIES:
        ours = "-A DOCKER-USER -j FWGEN-CONTAINERS"
        kept = [line for line in lab.docker_chains(SAVE[family]) if line != ours]
        assert kept == docker[family], family
    assert [
        line for line in lab.run(lab.server, "iptables-save").splitlines() if "f2b" in line
    ] == (fail2ban)
    if target in LOADERS:
        forward_is_docker_first(lab)
    if target == "iptables":  # one jump to fwgen's chain, however often it is loaded
        saved = lab.run(lab.server, "iptables-save").splitlines()
        assert saved.count("-A INPUT -j FWGEN-INPUT") == 1
    # the container reaches the outside (masqueraded by Docker's rules)
    trusted = lab.clients["trusted"]
    for address in (trusted.ipv4, trusted.ipv6):
        assert lab.probe_from(lab.container, address, ["tcp:9999"]) == {"tcp:9999": "open"}


@pytest.mark.parametrize("target", TARGETS)
def test_without_containers_docker_publishes_to_everyone(lab: Lab, target: str) -> None:
    """The problem `containers:` solves: input rules never see a DNATed connection, nor
    one routed straight to a container's address."""
    docker_lab(lab)
    trusted = lab.clients["trusted"]
    policy = resolve_profile("docker-host", {"admins": [trusted.ipv4], "web_clients": []})
    without = policy.replace(containers=None, coexist=False)
    lab.apply(target, render(without, target))
    assert lab.probe("outside", "ipv4", ["tcp:8080"]) == {"tcp:8080": "open"}
    outside = lab.clients["outside"].ns
    assert lab.probe_from(outside, CONTAINER_IPV4, ["tcp:80"]) == {"tcp:80": "open"}


@pytest.mark.parametrize("target", TARGETS)
def test_a_rule_for_one_host_address_publishes_on_that_address_only(
    lab: Lab, target: str, tmp_path: Path
) -> None:
    """`host:` restricts published ports to that address, and admits no connection
    routed straight to a container (its destination is not that address)."""
    docker_lab(lab)
    trusted = lab.clients["trusted"]
    other = lab.clients["outside"].server_ipv4  # the server's address on the other link
    lab.run(trusted.ns, "ip", "route", "add", f"{other}/32", "via", trusted.server_ipv4)
    profile = tmp_path / "one-address.yaml"
    profile.write_text(
        "description: one address\nextends: base\noptions: {containers: docker}\n"
        f"inbound: [{{port: [80/tcp, 8080/tcp], name: web, host: {trusted.server_ipv4}}}]\n"
    )
    lab.apply(target, render(resolve_profile(str(profile)), target))
    # the published port, through the trusted link's address of the server only
    assert lab.probe("trusted", "ipv4", ["tcp:8080"]) == {"tcp:8080": "open"}
    assert lab.probe_from(trusted.ns, other, ["tcp:8080"]) == {"tcp:8080": "blocked"}
    assert lab.probe_from(trusted.ns, CONTAINER_IPV4, ["tcp:80"]) == {"tcp:80": "blocked"}


@pytest.mark.parametrize("target", LOADERS)
def test_fail2ban_bans_in_docker_user_survive_reloads(lab: Lab, target: str) -> None:
    """fail2ban's docker action: a chain of its own, jumped to from DOCKER-USER. fwgen's
    loads empty only fwgen's chain, and its verdicts (DROP, RETURN) leave the ban in force."""
    docker_lab(lab)
    trusted = lab.clients["trusted"]
    lab.run(lab.server, "iptables", "-N", "f2b-web")
    lab.run(lab.server, "iptables", "-A", "f2b-web", "-s", trusted.ipv4, "-j", "REJECT")
    lab.run(lab.server, "iptables", "-A", "f2b-web", "-j", "RETURN")
    jump = ["DOCKER-USER", "-p", "tcp", "-m", "multiport", "--dports", "80,8080", "-j", "f2b-web"]
    lab.run(lab.server, "iptables", "-I", *jump)
    fail2ban = [line for line in lab.run(lab.server, "iptables-save").splitlines() if "f2b" in line]
    files = docker_host(lab, target)
    lab.apply(target, files)
    lab.apply(target, files)
    if target == "ufw":
        lab.run(lab.server, *lab.ufw_root(), "ufw", "reload")
    saved = lab.run(lab.server, "iptables-save").splitlines()
    assert [line for line in saved if "f2b" in line] == fail2ban
    forward_is_docker_first(lab)
    # banned over IPv4, the published port and the container are closed to trusted
    assert lab.probe("trusted", "ipv4", ["tcp:8080"]) == {"tcp:8080": "blocked"}
    assert lab.probe_from(trusted.ns, CONTAINER_IPV4, ["tcp:80"]) == {"tcp:80": "blocked"}
    assert lab.probe("trusted", "ipv6", ["tcp:8080"]) == {"tcp:8080": "open"}
    assert lab.probe("outside", "ipv4", ["tcp:8080"]) == {"tcp:8080": "blocked"}


def docker_restarts(lab: Lab) -> None:
    """What Docker 20.10 does to the IPv6 FORWARD chain at each start: its bridge's
    accepts inserted at the top again, above the jump to DOCKER-USER."""
    for rule in (
        ["-i", "docker0", "-o", "docker0", "-j", "ACCEPT"],
        ["-i", "docker0", "!", "-o", "docker0", "-j", "ACCEPT"],
        ["-o", "docker0", "-j", "DOCKER"],
        ["-o", "docker0", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
    ):
        lab.run(lab.server, "ip6tables", "-D", "FORWARD", *rule)
        lab.run(lab.server, "ip6tables", "-I", "FORWARD", "1", *rule)


@pytest.mark.parametrize("target", LOADERS)
def test_every_load_puts_the_jumps_first_again(lab: Lab, target: str) -> None:
    """Docker's IPv6 accepts above FORWARD's jump to DOCKER-USER open every published
    port over IPv6; each run of the loader moves that one jump back to the top."""
    docker_lab(lab)
    files = docker_host(lab, target)
    lab.apply(target, files)  # over Docker's IPv6 rules in Docker 20.10's order
    assert lab.probe("outside", "ipv6", ["tcp:8080"]) == {"tcp:8080": "blocked"}
    restricted(lab)
    docker_restarts(lab)
    assert lab.probe("outside", "ipv6", ["tcp:8080"]) == {"tcp:8080": "open"}  # the hole
    if target == "ufw":  # what the systemd drop-in runs after Docker starts
        script = files["fwgen-ufw.sh"]
        lab.run(lab.server, *lab.ufw_root(), "bash", "-s", "--", "--jumps", stdin=script)
    else:
        lab.apply(target, files)
    forward_is_docker_first(lab)
    restricted(lab)
    before = {family: lab.docker_chains(SAVE[family]) for family in FAMILIES}
    lab.apply(target, files)  # and again: nothing moves, nothing doubles
    assert {family: lab.docker_chains(SAVE[family]) for family in FAMILIES} == before
    forward_is_docker_first(lab)


def test_iptables_loader_before_docker_makes_docker_user(lab: Lab) -> None:
    """At boot fwgen's loader may run before Docker: it creates DOCKER-USER with fwgen's
    jump and jumps to it from FORWARD. Docker keeps both when it starts (it makes the
    chain only when it is missing and moves its FORWARD jump to the top), so over IPv4
    no published port is open at any moment; the loader run after Docker (ExecStartPost)
    restores the IPv6 order Docker 20.10 upsets."""
    files = docker_host(lab, "iptables")
    lab.add_container()
    lab.listen_in(lab.container, ["tcp:80", "tcp:81"])
    lab.apply("iptables", files)
    for family in FAMILIES:
        assert lab.chain(SAVE[family], "DOCKER-USER") == ["-A DOCKER-USER -j FWGEN-CONTAINERS"]
        assert lab.chain(SAVE[family], "FORWARD") == ["-A FORWARD -j DOCKER-USER"]
    lab.docker_rules(user_chain=False)  # Docker starts
    docker_restarts(lab)
    assert lab.chain("iptables-save", "DOCKER-USER")[0] == "-A DOCKER-USER -j FWGEN-CONTAINERS"
    assert lab.probe("outside", "ipv4", ["tcp:8080"]) == {"tcp:8080": "blocked"}
    assert lab.probe("trusted", "ipv4", ["tcp:8080"]) == {"tcp:8080": "open"}
    lab.apply("iptables", files)
    forward_is_docker_first(lab)
    restricted(lab)


UFW_DOCKER = """
# BEGIN UFW AND DOCKER
*filter
:ufw-user-forward - [0:0]
:ufw-docker-logging-deny - [0:0]
:DOCKER-USER - [0:0]
-A DOCKER-USER -j ufw-user-forward
-A DOCKER-USER -j RETURN -s 10.0.0.0/8
-A DOCKER-USER -j RETURN -s 172.16.0.0/12
-A DOCKER-USER -j RETURN -s 192.168.0.0/16
-A DOCKER-USER -j ufw-docker-logging-deny -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -d 172.16.0.0/12
-A DOCKER-USER -j RETURN
-A ufw-docker-logging-deny -j DROP
COMMIT
# END UFW AND DOCKER
"""


def with_ufw_docker(lab: Lab) -> tuple[Path, str, int]:
    """ufw's after.rules (the lab's private copy) with ufw-docker's section at its end:
    the file, its text, and the line that declares DOCKER-USER."""
    lab.ufw_root()
    after = Path(str(lab.ufw_dir), "etc-ufw", "after.rules")
    after.write_text(after.read_text() + UFW_DOCKER)
    text = after.read_text()
    return after, text, text.splitlines().index(":DOCKER-USER - [0:0]") + 1


def refused(lab: Lab, *command: str, script: str) -> list[str]:
    """The lines a loader run over the lab's private ufw files prints to stderr; it must fail."""
    done = subprocess.run(
        ["ip", "netns", "exec", lab.server, *lab.ufw_root(), *command],
        input=script,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0, done.stdout
    return done.stderr.strip().splitlines()


UFW_DOCKER_REFUSED = (
    "fwgen: /etc/ufw/after.rules:{line}: declares :DOCKER-USER, so each ufw reload empties "
    "that chain (fwgen's jump and fail2ban's go with it); take that section out (it is "
    "ufw-docker's: fwgen's block does its work) and run this again"
)


def test_ufw_refuses_a_section_that_declares_docker_user(lab: Lab) -> None:
    """ufw-docker's section declares DOCKER-USER, so every ufw load empties it (fwgen's
    jump and fail2ban's with it): the script says so and changes nothing."""
    docker_lab(lab)
    after, before, line = with_ufw_docker(lab)
    script = docker_host(lab, "ufw")["fwgen-ufw.sh"]
    assert refused(lab, "bash", "-s", script=script) == [UFW_DOCKER_REFUSED.format(line=line)]
    assert refused(lab, "bash", "-s", "--", "--jumps", script=script) == [
        UFW_DOCKER_REFUSED.format(line=line)
    ]
    assert after.read_text() == before
    assert "FWGEN" not in lab.run(lab.server, "iptables-save")


def test_iptables_loader_refuses_a_ufw_section_that_declares_docker_user(lab: Lab) -> None:
    docker_lab(lab)
    _, _, line = with_ufw_docker(lab)
    files = docker_host(lab, "iptables")
    with tempfile.TemporaryDirectory(prefix="fwgen-iptables-") as folder:
        for name, text in files.items():
            Path(folder, name).write_text(text)
        loader = str(Path(folder, "fwgen-iptables.sh"))
        assert refused(lab, "sh", loader, script="") == [UFW_DOCKER_REFUSED.format(line=line)]
    assert "FWGEN" not in lab.run(lab.server, "iptables-save")


def test_published_port_stays_restricted_after_ufw_reload(lab: Lab) -> None:
    docker_lab(lab)
    lab.apply("ufw", docker_host(lab, "ufw"))
    lab.run(lab.server, *lab.ufw_root(), "ufw", "reload")
    restricted(lab)
    forward_is_docker_first(lab)


def test_rolling_back_a_first_containers_apply_on_ufw_removes_fwgen_chains(
    lab: Lab, tmp_path: Path
) -> None:
    docker_lab(lab)
    (tmp_path / "old.yaml").write_text(OLD)
    host = Host(lab, "ufw", tmp_path / "state", tmp_path)
    done = host.run(*host.apply_args("old.yaml", "--yes"), ssh=TRUSTED_SSH)
    assert done.returncode == 0, done.stdout + done.stderr
    before = {family: lab.docker_chains(SAVE[family]) for family in FAMILIES}
    trusted = lab.clients["trusted"]
    sets = [f"--set=admins={trusted.ipv4}", f"--set=web_clients={trusted.ipv4}"]
    args = ["apply", "docker-host", "--target", "ufw", *sets, "--confirm", "3"]
    proc = host.start(*args)
    loaded = "published by docker, allowed by no inbound rule"  # fwgen's last rule
    assert all(loaded in lab.run(lab.server, SAVE[family]) for family in FAMILIES)
    out, _ = proc.communicate(timeout=120)  # no answer: rolled back
    assert proc.returncode == 1 and "rolled back" in out, out + host.log()
    for family in FAMILIES:
        saved = lab.run(lab.server, SAVE[family])
        assert loaded not in saved and "FWGEN" not in saved, family
    assert {family: lab.docker_chains(SAVE[family]) for family in FAMILIES} == before


@pytest.mark.parametrize("target", TARGETS)
def test_the_admins_own_port_forward_to_another_host_is_left_alone(lab: Lab, target: str) -> None:
    """A DNAT the admin wrote to a host that is not a container (a LAN server, a VM, a
    Kubernetes service) goes out on none of the engine's bridges: `containers:` judges
    what goes into the engine's networks, not the host's other forwarding."""
    docker_lab(lab)
    trusted, outside = lab.clients["trusted"], lab.clients["outside"]
    lab.listen_in(trusted.ns, ["tcp:9999"])
    for rule in (
        f"-t nat -A PREROUTING -p tcp --dport 2222 -j DNAT --to-destination {trusted.ipv4}:9999",
        f"-t nat -A POSTROUTING -d {trusted.ipv4} -p tcp --dport 9999 -j MASQUERADE",
        "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        f"-A FORWARD -d {trusted.ipv4} -p tcp --dport 9999 -m conntrack --ctstate DNAT -j ACCEPT",
    ):
        lab.run(lab.server, "iptables", *rule.split())
    forwarded = lab.probe_from(outside.ns, outside.server_ipv4, ["tcp:2222"])
    assert forwarded == {"tcp:2222": "open"}  # the lab forwards it before fwgen's load
    lab.apply(target, docker_host(lab, target))
    assert lab.probe_from(outside.ns, outside.server_ipv4, ["tcp:2222"]) == forwarded
    # and what goes into Docker's network still follows the profile
    assert lab.probe("outside", "ipv4", ["tcp:8080"]) == {"tcp:8080": "blocked"}
    assert lab.probe_from(outside.ns, CONTAINER_IPV4, ["tcp:80"]) == {"tcp:80": "blocked"}
