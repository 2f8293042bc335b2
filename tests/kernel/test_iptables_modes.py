"""A host moved between iptables' two modes: a whole-table load (iptables-restore) and
the coexist mode (fwgen-iptables.sh, --noflush beside Docker's and fail2ban's chains).
Each move leaves the new profile's rules and the other programs' rules, nothing of the
old profile, and a second load changes nothing."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render
from tests.kernel.lab import Lab
from tests.kernel.test_containers import (
    FAMILIES,
    SAVE,
    docker_host,
    docker_lab,
    forward_is_docker_first,
    restricted,
)

pytestmark = pytest.mark.kernel
COUNTERS = re.compile(r" \[\d+:\d+\]$")

COMMAND = {"ipv4": "iptables", "ipv6": "ip6tables"}
# The comments of the rules every profile extending base has (loopback, replies, invalid)
BASE_COMMENTS = ("loopback", "replies and related traffic", "invalid packets")

# The old profile: 8081 open to everyone, outbound default-deny, drops logged: a
# whole-table load of it makes FWGEN-INPUT, FWGEN-OUTPUT and FWGEN-FORWARD.
OLD = """\
description: whole-table host
extends: base
inbound:
  - {port: 8081/tcp, name: old-api}
outbound:
  - {port: 9999/tcp, name: to-clients}
options: {log_drops: true}
"""
# The same host later, sharing the table with fail2ban (coexist: true), no containers
SHARED = """\
description: shared table
extends: base
inbound:
  - {port: 8082/tcp, name: new-api}
outbound:
  - {port: 9999/tcp, name: to-clients}
options: {coexist: true, log_drops: true}
"""


def profile(tmp_path: Path, name: str, text: str, lab: Lab) -> dict[str, str]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return render(resolve_profile(str(path)), "iptables")


def saved(lab: Lab, family: str) -> list[str]:
    """The filter table, as iptables-save prints it, its dated comment lines and the
    built-in chains' counters left out."""
    text = lab.run(lab.server, SAVE[family], "-t", "filter")
    return [COUNTERS.sub("", line) for line in text.splitlines() if not line.startswith("#")]


def chains(lab: Lab, family: str) -> set[str]:
    """The user-defined chains of fwgen's that exist."""
    return {line[1:].split()[0] for line in saved(lab, family) if line.startswith(":FWGEN-")}


def no_stale_rule(lab: Lab) -> None:
    """No rule of fwgen's outside its own chains: the built-in chains hold none of
    the comments of its rules."""
    for family in FAMILIES:
        for line in saved(lab, family):
            if line.startswith(("-A INPUT ", "-A OUTPUT ", "-A FORWARD ")):
                assert not any(c in line for c in BASE_COMMENTS), (family, line)
                assert "fwgen" not in line or line.endswith(" -j FWGEN-INPUT"), (family, line)


