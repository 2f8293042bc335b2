"""Deny and reject rules, blocklists, refusals and connection caps as each target writes
them (their meaning is proved in tests/kernel/test_denies.py), and as check and diff
report them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fwgen.errors import FwgenError
from fwgen.policy.resolve import resolve_profile
from fwgen.profile.portdb import catalogue
from fwgen.review.check import check_policy
from fwgen.review.diff import as_text, diff_policies, widens
from fwgen.targets import RenderOptions
from fwgen.targets.render import render, render_with_warnings
from tests.roundtrip import canonical, expected, parse_windows
from tests.targets.pwsh import Firewall, read_script, run

DENIES = "tests/data/good/denies.yaml"


def test_nftables_denies_come_before_every_allow_and_after_the_shortcuts() -> None:
    text = render(resolve_profile(DENIES), "nftables")["fwgen.nft"]
    chain = text[text.index("chain input") : text.index("chain output")]
    lines = [line.strip() for line in chain.splitlines() if line.strip() not in ("", "}")]
    invalid = lines.index('ct state invalid drop comment "invalid packets"')
    deny = lines.index('ip saddr @abuse_v4 drop comment "deny"')
    reject = next(i for i, line in enumerate(lines) if "reject with tcp reset" in line)
    first_accept = next(
        i
        for i, line in enumerate(lines[invalid + 1 :], invalid + 1)
        if line.endswith('"') and " accept comment" in line
    )
    assert invalid < deny < reject < first_accept
    assert (
        'ip saddr @ssh_from_v4 tcp dport 22 meta pkttype host limit name "refusals" reject with tcp reset'
        in chain
    )
    assert (
        "ct state new add @cap_https_v4 { ip saddr ct count over 50 } reject with tcp reset"
        in chain
    )
    assert "add @cap_https_v6 { ip6 saddr and ffff:ffff:ffff:ffff:: ct count over 50 }" in chain
    # the default rejects only the LAN, within one budget, after every rule
    assert lines[-3:] == [
        'ip6 saddr @lan_v6 meta l4proto tcp meta pkttype host limit name "refusals" reject with tcp reset comment "refused: no rule admits it (options.refuse: reject)"',
        'ip6 saddr @lan_v6 meta l4proto udp meta pkttype host limit name "refusals" reject with icmpx port-unreachable comment "refused: no rule admits it (options.refuse: reject)"',
        'ip6 saddr @lan_v6 meta pkttype host limit name "refusals" reject with icmpx admin-prohibited comment "refused: no rule admits it (options.refuse: reject)"',
    ]
    assert "ip daddr @deny_to_v4 drop" in text[text.index("chain output") :]


def test_iptables_denies_caps_and_rejects() -> None:
    files = render(resolve_profile(DENIES), "iptables")
    v4 = files["rules.v4"]
    assert (
        '-A FWGEN-INPUT -m set --match-set fwgen-abuse-v4 src -m comment --comment "deny" -j DROP'
        in v4
    )
    assert re.search(
        r"--dport 443 -m conntrack --ctstate NEW -m connlimit --connlimit-above 50 "
        r'--connlimit-mask 32 --connlimit-saddr -m comment --comment "https[^"]*" '
        r"-j REJECT --reject-with tcp-reset\n-A FWGEN-INPUT -p tcp -m tcp --dport 443 ",
        v4,
    )
    assert "--connlimit-mask 64" in files["rules.v6"]
    assert "-j REJECT --reject-with icmp6-adm-prohibited" in files["rules.v6"]
    # a blocklist is an ipset whatever its size, so --sets-only can swap it
    assert "create fwgen-abuse-v4 hash:net" in files["ipsets"]
    order = [line for line in v4.splitlines() if line.startswith("-A FWGEN-INPUT")]
    assert order.index(next(x for x in order if "fwgen-abuse-v4" in x)) < order.index(
        next(x for x in order if "--dport 443" in x)
    )


def test_sets_only_writes_the_blocklists_alone(tmp_path: Path) -> None:
    policy = resolve_profile(DENIES)
    # the full ruleset declares a blocklist's empty family too, and matches it
    full = render(policy, "nftables")["fwgen.nft"]
    assert "set deny_to_v6 {\n\t\ttype ipv6_addr\n\t\tflags interval\n\t\tauto-merge\n\t}" in full
    assert "ip6 daddr @deny_to_v6 drop" in full
    nft = render(policy, "nftables", RenderOptions(sets_only=True))
    body = [line for line in nft["fwgen-sets.nft"].splitlines() if not line.startswith("#")]
    # abuse and deny_to are used by denies only; lan and ssh's sources by rules that admit
    assert body == [
        "flush set inet fwgen abuse_v4",
        "add element inet fwgen abuse_v4 { 192.0.2.0/25, 203.0.113.7 }",
        "flush set inet fwgen abuse_v6",
        "add element inet fwgen abuse_v6 { 2001:db8:bad::/48 }",
        "flush set inet fwgen deny_to_v4",
        "add element inet fwgen deny_to_v4 { 198.51.100.0/24 }",
        "flush set inet fwgen deny_to_v6",  # empty, but there: an update may fill it
        "flush set inet fwgen ssh_from_v4",
        "add element inet fwgen ssh_from_v4 { 10.66.0.0/16 }",
        "flush set inet fwgen ssh_from_v6",
    ]
    ipsets = render(policy, "iptables", RenderOptions(sets_only=True))
    assert list(ipsets) == ["ipsets"]
    names = re.findall(r"^swap (\S+) (\S+)$", ipsets["ipsets"], re.M)
    assert [n for _, n in names] == [
        "fwgen-abuse-v4",
        "fwgen-abuse-v6",
        "fwgen-deny_to-v4",
        "fwgen-deny_to-v6",
        "fwgen-ssh_from-v4",
        "fwgen-ssh_from-v6",
    ]
    assert "fwt" not in ipsets["ipsets"]  # no rate-limit tracker is touched


@pytest.mark.parametrize("target", ["ufw", "windows"])
def test_targets_without_sets_refuse_sets_only(target: str) -> None:
    with pytest.raises(FwgenError, match="--sets-only cannot be expressed"):
        render(resolve_profile(DENIES), target, RenderOptions(sets_only=True))


def test_ufw_puts_denies_first_in_its_block_for_new_connections_only() -> None:
    script = render(resolve_profile(DENIES), "ufw")["fwgen-ufw.sh"]
    assert (
        "-A ufw-before-input ! -i lo -m conntrack ! --ctstate ESTABLISHED,RELATED "
        '-s 192.0.2.0/25 -m comment --comment "deny" -j DROP' in script
    )
    assert (
        "-A ufw-before-output ! -o lo -m conntrack ! --ctstate ESTABLISHED,RELATED -d 198.51.100.0/24"
        in script
    )
    assert "-A ufw6-after-input -s fd00::/8 -p tcp -m pkttype --pkt-type unicast" in script
    assert "--connlimit-above 50" in script


def test_windows_blocks_what_is_denied_and_warns_what_it_cannot_say() -> None:
    policy = resolve_profile(DENIES)
    files, warnings = render_with_warnings(policy, "windows")
    script = files["fwgen.ps1"]
    blocks = [line for line in script.splitlines() if "-Action Block" in line]
    assert len(blocks) == len(policy.denies) == 3
    assert any(
        "-Protocol Any -RemoteAddress '192.0.2.0/25','203.0.113.7','2001:db8:bad::/48'" in b
        for b in blocks
    )
    allows = "\n".join(line for line in script.splitlines() if "-Action Block" not in line)
    assert canonical(parse_windows(allows)) == canonical(expected(policy))
    assert any("connlimit 50 is not applied" in w for w in warnings)
    assert any("options.refuse: reject is not expressed" in w for w in warnings)
    assert any("the reject is a silent block" in w for w in warnings)
    fw = Firewall()
    run(read_script(script), fw)
    assert sum(r.params.get("Action") == ["Block"] for r in fw.rules.values()) == 3


def test_check_reports_dead_allows_and_denies_that_block_nothing(
    write_profile: ..., tmp_path: Path
) -> None:
    written = write_profile(
        "description: x\nextends: base\ninbound:\n"
        "  - {service: ssh, from: 10.1.0.0/16}\n"
        "  - {service: https}\n"
        "  - {from: 10.0.0.0/8, action: deny}\n"
        "  - {port: 9999/tcp, name: nothing, action: deny}\n"
        "  - {port: 443/tcp, name: some, action: deny, from: 192.0.2.0/24}\n"
    )
    found = {
        (f.code, f.location.rsplit(":", 1)[1])
        for f in check_policy(resolve_profile(str(written)), catalogue())
    }
    assert ("FW021", "4") in found  # ssh from 10.1/16: all of it denied
    assert ("FW022", "7") in found  # 9999: nothing admits it
    assert not {code for code, line in found if line in ("5", "6", "8")} & {"FW021", "FW022"}


def test_diff_says_now_blocks_and_no_longer_blocks(write_profile: ...) -> None:
    old = resolve_profile(
        str(
            write_profile(
                "description: x\nextends: base\ninbound:\n  - {service: https}\n  - {from: 10.0.0.0/8, action: deny}\n",
                "old.yaml",
            )
        )
    )
    new = resolve_profile(
        str(
            write_profile(
                "description: x\nextends: base\ninbound:\n  - {service: https, connlimit: 5}\n  - {service: ssh, from: 192.0.2.0/24, action: reject}\n",
                "new.yaml",
            )
        )
    )
    result = diff_policies(old, new, catalogue())
    text = as_text(result)
    assert "- now blocks reject 22/tcp from 192.0.2.0/24 [ipv4] (new.yaml:5)" in text
    assert "+ no longer blocks deny every protocol from 10.0.0.0/8 [ipv4] (old.yaml:5)" in text
    assert "connlimit 5" in text
    assert widens(result)
    back = diff_policies(new, old, catalogue())
    assert widens(back)  # the cap is gone (and 10/8 is no longer blocked... the other way: now)
    assert [c["change"] for c in back["changed"]] == ["widened"]


def test_the_guard_sees_a_deny_that_blocks_the_admin(write_profile: ...) -> None:
    from fwgen.host.guard import from_keep, lockouts

    written = write_profile(
        "description: x\nextends: base\ninbound:\n  - {service: ssh}\n"
        "  - {from: 198.51.100.0/24, action: deny}\n"
        "  - {port: 2222/tcp, name: alt, action: reject, from: 203.0.113.0/24}\n"
    )
    policy = resolve_profile(str(written))
    assert lockouts(policy, [from_keep("192.0.2.7")]) == []
    found = lockouts(policy, [from_keep("198.51.100.7"), from_keep("203.0.113.9:2222")])
    assert [m.split(": the ")[1].split(" (")[0] for m in found] == [
        "deny rule 'deny'",
        "reject rule 'alt'",
    ]


def test_explain_shows_what_is_blocked_first_and_the_caps() -> None:
    from typer.testing import CliRunner

    from fwgen.cli.app import app

    result = CliRunner().invoke(app, ["explain", DENIES])
    assert result.exit_code == 0, result.output
    text = result.stdout
    blocked, allowed = text.split("Blocked first, before every rule below")[1].split("\n\n", 1)
    assert [line.split()[:2] for line in blocked.splitlines()[2:]] == [
        ["in", "deny"],
        ["in", "reject"],
        ["out", "deny"],
    ]
    assert "refuse: reject (what no rule admits is refused" in text
    https = next(line for line in allowed.splitlines() if line.startswith("in   https"))
    assert "max 50" in https


def test_a_target_that_does_not_declare_denies_refuses_them() -> None:
    """A target added later (its capabilities without deny/reject, connlimit or sets)
    refuses what it would otherwise leave out."""
    from dataclasses import replace

    from fwgen.targets import TARGETS, refuse_what_the_target_does_not_know

    bare = replace(TARGETS["nftables"], capabilities={"families": "both"}, sets_only=False)
    policy = resolve_profile(DENIES)
    with pytest.raises(FwgenError, match="deny and reject rules cannot be expressed"):
        refuse_what_the_target_does_not_know(policy, bare, RenderOptions())
    capped = resolve_profile("mailserver")
    with pytest.raises(FwgenError, match="connlimit cannot be expressed"):
        refuse_what_the_target_does_not_know(capped, bare, RenderOptions())
    with pytest.raises(FwgenError, match="--sets-only cannot be expressed"):
        refuse_what_the_target_does_not_know(
            resolve_profile("webserver"), bare, RenderOptions(sets_only=True)
        )
    refuse_what_the_target_does_not_know(resolve_profile("webserver"), bare, RenderOptions())


def test_denies_on_interfaces_and_of_other_protocols(write_profile: ...) -> None:
    written = write_profile(
        "description: x\nextends: base\ninbound:\n  - {service: https}\n"
        "  - {from: 10.0.0.0/8, action: deny, interface: eth1}\n"
        "  - {protocol: gre, action: reject, from: 192.0.2.0/24}\n"
    )
    policy = resolve_profile(str(written))
    nft = render(policy, "nftables")["fwgen.nft"]
    assert 'iifname "eth1" ip saddr @deny_from_v4 drop comment "deny"' in nft
    assert 'meta l4proto 47 meta pkttype host limit name "refusals" reject with icmpx' in nft
    ufw = render(policy, "ufw")["fwgen-ufw.sh"]
    eth1 = [line for line in ufw.splitlines() if "-i eth1" in line]
    assert eth1 and not any("-i lo" in line for line in eth1)  # one -i a rule
    iptables = render(policy, "iptables")["rules.v4"]
    assert "-A FWGEN-INPUT -i eth1 -m set --match-set fwgen-deny_from-v4 src" in iptables
    assert "-p 47 -m pkttype --pkt-type unicast" in iptables
