"""Container hosts: `options.containers`, `host:`, the coexist mode and FW015. The
kernel tests in tests/kernel/test_containers.py send the packets; these pin the text."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from fwgen.errors import FwgenError
from fwgen.policy.resolve import resolve_profile
from fwgen.profile.portdb import catalogue
from fwgen.review.check import check_policy
from fwgen.targets import RenderOptions
from fwgen.targets.render import render, render_with_warnings
from tests.conftest import iptables_load_test, nft_check

WEB = """\
description: containers
extends: base
inbound:
  - port: 8080/tcp
    name: web
    from: [192.0.2.0/24]
    host: [198.51.100.10, "2001:db8::10"]
options: OPTIONS
"""


def test_published_rules_match_the_original_destination(
    write_profile: Callable[..., Path],
) -> None:
    policy = resolve_profile(str(write_profile(WEB.replace("OPTIONS", "{containers: podman}"))))
    assert (policy.containers, policy.coexist, policy.defaults.forward) == (
        "podman",
        True,
        "ignore",
    )
    nft = render(policy, "nftables")["fwgen.nft"]
    assert nft_check(nft).returncode == 0
    chain, routed = nft.split("chain containers {")[1].split("chain routed {")
    assert "type filter hook forward priority filter - 10; policy accept;" in chain
    assert 'iifname "podman*" accept' in chain and 'iifname "cni-podman*" accept' in chain
    assert (
        'oifname != "podman*" oifname != "cni-podman*" accept comment "not to a bridge of the '
        'engine: not for fwgen"\n\t\t# web' in chain
    )
    assert (
        "ct status dnat ip saddr @web_from_v4 ct original ip daddr 198.51.100.10 "
        "meta l4proto tcp ct original proto-dst 8080 counter accept" in chain
    )
    assert chain.rstrip().endswith(
        'ct status dnat drop comment "published by podman, allowed by no inbound rule"\n'
        '\t\toifname "podman*" goto routed comment "routed to a container, not DNATed"\n'
        '\t\toifname "cni-podman*" goto routed comment "routed to a container, not DNATed"\n\t}'
    )
    # routed straight to a container: its own address and port, `host:` too
    assert "type filter" not in routed
    assert "ip saddr @web_from_v4 ip daddr 198.51.100.10 tcp dport 8080 counter accept" in routed
    assert routed.rstrip().endswith(
        'drop comment "routed to a container of podman, allowed by no inbound rule"\n\t}\n}'
    )
    assert "ip daddr 198.51.100.10 tcp dport 8080 counter accept" in nft.split("chain input")[1]
    files = render(policy, "iptables")
    assert list(files) == ["ipsets", "rules.v4", "rules.v6", "fwgen-iptables.sh"]
    v4 = files["rules.v4"]
    assert iptables_load_test(files).returncode == 0
    assert (
        "-A FWGEN-ROUTED -s 192.0.2.0/24 -p tcp -m conntrack --ctstate DNAT "
        "--ctorigdst 198.51.100.10 --ctorigdstport 8080" in v4
    )
    # only what goes out on a bridge of the engine is judged (the admin's own DNAT to a
    # LAN is not); there, DNATed connections are dropped after the published rules
    assert (
        '-A FWGEN-CONTAINERS -o podman+ -m comment --comment "to a bridge of the engine" '
        "-g FWGEN-ROUTED\n" in v4
    )
    assert (
        '-A FWGEN-CONTAINERS -m comment --comment "not to a bridge of the engine: not for '
        'fwgen" -j RETURN\n# web' in v4
    )
    assert (
        "-A FWGEN-ROUTED -s 192.0.2.0/24 -d 198.51.100.10 -p tcp -m tcp --dport 8080 "
        '-m comment --comment "web" -j RETURN' in v4
    )
    assert "-A FWGEN-CONTAINERS -i cni-podman+ " in v4 and "-o podman+ " in v4
    assert ":FORWARD" not in v4 and ":INPUT DROP [0:0]" in v4
    # fwgen declares (so empties at each load) its own chains only, and never accepts
    # in the container chains: what comes after the jump still applies
    assert re.findall(r"^:(\S+) -", v4, re.M) == ["FWGEN-INPUT", "FWGEN-CONTAINERS", "FWGEN-ROUTED"]
    container_rules = re.findall(r"^-A FWGEN-(?:CONTAINERS|ROUTED) .* -[jg] (\S+)$", v4, re.M)
    assert set(container_rules) == {"RETURN", "DROP", "FWGEN-ROUTED"}
    script = files["fwgen-iptables.sh"]
    assert "fwgen_first iptables FORWARD FWGEN-CONTAINERS\n" in script
    assert "DOCKER-USER -N" not in script and "-N DOCKER-USER" not in script  # podman
    assert "iptables -C INPUT -j FWGEN-INPUT 2>/dev/null || iptables -A INPUT -j" in script


def test_docker_loader_makes_docker_user_without_emptying_it(
    write_profile: Callable[..., Path],
) -> None:
    policy = resolve_profile(str(write_profile(WEB.replace("OPTIONS", "{containers: docker}"))))
    files = render(policy, "iptables")
    assert "DOCKER-USER" not in files["rules.v4"] + files["rules.v6"]
    script = files["fwgen-iptables.sh"]
    for cmd in ("iptables", "ip6tables"):
        assert (
            f"{cmd} -n -L DOCKER-USER >/dev/null 2>&1 || {cmd} -N DOCKER-USER\n"
            f"{cmd}-restore --noflush < rules.v{cmd.count('6') * 2 + 4}\n"
        ) in script
        assert (
            f"fwgen_first {cmd} FORWARD DOCKER-USER\nfwgen_first {cmd} DOCKER-USER FWGEN-CONTAINERS\n"
        ) in script
    assert script.index("fwgen_declared /etc/ufw/before.rules") < script.index(
        "-restore --noflush <"
    )
    ufw = render(policy, "ufw")["fwgen-ufw.sh"]
    assert ":DOCKER-USER" not in ufw and "-A DOCKER-USER" not in ufw
    assert ":FWGEN-CONTAINERS - [0:0]\n:FWGEN-ROUTED - [0:0]\n" in ufw
    assert 'if [ "${1-}" = --jumps ]; then' in ufw
    assert "ufw --force enable\nfor fwgen_chain in INPUT" in ufw  # no policy left wider
    # the jumps last, after the policies are checked; after them only the rules left
    assert "done\n\n# 4. The jumps to fwgen's container chain, first.\nfwgen_jumps\n" in ufw
    after = ufw.split("\nfwgen_jumps\n")[-1]
    assert after.startswith('if [ -n "$fwgen_kept" ]; then\n') and after.endswith("exit 1\nfi\n")


def test_coexist_without_containers_keeps_forward_and_owns_no_forward_chain(
    write_profile: Callable[..., Path],
) -> None:
    """A fail2ban or libvirt host: fwgen's chains beside theirs; FORWARD keeps its policy."""
    options = "{coexist: true, log_drops: true}"
    policy = resolve_profile(str(write_profile(WEB.replace("OPTIONS", options))))
    files, warnings = render_with_warnings(policy, "iptables")
    assert warnings == []
    v4 = files["rules.v4"]
    assert ":FORWARD DROP [0:0]" in v4 and ":FWGEN-INPUT - [0:0]" in v4
    assert (
        '-A FWGEN-INPUT -m limit --limit 5/second --limit-burst 10 -m comment --comment "log' in v4
    )
    # never a rule in a built-in chain: --noflush would add it again at each load
    assert "DOCKER-USER" not in v4 and not re.search(r"^-A (INPUT|FORWARD|OUTPUT) ", v4, re.M)
    assert iptables_load_test(files).returncode == 0
    assert "chain published" not in render(policy, "nftables")["fwgen.nft"]


