"""firewalld: the zone, ipsets, policies and install script, and what they approximate.

What the XML means to firewalld itself is proved by tests/kernel/test_firewalld_config.py
(the real firewall-offline-cmd and firewalld, in a private mount and network namespace)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pytest
from syrupy.assertion import SnapshotAssertion
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.errors import RenderError
from fwgen.policy.resolve import resolve_profile
from fwgen.targets import RenderOptions
from fwgen.targets.firewalld_xml import xml_comment, xml_text
from fwgen.targets.render import render, render_with_warnings
from tests.conftest import BUILTIN, EVERY_FEATURE

runner = CliRunner()
REFUSED_PROFILES = {"docker-host"}  # containers: cannot be expressed on firewalld


def xml_files(files: dict[str, str]) -> dict[str, ElementTree.Element]:
    return {
        name: ElementTree.fromstring(text.encode())
        for name, text in files.items()
        if name.endswith(".xml")
    }


@pytest.mark.parametrize("profile", BUILTIN)
def test_builtin_profile_snapshot(profile: str, snapshot: SnapshotAssertion) -> None:
    if profile in REFUSED_PROFILES:
        with pytest.raises(RenderError) as error:
            render(resolve_profile(profile), "firewalld")
        assert str(error.value) == snapshot
        return
    files, warnings = render_with_warnings(resolve_profile(profile), "firewalld")
    assert list(files)[:2] == ["fwgen-firewalld.sh", "zones/fwgen.xml"]
    assert {"files": files, "warnings": warnings} == snapshot


@pytest.mark.parametrize("profile", [*sorted(set(BUILTIN) - REFUSED_PROFILES), str(EVERY_FEATURE)])
def test_every_rule_is_in_the_xml_and_firewalld_services_are_never_named(profile: str) -> None:
    policy = resolve_profile(profile)
    files = render(policy, "firewalld")
    parsed = xml_files(files)
    zone = parsed["zones/fwgen.xml"]
    assert zone.tag == "zone" and zone.get("target") == "DROP"
    assert [s for e in parsed.values() for s in e.iter("service")] == []
    text = "\n".join(files.values())
    for rule in policy.rules:
        assert f"{rule.name} ({rule.origin})" in text, rule.name
    script = files["fwgen-firewalld.sh"]
    listed = script.split("fwgen_files=(\n")[1].split(")\n")[0].split()
    assert listed == [name for name in files if name.endswith(".xml")]
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_ports_open_to_anyone_are_ports_and_the_rest_rich_rules() -> None:
    zone = xml_files(render(resolve_profile("webserver"), "firewalld"))["zones/fwgen.xml"]
    ports = {(p.get("port"), p.get("protocol")) for p in zone.findall("port")}
    assert ports == {("80", "tcp"), ("443", "tcp"), ("443", "udp")}
    ssh = [r for r in zone.findall("rule") if r.find("port") is not None]
    assert {(r.get("family"), r.find("source").get("address")) for r in ssh} == {  # type: ignore[union-attr]
        ("ipv4", "198.51.100.0/24"),
        ("ipv6", "2001:db8:100::/48"),
    }
    for rule in ssh:
        assert rule.find("log").get("prefix") == "fwgen in ssh: "  # type: ignore[union-attr]
        assert rule.find("limit") is None and rule.find("accept") is not None


def test_a_large_network_becomes_an_ipset_of_each_family(
    write_profile: Callable[..., Path],
) -> None:
    v4 = [f"10.{2 * n}.0.0/16" for n in range(20)]
    path = write_profile(
        f"description: many\nnetworks:\n  office: [{', '.join(v4)}, 2001:db8:5::/48]\n"
        "inbound:\n  - {service: ssh, from: office}\n"
    )
    files = render(resolve_profile(str(path)), "firewalld")
    parsed = xml_files(files)
    ipset = parsed["ipsets/fwgen-office-v4.xml"]
    assert ipset.get("type") == "hash:net"
    assert ipset.find("option").attrib == {"name": "family", "value": "inet"}  # type: ignore[union-attr]
    assert [e.text for e in ipset.findall("entry")] == v4
    sources = [r.find("source").attrib for r in parsed["zones/fwgen.xml"].findall("rule")]  # type: ignore[union-attr]
    assert sources == [{"ipset": "fwgen-office-v4"}, {"address": "2001:db8:5::/48"}]
    assert "ipsets/fwgen-office-v6.xml" not in files


def test_policies_only_where_the_policy_needs_them(write_profile: Callable[..., Path]) -> None:
    def policies(options: str, outbound: str = "") -> dict[str, ElementTree.Element]:
        path = write_profile(
            f"description: p\ninbound: [{{service: ssh}}]\n{outbound}options: {{{options}}}\n"
        )
        parsed = xml_files(render(resolve_profile(str(path)), "firewalld"))
        return {k: v for k, v in parsed.items() if k.startswith("policies/")}

    assert policies("forward: drop") == {}
    assert policies("forward: ignore") == {}
    out = policies("forward: drop", "outbound: [{service: https}]\n")["policies/fwgen-outbound.xml"]
    assert out.get("target") == "DROP"
    assert [(z.tag, z.get("name")) for z in out if z.tag.endswith("-zone")] == [
        ("ingress-zone", "HOST"),
        ("egress-zone", "ANY"),
    ]
    assert {(p.get("port"), p.get("protocol")) for p in out.findall("port")} == {("443", "tcp")}
    forward = policies("forward: accept")["policies/fwgen-forward.xml"]
    assert forward.get("target") == "ACCEPT" and forward.findall("rule") == []


def test_log_drops_logs_what_falls_to_the_target(write_profile: Callable[..., Path]) -> None:
    path = write_profile(
        "description: l\ninbound: [{service: ssh}]\noutbound: [{service: https}]\n"
        "options: {log_drops: true}\n"
    )
    files, warnings = render_with_warnings(resolve_profile(str(path)), "firewalld")
    for name, prefix in (("zones/fwgen.xml", "input"), ("policies/fwgen-outbound.xml", "output")):
        last = xml_files(files)[name].findall("rule")[-1]
        assert last.get("priority") == "32767" and last.find("accept") is None
        log = last.find("log")
        assert log is not None and log.get("prefix") == f"fwgen {prefix} drop: "
        assert log.find("limit").get("value") == "5/s"  # type: ignore[union-attr]
    assert any("LogDenied" in w for w in warnings)


def test_icmp_types_firewalld_cannot_name(write_profile: Callable[..., Path]) -> None:
    """Stricter (not admitted, warned) unless the peers are on the link only: then all
    ICMPv6 with them but echo requests, which are dropped first (firewalld's deny chain)."""
    path = write_profile(
        "description: i\ninbound:\n  - {icmpv6: [mld-listener-report, time-exceeded], name: wide}\n"
        "  - {icmpv6: [mld-listener-query], from: ['fe80::/10'], name: link}\n"
    )
    files, warnings = render_with_warnings(resolve_profile(str(path)), "firewalld")
    zone = xml_files(files)["zones/fwgen.xml"]
    rules = [(r.find("source"), r[-2], r[-1].tag) for r in zone.findall("rule")]
    assert [(s is None or s.get("address"), e.tag, e.attrib, a) for s, e, a in rules] == [
        (True, "icmp-type", {"name": "time-exceeded"}, "accept"),
        ("fe80::/10", "icmp-type", {"name": "echo-request"}, "drop"),
        ("fe80::/10", "protocol", {"value": "ipv6-icmp"}, "accept"),
    ]
    assert warnings == [
        "wide (host.yaml:3): firewalld has no ICMP type for mld-listener-report; not admitted "
        "(stricter than the profile)",
        *[w for w in warnings if "allow-host-ipv6" in w],
    ]
    with pytest.raises(RenderError, match="--strict"):
        render_with_warnings(resolve_profile(str(path)), "firewalld", RenderOptions(strict=True))


def test_echo_requests_stay_out_of_the_link_scoped_approximation(
    write_profile: Callable[..., Path],
) -> None:
    """Admitted from anyone: nothing to drop. From some sources only: the approximation
    admits them from the link too, warned."""
    for ping, dropped, warned in (("", False, False), ("from: [2001:db8::/32], ", False, True)):
        path = write_profile(
            f"description: e\ninbound:\n  - {{icmpv6: [echo-request], {ping}name: ping6}}\n"
            "  - {icmpv6: [mld-listener-query], from: ['fe80::/10'], name: link}\n"
        )
        files, warnings = render_with_warnings(resolve_profile(str(path)), "firewalld")
        zone = xml_files(files)["zones/fwgen.xml"]
        assert any(r.find("drop") is not None for r in zone.findall("rule")) == dropped
        assert any("lets echo requests through there too" in w for w in warnings) == warned


def test_outbound_mld_reports_go_to_link_scope_groups(write_profile: Callable[..., Path]) -> None:
    """With outbound deny, MLD reports (no firewalld ICMP type) go to ff02::/16: a host
    that cannot send them drops out of multicast behind a snooping switch."""
    files, warnings = render_with_warnings(resolve_profile("bastion"), "firewalld")
    out = xml_files(files)["policies/fwgen-outbound.xml"]
    scoped = [
        (r.find("destination").get("address"), r[-1].tag)  # type: ignore[union-attr]
        for r in out.findall("rule")
        if r.find("destination") is not None and r.find("protocol") is not None
    ]
    assert scoped == [("ff02::/16", "accept")]
    assert not [w for w in warnings if "ICMP type" in w]


def test_firewalld_admits_neighbour_discovery_itself(write_profile: Callable[..., Path]) -> None:
    """Warned only when the profile does not admit it from anyone: base does."""
    bare = write_profile("description: b\ninbound: [{service: ssh}]\n")
    _, warnings = render_with_warnings(resolve_profile(str(bare)), "firewalld")
    assert [w for w in warnings if "allow-host-ipv6" in w] == [
        "firewalld's own policy allow-host-ipv6 admits nd-neighbor-solicit, nd-neighbor-advert, "
        "nd-router-advert from anyone (and redirects), ahead of fwgen's zone; the profile does "
        "not admit them from anyone"
    ]
    _, warnings = render_with_warnings(resolve_profile("base"), "firewalld")
    assert not [w for w in warnings if "allow-host-ipv6" in w]


@pytest.mark.parametrize(
    ("text", "args", "message"),
    [
        (
            "description: c\ninbound: [{service: ssh}]\noptions: {containers: docker}\n",
            [],
            "firewalld: containers: docker cannot be expressed: firewalld accepts every forwarded",
        ),
        (
            "description: f\ninbound: [{service: ssh}]\n",
            ["--flush-ruleset"],
            "firewalld: --flush-ruleset cannot be expressed",
        ),
        (
            "description: l\ninbound: [{service: ssh}]\noptions: {loopback: false}\n",
            [],
            "firewalld: options loopback: false cannot be expressed",
        ),
    ],
)
def test_what_firewalld_cannot_do_is_refused_with_one_line(
    text: str, args: list[str], message: str, write_profile: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_profile(text)
    result = runner.invoke(
        app, ["render", str(path), "-t", "firewalld", "-o", str(tmp_path / "out"), *args]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {message}") and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()


HOSTILE = (
    'description: "a & b <zone target=\\"ACCEPT\\"> --> <!-- \' \\u00e9"\n'
    "inbound:\n"
    "  - {port: 80/tcp, name: 'x--y-', comment: '</rule><rule><accept/></rule> & \"'}\n"
    "  - {service: ssh, from: ['192.0.2.1'], log: true, name: 'a--b', comment: '--> <rule/>'}\n"
)


def test_hostile_text_stays_text_in_every_file(write_profile: Callable[..., Path]) -> None:
    """Every value that reaches a file is escaped for where it lands: the XML parses to
    exactly fwgen's elements, the description comes back as written, no comment closes
    early, and the script has nothing of it outside comments."""
    path = write_profile(HOSTILE)
    files = render(resolve_profile(str(path)), "firewalld")
    zone = xml_files(files)["zones/fwgen.xml"]
    assert zone.get("target") == "DROP"
    assert zone.find("description").text == (  # type: ignore[union-attr]
        'fwgen: host: a & b <zone target="ACCEPT"> --> <!-- \' \u00e9'
    )
    assert [r.find("log").get("prefix") for r in zone.findall("rule")] == ["fwgen in a--b: "]  # type: ignore[union-attr]
    assert sorted(e.tag for e in zone) == ["description", "port", "rule", "short"]
    for line in files["zones/fwgen.xml"].splitlines():
        if line.lstrip().startswith("<!--"):
            assert line.rstrip().endswith("-->") and "--" not in line.strip()[4:-3]
    script = files["fwgen-firewalld.sh"]
    assert all(line.startswith("#") for line in script.splitlines() if "zone target" in line)


@pytest.mark.parametrize(
    ("text", "want"),
    [("a&b", "a&amp;b"), ("<x>", "&lt;x&gt;"), ("\"'", "&quot;&apos;"), ("tab\there", "tab?here")],
)
def test_xml_text(text: str, want: str) -> None:
    assert xml_text(text) == want


@pytest.mark.parametrize(("text", "want"), [("a--b", "a- -b"), ("a---", "a- - - "), ("x-", "x- ")])
def test_xml_comment(text: str, want: str) -> None:
    assert xml_comment(text) == want


def test_the_capability_table_snapshot(snapshot: SnapshotAssertion) -> None:
    """`fwgen targets`: every target's files and capabilities, firewalld's among them."""
    result = runner.invoke(app, ["targets"])
    assert result.exit_code == 0
    assert "firewalld: firewalld (a zone of fwgen's own" in result.stdout
    assert result.stdout == snapshot


def test_ipset_names_are_fwgen_s_own_and_distinct(write_profile: Callable[..., Path]) -> None:
    """Network names that differ only in case get ipsets of their own;
    both families of one network share its name."""

    def many(prefix: str, v6: str) -> str:
        return ", ".join([*(f"10.{prefix}.{2 * n}.0/24" for n in range(17)), *v6.split()])

    v6 = " ".join(f"2001:db8:{2 * n}::/48" for n in range(17))
    path = write_profile(
        "description: n\nnetworks:\n"
        f"  Office_LAN: [{many('1', v6)}]\n  office_lan: [{many('2', '')}]\n"
        "inbound:\n  - {service: ssh, from: Office_LAN}\n  - {service: https, from: office_lan}\n"
    )
    files = render(resolve_profile(str(path)), "firewalld")
    assert sorted(n for n in files if n.startswith("ipsets/")) == [
        "ipsets/fwgen-office-lan-2-v4.xml",
        "ipsets/fwgen-office-lan-v4.xml",
        "ipsets/fwgen-office-lan-v6.xml",
    ]
    for name, root in xml_files(files).items():
        if name.startswith("ipsets/"):
            assert root.find("short").text == name.removeprefix("ipsets/").removesuffix(".xml")  # type: ignore[union-attr]


def test_a_hostile_file_name_stays_in_its_comment(tmp_path: Path) -> None:
    (tmp_path / "x-->y<rule><accept>.yaml").write_text(
        "description: p\ninbound: [{service: http}]\n"
    )
    (tmp_path / "top.yaml").write_text('description: top\nextends: "x-->y<rule><accept>.yaml"\n')
    files = render(resolve_profile(str(tmp_path / "top.yaml")), "firewalld")
    zone = xml_files(files)["zones/fwgen.xml"]
    assert zone.findall("rule") == [] and len(zone.findall("port")) == 1
    assert "<!-- Profile files: x- ->y<rule><accept>.yaml, top.yaml -->" in files["zones/fwgen.xml"]


def test_the_files_are_identical_across_hash_seeds_and_directories(tmp_path: Path) -> None:
    """Sets and ipsets are ordered by the Policy, never by a hash: a network of many
    addresses (ipsets) and one of few, rendered under two seeds from two folders."""
    import os
    import sys

    nets = ", ".join(f"10.{2 * n}.0.0/16" for n in range(20))
    (tmp_path / "p.yaml").write_text(
        f"description: d\nextends: base\nnetworks:\n  big: [{nets}]\n  few: [192.0.2.1, '2001:db8::1']\n"
        "inbound:\n  - {service: ssh, from: big}\n  - {service: https, from: few}\n"
        "outbound: [{service: dns}]\n"
    )

    def rendered(seed: str, cwd: Path) -> bytes:
        env = {**os.environ, "PYTHONHASHSEED": seed}
        argv = [
            sys.executable,
            "-m",
            "fwgen",
            "render",
            str(tmp_path / "p.yaml"),
            "-t",
            "firewalld",
        ]
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=True).stdout

    first = rendered("0", tmp_path)
    assert b"==> ipsets/fwgen-big-v4.xml <==" in first
    assert rendered("4242", Path("/")) == first


def test_rules_on_interfaces_get_zones_bound_to_them(write_profile: Callable[..., Path]) -> None:
    """Each interface name gets a zone of its own, bound to it (a final * as firewalld's
    +), holding its rules and every rule on any interface; the default zone holds the
    latter alone. Outbound, a CONTINUE policy to that zone ahead of fwgen-outbound."""
    path = write_profile(
        "description: i\ninterfaces:\n  lan: [eth1, 'wg*']\n"
        "inbound:\n  - {service: https}\n  - {service: ssh, interface: lan}\n"
        "  - {service: dns, interface: eth1}\n"
        "outbound:\n  - {service: ntp}\n  - {service: syslog, interface: eth1}\n"
    )
    parsed = xml_files(render(resolve_profile(str(path)), "firewalld"))

    def ports(root: ElementTree.Element) -> set[str]:
        return {f"{p.get('port')}/{p.get('protocol')}" for p in root.iter("port")}

    zones = {k: v for k, v in parsed.items() if k.startswith("zones/")}
    assert {k: [i.get("name") for i in v.findall("interface")] for k, v in zones.items()} == {
        "zones/fwgen.xml": [],
        "zones/fwgen-if1.xml": ["eth1"],
        "zones/fwgen-if2.xml": ["wg+"],
    }
    assert ports(zones["zones/fwgen.xml"]) == {"443/tcp"}
    assert ports(zones["zones/fwgen-if1.xml"]) == {"443/tcp", "22/tcp", "53/tcp", "53/udp"}
    assert ports(zones["zones/fwgen-if2.xml"]) == {"443/tcp", "22/tcp"}
    out = parsed["policies/fwgen-outbound-if1.xml"]
    assert (out.get("target"), out.get("priority")) == ("CONTINUE", "-2")
    assert out.find("egress-zone").get("name") == "fwgen-if1"  # type: ignore[union-attr]
    assert ports(out) == {"514/udp"}
    assert ports(parsed["policies/fwgen-outbound.xml"]) == {"123/udp"}
    assert "policies/fwgen-outbound-if2.xml" not in parsed  # no outbound rule on wg*


def test_interface_names_that_overlap_are_refused(write_profile: Callable[..., Path]) -> None:
    """firewalld puts an interface in one zone: veth0 would be in veth0's and veth*'s."""
    path = write_profile(
        "description: o\ninbound:\n  - {service: ssh, interface: 'veth*'}\n"
        "  - {service: https, interface: veth0}\n"
    )
    with pytest.raises(RenderError, match=r"firewalld: interfaces veth\* and veth0 overlap"):
        render(resolve_profile(str(path)), "firewalld")
