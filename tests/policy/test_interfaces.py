"""Interfaces and protocols in the Policy, and in what reads it: resolve, every target
(an empty interface group admits nothing anywhere), the guard, diff and check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.host.guard import from_keep, lockouts
from fwgen.policy.placeholders import placeholder_warnings
from fwgen.policy.resolve import resolve_profile
from fwgen.profile.portdb import catalogue
from fwgen.review.diff import diff_policies
from fwgen.targets import TARGETS
from fwgen.targets.render import render

runner = CliRunner()
MULTI = """\
description: multi
extends: base
interfaces:
  private: []
  vpn: [wg0, "tun+"]
inbound:
  - {service: postgresql, interface: private}
  - {service: ssh, interface: vpn}
  - {service: https}
  - {protocol: gre, name: tunnel, from: 10.9.0.1, interface: eth2}
"""


@pytest.fixture
def multi(write_profile: Callable[..., Path]) -> Path:
    return write_profile(MULTI, "multi.yaml")


def rules(path: Path, **sets: list[str]) -> dict[str, tuple[str, ...]]:
    policy = resolve_profile(str(path), sets)
    return {r.name: r.interfaces for r in policy.rules if r.direction == "in" and r.on}


def test_groups_and_names_resolve_to_sorted_interfaces(multi: Path) -> None:
    assert rules(multi) == {"postgresql": (), "ssh": ("tun*", "wg0"), "tunnel": ("eth2",)}
    assert rules(multi, private=["eth1", "bond0"], vpn=["wg1"]) == {
        "postgresql": ("bond0", "eth1"),
        "ssh": ("wg1",),
        "tunnel": ("eth2",),
    }


def test_an_empty_group_is_warned_and_admits_nothing_on_any_target(multi: Path) -> None:
    policy = resolve_profile(str(multi))
    postgresql = next(r for r in policy.rules if r.name == "postgresql")
    assert postgresql.families == () and postgresql.idle()
    assert any(
        "interface group 'private' (multi.yaml:4) is empty, so postgresql admits no one" in w
        for w in placeholder_warnings(policy)
    )
    for target in TARGETS:
        text = "\n".join(render(policy, target).values())
        assert "5432" not in text.replace("(profiles", ""), target  # not a port anywhere
        assert "matches nothing: interface group private is empty" in text, target


def test_set_gives_the_group_and_the_rule_opens_there_only(multi: Path) -> None:
    policy = resolve_profile(str(multi), {"private": ["eth1"]})
    nft = render(policy, "nftables")["fwgen.nft"]
    assert 'iifname "eth1" tcp dport 5432 counter accept' in nft
    assert (
        'iifname "tun*" tcp dport 22 counter accept' in nft and 'iifname "wg0" tcp dport 22' in nft
    )
    assert 'iifname "eth2" ip saddr @tunnel_from_v4 meta l4proto 47 counter accept' in nft
    v4 = render(policy, "iptables")["rules.v4"]
    assert "-A FWGEN-INPUT -i eth1 -p tcp -m tcp --dport 5432 " in v4
    assert "-A FWGEN-INPUT -i tun+ -p tcp -m tcp --dport 22 " in v4
    assert "-A FWGEN-INPUT -i eth2 -s 10.9.0.1 -p 47 " in v4
    ufw = render(policy, "ufw")["fwgen-ufw.sh"]
    assert "ufw allow in on eth1 proto tcp from any to any port 5432 " in ufw
    assert "ufw allow in on tun+ proto tcp from any to any port 22 " in ufw
    assert "-A ufw-before-input -i eth2 -s 10.9.0.1 -p 47 " in ufw
    ps1 = render(policy, "windows")["fwgen.ps1"]
    assert "-Protocol TCP -LocalPort '22' -InterfaceAlias 'tun*','wg0' " in ps1
    assert "-Protocol 47 -RemoteAddress '10.9.0.1' -InterfaceAlias 'eth2' " in ps1


def test_ipsec_opens_ike_nat_traversal_and_esp() -> None:
    ipsec = catalogue().require("ipsec")
    assert [str(p) for p in ipsec.ports] == ["500/udp", "4500/udp", "esp"]
    policy = resolve_profile("vpn-gateway")
    opened = {(r.proto, tuple(map(str, r.ports))) for r in policy.rules if r.service == "ipsec"}
    assert opened == {("udp", ("500", "4500")), ("esp", ())}
    assert "gre" in [p.proto for p in catalogue().require("pptp").ports]


def test_sctp_ports_on_linux_targets(write_profile: Callable[..., Path]) -> None:
    path = write_profile("description: s\ninbound:\n  - {port: 3868/sctp, name: diameter}\n")
    policy = resolve_profile(str(path))
    assert "sctp dport 3868 counter accept" in render(policy, "nftables")["fwgen.nft"]
    assert "-p sctp -m sctp --dport 3868 " in render(policy, "iptables")["rules.v6"]
    assert (
        "-A ufw6-before-input -p sctp -m sctp --dport 3868 "
        in render(policy, "ufw")["fwgen-ufw.sh"]
    )


def test_the_guard_never_counts_a_rule_on_an_interface(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile(
        "description: g\nextends: base\ninbound:\n  - {service: ssh, interface: eth0}\n"
    )
    found = lockouts(resolve_profile(str(path)), [from_keep("192.0.2.7")])
    assert len(found) == 1
    assert "rule 'ssh'" in found[0] and "admits it only on eth0" in found[0]
    everywhere = write_profile("description: g\nextends: base\ninbound:\n  - {service: ssh}\n")
    assert lockouts(resolve_profile(str(everywhere)), [from_keep("192.0.2.7")]) == []


def test_diff_says_where_a_rule_is_open(multi: Path, write_profile: Callable[..., Path]) -> None:
    old = resolve_profile(str(multi), {"private": ["eth1"]})
    narrowed = diff_policies(old, resolve_profile(str(multi), {"private": []}), catalogue())
    [change] = narrowed["changed"]
    assert change["change"] == "narrowed" and not change["widens"]
    assert change["after"]["interfaces"] == []
    wider = diff_policies(old, resolve_profile(str(multi), {"private": ["eth*"]}), catalogue())
    assert wider["changed"][0]["change"] == "widened"
    anywhere = write_profile(
        MULTI.replace("postgresql, interface: private", "postgresql"), "m2.yaml"
    )
    result = runner.invoke(app, ["diff", str(multi), str(anywhere), "--set", "private=eth1"])
    assert "widened postgresql 5432/tcp from any on interface eth1 [ipv4+ipv6]" in result.stdout
    assert "-> postgresql 5432/tcp from any [ipv4+ipv6]" in result.stdout


def test_check_finds_empty_groups_and_lone_interfaces(multi: Path) -> None:
    result = runner.invoke(app, ["check", str(multi)])
    assert "multi.yaml:7: warning FW019: postgresql: interface group 'private' is empty" in (
        result.stdout
    )
    assert "multi.yaml:10: warning FW020: tunnel is only on eth2, an interface the profile " in (
        result.stdout
    )
    assert "FW020: ssh" not in result.stdout  # on a group: named twice
    named = runner.invoke(app, ["check", str(multi), "--set", "private=eth2"])
    assert "FW019" not in named.stdout and "FW020" not in named.stdout


def test_explain_shows_the_group_and_its_interfaces(multi: Path) -> None:
    result = runner.invoke(app, ["explain", str(multi), "--set", "private=eth1"])
    lines = result.stdout.splitlines()
    assert "ON" in lines[lines.index(next(x for x in lines if x.startswith("DIR")))].split()
    assert any(" postgresql " in x and " private: eth1 " in x for x in lines)
    assert any(" ssh " in x and " vpn: tun*, wg0 " in x for x in lines)


def test_a_rule_on_an_interface_shadows_only_rules_on_its_interfaces(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile(
        "description: s\nextends: base\nnetworks:\n  admins: [10.0.0.0/8]\ninbound:\n"
        "  - {service: ssh, from: admins}\n"
        "  - {service: ssh, interface: eth1}\n"
        "  - {service: ssh, from: admins, interface: eth1.20}\n"
        "  - {service: https, interface: wg0}\n"
        "  - {service: https, interface: 'wg*'}\n"
    )
    shadowed = [
        line.split(": warning FW007")[0].rsplit(":", 1)[1]
        for line in runner.invoke(app, ["check", str(path)]).stdout.splitlines()
        if "FW007" in line
    ]
    # ssh from admins on every interface (line 6) is not inside ssh from any on eth1;
    # ssh from admins on eth1.20 (line 8) is inside line 6 (not inside eth1's, a glob-free
    # name); https on wg0 (line 9) is inside https on wg*
    assert shadowed == ["8", "9"]


def test_a_target_that_does_not_declare_them_refuses_interfaces_and_protocols(
    multi: Path,
) -> None:
    """A target added without saying it can express interfaces or ESP, AH, GRE and SCTP
    refuses a rule that uses them: left out, the match would open more than written."""
    from fwgen.errors import RenderError
    from fwgen.targets import Target, refuse_what_the_target_lacks

    plain = Target(name="plain", title="Plain (text)", files=("x",), capabilities={})
    with pytest.raises(RenderError, match=r"plain: ssh \(multi.yaml:8\) is limited to interfaces"):
        refuse_what_the_target_lacks(resolve_profile(str(multi)), plain)
    with_interfaces = Target(
        name="plain", title="Plain (text)", files=("x",), capabilities={}, interfaces=True
    )
    with pytest.raises(RenderError, match=r"tunnel \(multi.yaml:10\) opens GRE, which Plain"):
        refuse_what_the_target_lacks(resolve_profile(str(multi)), with_interfaces)
    for name in TARGETS:  # every shipped target says what it can express
        assert TARGETS[name].interfaces
        assert {"esp", "ah", "gre"} <= set(TARGETS[name].protocols)