def loader(lab: Lab, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """fwgen-iptables.sh run in the server namespace, from a folder holding *files*."""
    with tempfile.TemporaryDirectory(prefix="fwgen-iptables-") as folder:
        for name, text in files.items():
            Path(folder, name).write_text(text)
        return subprocess.run(
            ["ip", "netns", "exec", lab.server, "sh", os.path.join(folder, "fwgen-iptables.sh")],
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
        )


def test_whole_table_to_containers_keeps_nothing_of_the_old_profile(
    lab: Lab, tmp_path: Path
) -> None:
    """A whole-table host that later runs Docker and fail2ban, then gains `containers:`:
    the loader leaves the new profile's rules, Docker's and fail2ban's; the old port
    is closed, the old outbound default-deny and drop logs are gone."""
    lab.listen_in(lab.server, ["tcp:8081"])
    lab.listen_in(lab.clients["trusted"].ns, ["tcp:9999", "tcp:9998"])
    lab.apply("iptables", profile(tmp_path, "old", OLD, lab))
    for family in FAMILIES:
        assert lab.probe("outside", family, ["tcp:8081"]) == {"tcp:8081": "open"}, family
        assert chains(lab, family) == {"FWGEN-INPUT", "FWGEN-OUTPUT", "FWGEN-FORWARD"}
    trusted = lab.clients["trusted"]
    assert lab.probe_from(lab.server, trusted.ipv4, ["tcp:9998"]) == {"tcp:9998": "blocked"}
    # Docker starts, fail2ban puts its jump first in INPUT
    docker_lab(lab)
    docker = {family: lab.docker_chains(SAVE[family]) for family in FAMILIES}
    lab.run(lab.server, "iptables", "-N", "f2b-sshd")
    lab.run(lab.server, "iptables", "-A", "f2b-sshd", "-s", "192.0.2.66", "-j", "REJECT")
    lab.run(lab.server, "iptables", "-I", "INPUT", "1", "-p", "tcp", "-j", "f2b-sshd")
    fail2ban = [line for line in saved(lab, "ipv4") if "f2b" in line]
    files = docker_host(lab, "iptables")
    result = loader(lab, files)
    assert result.returncode == 0, result.stderr
    restricted(lab)
    for family in FAMILIES:
        assert lab.probe("outside", family, ["tcp:8081"]) == {"tcp:8081": "blocked"}, family
        assert lab.probe("trusted", family, ["tcp:8081"]) == {"tcp:8081": "blocked"}, family
    # outbound is accept again: the old FWGEN-OUTPUT no longer drops
    assert lab.probe_from(lab.server, trusted.ipv4, ["tcp:9998"]) == {"tcp:9998": "open"}
    no_stale_rule(lab)
    for family in FAMILIES:
        assert chains(lab, family) == {"FWGEN-INPUT", "FWGEN-CONTAINERS", "FWGEN-ROUTED"}
        assert lab.chain(SAVE[family], "OUTPUT") == [], family
        assert "-A FORWARD -j FWGEN-FORWARD" not in saved(lab, family)
        ours = "-A DOCKER-USER -j FWGEN-CONTAINERS"
        assert [line for line in lab.docker_chains(SAVE[family]) if line != ours] == docker[family]
    assert lab.chain("iptables-save", "INPUT") == [
        "-A INPUT -p tcp -j f2b-sshd",
        "-A INPUT -j FWGEN-INPUT",
    ]
    assert lab.chain("ip6tables-save", "INPUT") == ["-A INPUT -j FWGEN-INPUT"]
    assert [line for line in saved(lab, "ipv4") if "f2b" in line] == fail2ban
    forward_is_docker_first(lab)
    # a second load changes nothing
    before = {family: saved(lab, family) for family in FAMILIES}
    assert loader(lab, files).returncode == 0
    assert {family: saved(lab, family) for family in FAMILIES} == before


def test_coexist_to_whole_table_leaves_only_the_new_rules(lab: Lab, tmp_path: Path) -> None:
    """Back from the coexist mode (containers: and coexist: gone): the whole-table load
    replaces fwgen's chains and jumps, the old profile's rules with them."""
    lab.listen_in(lab.server, ["tcp:8081", "tcp:8082"])
    shared = profile(tmp_path, "shared", SHARED, lab)
    assert loader(lab, shared).returncode == 0
    for family in FAMILIES:
        assert lab.probe("outside", family, ["tcp:8081", "tcp:8082"]) == {
            "tcp:8081": "blocked",
            "tcp:8082": "open",
        }
        assert chains(lab, family) == {"FWGEN-INPUT", "FWGEN-OUTPUT"}
    old = profile(tmp_path, "old", OLD, lab)
    lab.apply("iptables", old)
    for family in FAMILIES:
        assert lab.probe("outside", family, ["tcp:8081", "tcp:8082"]) == {
            "tcp:8081": "open",
            "tcp:8082": "blocked",
        }
        assert lab.chain(SAVE[family], "INPUT") == ["-A INPUT -j FWGEN-INPUT"]
        assert lab.chain(SAVE[family], "OUTPUT") == ["-A OUTPUT -j FWGEN-OUTPUT"]
        assert lab.chain(SAVE[family], "FORWARD") == ["-A FORWARD -j FWGEN-FORWARD"]
    no_stale_rule(lab)
    before = {family: saved(lab, family) for family in FAMILIES}
    lab.apply("iptables", old)
    assert {family: saved(lab, family) for family in FAMILIES} == before
    # and into the coexist mode again: FWGEN-FORWARD and its jump go, nothing else moves
    assert loader(lab, shared).returncode == 0
    for family in FAMILIES:
        assert chains(lab, family) == {"FWGEN-INPUT", "FWGEN-OUTPUT"}
        assert lab.chain(SAVE[family], "FORWARD") == []
        assert lab.probe("outside", family, ["tcp:8081", "tcp:8082"]) == {
            "tcp:8081": "blocked",
            "tcp:8082": "open",
        }


def test_coexist_profile_losing_outbound_rules_and_containers(lab: Lab, tmp_path: Path) -> None:
    """Within the coexist mode: a profile that drops its outbound rules and its
    `containers:` leaves no FWGEN-OUTPUT and no container chains (nor their jumps from
    OUTPUT and DOCKER-USER) behind; Docker's chains stay."""
    docker_lab(lab)
    docker = {family: lab.docker_chains(SAVE[family]) for family in FAMILIES}
    with_all = profile(tmp_path, "all", SHARED.replace("coexist: true", "containers: docker"), lab)
    assert loader(lab, with_all).returncode == 0
    for family in FAMILIES:
        assert chains(lab, family) == {
            "FWGEN-INPUT",
            "FWGEN-OUTPUT",
            "FWGEN-CONTAINERS",
            "FWGEN-ROUTED",
        }
    fewer = SHARED.replace("outbound:\n  - {port: 9999/tcp, name: to-clients}\n", "")
    assert loader(lab, profile(tmp_path, "fewer", fewer, lab)).returncode == 0
    for family in FAMILIES:
        assert chains(lab, family) == {"FWGEN-INPUT"}, family
        assert lab.chain(SAVE[family], "OUTPUT") == [], family
        assert "FWGEN" not in " ".join(lab.chain(SAVE[family], "DOCKER-USER")), family
        assert lab.docker_chains(SAVE[family]) == docker[family], family


def test_loader_refuses_files_of_another_render(lab: Lab, tmp_path: Path) -> None:
    """A whole-table render into the loader's folder leaves the old loader behind (a
    systemd unit still runs it): it refuses the new files, changing nothing, rather than
    load a whole-table file with --noflush."""
    shared = profile(tmp_path, "shared", SHARED, lab)
    assert loader(lab, shared).returncode == 0
    before = {family: saved(lab, family) for family in FAMILIES}
    old = profile(tmp_path, "old", OLD, lab)
    mixed = {**old, "fwgen-iptables.sh": shared["fwgen-iptables.sh"]}
    result = loader(lab, mixed)
    assert result.returncode == 1
    assert "rules.v4: not rendered with this script" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert {family: saved(lab, family) for family in FAMILIES} == before


def test_loader_refuses_rules_of_an_earlier_whole_table_load(lab: Lab, tmp_path: Path) -> None:
    """Whole-table files of an earlier fwgen put the rules straight into INPUT: the loader
    cannot tell them from others' for sure, so it names them and changes nothing."""
    lab.listen_in(lab.server, ["tcp:8081"])
    old = profile(tmp_path, "old", OLD, lab)
    legacy = {}
    for name in ("rules.v4", "rules.v6"):  # the same rules, as earlier versions wrote them
        lines = [
            line.replace("FWGEN-INPUT", "INPUT")
            .replace("FWGEN-OUTPUT", "OUTPUT")
            .replace("FWGEN-FORWARD", "FORWARD")
            for line in old[name].splitlines()
            if not line.startswith((":FWGEN-", "-A INPUT -j", "-A OUTPUT -j", "-A FORWARD -j"))
        ]
        legacy[name] = "\n".join(lines) + "\n"
    lab.apply("iptables", {**old, **legacy})
    assert lab.probe("outside", "ipv4", ["tcp:8081"]) == {"tcp:8081": "open"}
    before = {family: saved(lab, family) for family in FAMILIES}
    shared = profile(tmp_path, "shared", SHARED, lab)
    result = loader(lab, shared)
    assert result.returncode == 1
    assert "iptables: the built-in chains hold the rules of a whole-table load" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert {family: saved(lab, family) for family in FAMILIES} == before
    # deleted by hand, as the message says: the loader goes ahead
    for family in FAMILIES:
        for chain in ("INPUT", "OUTPUT", "FORWARD"):
            lab.run(lab.server, COMMAND[family], "-F", chain)
    assert loader(lab, shared).returncode == 0
    assert lab.probe("outside", "ipv4", ["tcp:8081"]) == {"tcp:8081": "blocked"}
    no_stale_rule(lab)
