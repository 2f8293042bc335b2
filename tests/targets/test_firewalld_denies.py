"""firewalld: deny and reject rules, blocklist ipsets, the default's rejects and the
connection caps it cannot count (firewalld's own check of this XML:
tests/kernel/test_firewalld_install.py)."""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path
from xml.etree import ElementTree

import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.errors import RenderError
from fwgen.policy.resolve import resolve_profile
from fwgen.targets import RenderOptions
from fwgen.targets.render import render, render_with_warnings

runner = CliRunner()
DENIES = "tests/data/good/denies.yaml"
BLOCKLIST = "tests/data/good/firewalld-denies.yaml"


def rich_rules(text: str) -> list[tuple[str, str, str]]:
    """Each rich rule as (priority, its elements but the action, its action), in order."""
    out = []
    for rule in ElementTree.fromstring(text.encode()).iter("rule"):
        parts = [ElementTree.tostring(e, encoding="unicode").strip() for e in rule]
        out.append((rule.get("priority", "0"), " ".join(parts[:-1]), parts[-1]))
    return out


def test_deny_and_reject_rules_come_before_every_allow() -> None:
    files = render(resolve_profile(DENIES), "firewalld")
    rules = rich_rules(files["zones/fwgen.xml"])
    denies = [r for r in rules if int(r[0]) < 0]
    assert denies[:3] == [
        ("-1", '<source address="192.0.2.0/25" />', "<drop />"),
        ("-1", '<source address="203.0.113.7" />', "<drop />"),
        ("-1", '<source address="2001:db8:bad::/48" />', "<drop />"),
    ]
    # a reject answers within 20/second, then the same packets are dropped
    ssh = '<source address="10.66.0.0/16" /> <port port="22" protocol="tcp" />'
    assert denies[3:] == [
        ("-2", ssh, '<reject type="tcp-reset"><limit value="20/s" /></reject>'),
        ("-1", ssh, "<drop />"),
    ]
    # every accepting rich rule is at priority 0, after every deny (firewalld's _pre chain)
    assert {p for p, _, action in rules if action == "<accept />"} == {"0"}
    assert '<port port="443" protocol="tcp"/>' in files["zones/fwgen.xml"]
    outbound = rich_rules(files["policies/fwgen-outbound.xml"])
    assert outbound[0] == ("-1", '<destination address="198.51.100.0/24" />', "<drop />")


def test_reject_of_every_protocol_answers_tcp_with_a_reset_and_the_rest_with_icmp() -> None:
    files = render(resolve_profile(BLOCKLIST), "firewalld")
    source = '<source address="198.51.100.0/24" />'
    found = [r for r in rich_rules(files["zones/fwgen.xml"]) if r[1].startswith(source)]
    tcp = f'{source} <protocol value="tcp" />'
    limit = '<limit value="20/s" />'
    assert found == [
        ("-4", tcp, f'<reject type="tcp-reset">{limit}</reject>'),
        ("-3", tcp, "<drop />"),
        ("-2", source, f'<reject type="icmp-admin-prohibited">{limit}</reject>'),
        ("-1", source, "<drop />"),
    ]
    # outbound, to a network: the answers go to the host's own programs
    outbound = rich_rules(files["policies/fwgen-outbound.xml"])
    to = '<destination address="192.0.2.0/24" />'
    assert [r for r in outbound if r[1].startswith(to)][-1] == ("-1", to, "<drop />")


def test_a_blocklist_is_an_ipset_per_family_denied_with_a_limited_log() -> None:
    files = render(resolve_profile(BLOCKLIST), "firewalld")
    listed = Path("tests/data/good/firewalld-block.txt").read_text().split()
    for family, suffix, option in (("ipv4", "v4", "inet"), ("ipv6", "v6", "inet6")):
        ipset = ElementTree.fromstring(files[f"ipsets/fwgen-block-{suffix}.xml"].encode())
        assert ipset.get("type") == "hash:net"
        assert ipset.find("option").attrib == {"name": "family", "value": option}  # type: ignore[union-attr]
        entries = [e.text for e in ipset.iter("entry")]
        assert entries == [str(ip_network(a)) for a in listed if (":" in a) == (family == "ipv6")]
        assert len(entries) == (128 if family == "ipv4" else 50)
    zone = files["zones/fwgen.xml"]
    rules = [r for r in rich_rules(zone) if "ipset=" in r[1]]
    log = '<log prefix="fwgen in deny: " level="info"><limit value="5/s" /></log>'
    assert rules == [
        ("-2", '<source ipset="fwgen-block-v4" />', log),
        ("-1", '<source ipset="fwgen-block-v4" />', "<drop />"),
        ("-2", '<source ipset="fwgen-block-v6" />', log),
        ("-1", '<source ipset="fwgen-block-v6" />', "<drop />"),
    ]
    assert "10.2.14.0/24" not in zone  # one rule for the whole list


def test_refuse_reject_answers_within_a_limit_after_every_allow_not_by_the_target() -> None:
    files = render(resolve_profile("workstation", {"lan": ["10.9.0.0/16"]}), "firewalld")
    zone = files["zones/fwgen.xml"]
    assert '<zone target="DROP">' in zone and "%%REJECT%%" not in zone
    lan = '<source address="10.9.0.0/16" />'
    late = [r for r in rich_rules(zone) if int(r[0]) >= 32000]
    limit = '<limit value="20/s" />'
    assert late == [
        ("32000", f'{lan} <protocol value="tcp" />', f'<reject type="tcp-reset">{limit}</reject>'),
        (
            "32000",
            f'{lan} <protocol value="udp" />',
            f'<reject type="icmp-port-unreachable">{limit}</reject>',
        ),
        ("32001", f'{lan} <protocol value="tcp" />', "<drop />"),
        ("32001", f'{lan} <protocol value="udp" />', "<drop />"),
        ("32002", lan, f'<reject type="icmp-admin-prohibited">{limit}</reject>'),
    ]  # no IPv6 LAN given: nothing answered over IPv6


