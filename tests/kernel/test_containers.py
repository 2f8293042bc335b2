"""Container hosts: Docker's real rules in the server namespace, a container behind a
bridge, and fwgen's rules on top. The inbound rules govern the published port."""

from __future__ import annotations

from pathlib import Path

import pytest

from fwgen.render import render
from fwgen.resolve import resolve_profile
from tests.kernel.lab import CONTAINER_IPV4, Lab

pytestmark = pytest.mark.kernel

TARGETS = ["nftables", "iptables", "ufw"]


def docker_host(lab: Lab, target: str) -> dict[str, str]:
    trusted = lab.clients["trusted"]
    policy = resolve_profile(
        "docker-host", {"admins": [trusted.ipv4, trusted.ipv6], "web_clients": [trusted.ipv4]}
    )
    return render(policy, target)


@pytest.mark.parametrize("target", TARGETS)
def test_published_port_follows_the_inbound_rules(lab: Lab, target: str) -> None:
    lab.add_container()
    lab.docker_rules()
    docker = lab.docker_chains()
    lab.listen_in(lab.container, ["tcp:80", "tcp:81"])
    lab.listen_in(lab.clients["trusted"].ns, ["tcp:9999"])
    # fail2ban's chain, jumped to first from INPUT: it must survive too
    lab.run(lab.server, "iptables", "-N", "f2b-sshd")
    lab.run(lab.server, "iptables", "-A", "f2b-sshd", "-s", "192.0.2.66", "-j", "REJECT")
    lab.run(lab.server, "iptables", "-I", "INPUT", "1", "-p", "tcp", "-j", "f2b-sshd")
    fail2ban = [line for line in lab.run(lab.server, "iptables-save").splitlines() if "f2b" in line]
    files = docker_host(lab, target)
    lab.apply(target, files)
    lab.apply(target, files)
    # Docker's chains, twice reloaded over; DOCKER-USER is the users' (iptables and ufw fill it)
    ours = () if target == "nftables" else ("-A DOCKER-USER ",)
    assert [line for line in lab.docker_chains() if not line.startswith(ours)] == [
        line for line in docker if not line.startswith(ours)
    ]
    assert lab.docker_chains().count("-A FORWARD -j DOCKER-USER") == 1
    assert [
        line for line in lab.run(lab.server, "iptables-save").splitlines() if "f2b" in line
    ] == (fail2ban)
    if target == "iptables":  # one jump to fwgen's chain, however often it is loaded
        saved = lab.run(lab.server, "iptables-save").splitlines()
        assert saved.count("-A INPUT -j FWGEN-INPUT") == 1
    trusted, outside = lab.clients["trusted"], lab.clients["outside"]
    # the published port 8080 (the container's 80): from the allowed source only
    assert lab.probe("trusted", "ipv4", ["tcp:8080", "tcp:81"]) == {
        "tcp:8080": "open",
        "tcp:81": "blocked",
    }
    assert lab.probe("outside", "ipv4", ["tcp:8080"]) == {"tcp:8080": "blocked"}
    # the container's other port, straight to its address: unreachable from outside
    for client in (trusted, outside):
        assert lab.probe_from(client.ns, CONTAINER_IPV4, ["tcp:81"]) == {"tcp:81": "blocked"}
    # the container reaches the outside (masqueraded by Docker's rules)
    assert lab.probe_from(lab.container, trusted.ipv4, ["tcp:9999"]) == {"tcp:9999": "open"}


@pytest.mark.parametrize("target", TARGETS)
def test_without_containers_docker_publishes_to_everyone(lab: Lab, target: str) -> None:
    """The problem `containers:` solves: input rules never see a DNATed connection."""
    lab.add_container()
    lab.docker_rules()
    lab.listen_in(lab.container, ["tcp:80"])
    trusted = lab.clients["trusted"]
    policy = resolve_profile("docker-host", {"admins": [trusted.ipv4], "web_clients": []})
    without = policy.model_copy(update={"containers": None, "coexist": False})
    lab.apply(target, render(without, target))
    assert lab.probe("outside", "ipv4", ["tcp:8080"]) == {"tcp:8080": "open"}


@pytest.mark.parametrize("target", TARGETS)
def test_a_rule_for_one_host_address_publishes_on_that_address_only(
    lab: Lab, target: str, tmp_path: Path
) -> None:
    lab.add_container()
    lab.docker_rules()
    lab.listen_in(lab.container, ["tcp:80"])
    trusted = lab.clients["trusted"]
    other = lab.clients["outside"].server_ipv4  # the server's address on the other link
    lab.run(trusted.ns, "ip", "route", "add", f"{other}/32", "via", trusted.server_ipv4)
    profile = tmp_path / "one-address.yaml"
    profile.write_text(
        "description: one address\nextends: base\noptions: {containers: docker}\n"
        f"inbound: [{{port: 8080/tcp, name: web, host: {trusted.server_ipv4}}}]\n"
    )
    lab.apply(target, render(resolve_profile(str(profile)), target))
    # the published port, through the trusted link's address of the server only
    assert lab.probe("trusted", "ipv4", ["tcp:8080"]) == {"tcp:8080": "open"}
    assert lab.probe_from(trusted.ns, other, ["tcp:8080"]) == {"tcp:8080": "blocked"}