def test_ufw_refuses_podman(write_profile: Callable[..., Path]) -> None:
    policy = resolve_profile(str(write_profile(WEB.replace("OPTIONS", "{containers: podman}"))))
    with pytest.raises(FwgenError, match="ufw: containers: podman cannot be expressed"):
        render(policy, "ufw")


def test_an_extended_forward_yields_to_containers(write_profile: Callable[..., Path]) -> None:
    """base says forward: drop; a profile that extends it and names an engine wins."""
    policy = resolve_profile("docker-host")
    assert policy.defaults.forward == "ignore"
    assert "chain forward" not in render(policy, "nftables")["fwgen.nft"]


def test_host_conflicts_with_a_service_of_fixed_destinations(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile("description: x\ninbound: [{service: mdns, host: 192.0.2.1}]\n")
    with pytest.raises(FwgenError, match="leave out `host`"):
        resolve_profile(str(path))


def test_check_warns_forward_ignore_without_containers(
    write_profile: Callable[..., Path],
) -> None:
    ignored = resolve_profile(str(write_profile(WEB.replace("OPTIONS", "{forward: ignore}"))))
    (finding,) = [f for f in check_policy(ignored, catalogue()) if f.code == "FW015"]
    assert "containers: docker" in finding.message and finding.level == "warning"
    for options in ("{containers: docker}", "{forward: drop}"):
        policy = resolve_profile(str(write_profile(WEB.replace("OPTIONS", options))))
        assert "FW015" not in [f.code for f in check_policy(policy, catalogue())]


@pytest.mark.parametrize("target", ["nftables", "iptables"])
def test_flush_ruleset_would_remove_the_engine_rules(target: str) -> None:
    with pytest.raises(FwgenError, match="--flush-ruleset would remove docker's own rules"):
        render(resolve_profile("docker-host"), target, RenderOptions(flush_ruleset=True))