def test_refuse_reject_to_everyone_names_no_source() -> None:
    files = render(resolve_profile(BLOCKLIST), "firewalld")
    late = [r for r in rich_rules(files["zones/fwgen.xml"]) if 32000 <= int(r[0]) < 32767]
    assert len(late) == 10 and not any("<source" in r[1] for r in late)
    assert (
        "32002",
        "",
        '<reject type="icmp6-adm-prohibited"><limit value="20/s" /></reject>',
    ) in late


def test_connlimit_is_rendered_without_the_cap_warned_and_fails_strict(tmp_path: Path) -> None:
    policy = resolve_profile("mailserver")
    files, warnings = render_with_warnings(policy, "firewalld")
    assert (
        "smtp (profiles/mailserver.yaml:10): not capped: firewalld cannot count connections per "
        "source; connlimit 20 is not applied, each source may open any number of connections"
    ) in warnings
    assert '<port port="25" protocol="tcp"/>' in files["zones/fwgen.xml"]
    (tmp_path / "p.yaml").write_text(
        "description: x\nextends: base\noptions:\n  ping: false\n"
        "inbound:\n  - {service: ssh, connlimit: 3}\n"
    )
    capped = resolve_profile(str(tmp_path / "p.yaml"))
    assert render_with_warnings(capped, "firewalld")[1] == [
        "ssh (p.yaml:6): not capped: firewalld cannot count connections per "
        "source; connlimit 3 is not applied, each source may open any number of connections"
    ]
    with pytest.raises(RenderError, match=r"^firewalld: ssh .*: not capped: .* \(--strict\)$"):
        render(capped, "firewalld", RenderOptions(strict=True))
    result = runner.invoke(app, ["render", str(tmp_path / "p.yaml"), "-t", "firewalld", "--strict"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "not capped" in result.stderr


def test_sets_only_is_refused_with_the_reason() -> None:
    result = runner.invoke(app, ["render", BLOCKLIST, "-t", "firewalld", "--sets-only"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        "error: firewalld: --sets-only cannot be expressed: firewalld replaces an ipset's "
        "entries atomically only by reloading its whole configuration (firewall-cmd --reload, "
        "as fwgen-firewalld.sh does); render the whole ruleset\n"
    )


def test_hostile_names_and_comments_of_denies_stay_inside_their_xml(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("".join(f"10.{i}.0.0/16\n" for i in range(0, 80, 2)))
    (tmp_path / "p.yaml").write_text(
        'description: "x --> <zone target=\\"ACCEPT\\"/> & \'é\'"\n'
        "extends: base\nnetworks:\n  Bad_List: [{file: b.txt}]\ninbound:\n"
        '  - {from: Bad_List, action: deny, name: "a--b-", log: true, '
        'comment: "c --> <x/> ]]>"}\n'
        '  - {service: ssh, from: 198.51.100.0/24, action: reject, name: "r-"}\n'
    )
    files = render(resolve_profile(str(tmp_path / "p.yaml")), "firewalld")
    for name, text in files.items():
        if not name.endswith(".xml"):
            continue
        root = ElementTree.fromstring(text.encode())  # well-formed, or this raises
        assert root.get("target") in (None, "DROP"), name
        assert len(root.findall("zone")) == 0
    zone = files["zones/fwgen.xml"]
    assert "<!-- deny a- -b- (" in zone and "<!-- reject r- (" in zone
    ipsets = sorted(n for n in files if n.startswith("ipsets/"))
    assert ipsets == ["ipsets/fwgen-bad-list-v4.xml"]
    assert '<source ipset="fwgen-bad-list-v4"/>' in zone


def test_more_ipset_entries_than_firewalld_reloads_in_time_are_refused(tmp_path: Path) -> None:
    spread = "".join(f"10.{i >> 7}.0.{(i & 127) * 2}\n" for i in range(20_001))  # no CIDR joins
    (tmp_path / "b.txt").write_text(spread)
    (tmp_path / "p.yaml").write_text(
        "description: x\nnetworks:\n  feed: [{file: b.txt}]\ninbound:\n"
        "  - {from: feed, action: deny}\n"
    )
    result = runner.invoke(app, ["render", str(tmp_path / "p.yaml"), "-t", "firewalld"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        "error: firewalld: the ipsets would hold 20,001 entries (p.yaml:3: 20,001), more than "
        "the 20,000 firewalld reloads in time (it adds them one by one); use nftables or "
        "iptables for large lists\n"
    )
    (tmp_path / "b.txt").write_text("".join(spread.splitlines(keepends=True)[:20_000]))
    files = render(resolve_profile(str(tmp_path / "p.yaml")), "firewalld")
    assert files["ipsets/fwgen-feed-v4.xml"].count("<entry>") == 20_000


def test_with_log_drops_the_refusals_drops_are_logged_as_the_targets_drops() -> None:
    files = render(resolve_profile(BLOCKLIST), "firewalld")
    log = '<log prefix="fwgen input drop: " level="info"><limit value="5/s" /></log>'
    zone = ElementTree.fromstring(files["zones/fwgen.xml"].encode())
    drops = [r for r in zone.iter("rule") if r.get("priority") == "32001"]
    assert len(drops) == 4  # TCP and UDP, both families
    for rule in drops:
        parts = [ElementTree.tostring(e, encoding="unicode").strip() for e in rule]
        assert parts[-2:] == [log, "<drop />"]
    last = list(zone.iter("rule"))[-1]
    assert last.get("priority") == "32767" and last.find("log") is not None
