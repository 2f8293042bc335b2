"""`fwgen shadow` in a real kernel: a candidate profile loaded beside a live firewall
changes no verdict, records the new connections it would drop (and not the ones it
admits) with their services, survives a reload of the live rules, and `stop` leaves
the live ruleset byte for byte as it was."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kernel.lab import Lab

pytestmark = pytest.mark.kernel

PORTS = ["tcp:22", "tcp:80", "tcp:3306", "tcp:5432", "udp:53", "udp:5353"]
# The candidate: ssh from `trusted` only, http from anyone; nothing else of PORTS.
CANDIDATE = """\
description: shadow candidate
extends: base
networks:
  admins: [198.18.1.0/24, "2001:db8:1::/64"]
inbound:
  - service: ssh
    from: admins
  - service: http
"""
# A live ruleset that admits what the candidate does and more (mysql, dns).
LIVE = """\
description: live
extends: base
inbound:
  - service: ssh
  - service: http
  - service: mysql
  - {port: 53/udp, name: dns}
"""
# A permissive live ruleset: an admin's table that accepts everything.
ADMIN = """\
table inet admin
delete table inet admin
table inet admin {
	chain input {
		type filter hook input priority filter; policy accept;
	}
}
"""


def fwgen(lab: Lab, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["ip", "netns", "exec", lab.server, sys.executable, "-m", "fwgen", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def ruleset(lab: Lab, stateless: bool = True) -> str:
    """The server's ruleset without the timers of set elements, which run down; *stateless*:
    without counter values either."""
    text = lab.run(lab.server, "nft", *(["-s"] if stateless else []), "list", "ruleset")
    return re.sub(r" expires [0-9dhms]+", "", text)


def without_shadow(text: str) -> str:
    """`nft list ruleset` output without the table inet fwgen_shadow."""
    start = text.index("table inet fwgen_shadow {")
    end = text.index("\n}\n", start) + 3
    return text[:start] + text[end:]


def render(lab: Lab, profile: Path, target: str) -> dict[str, str]:
    from fwgen.cli.common import load_policies, site_ports
    from fwgen.targets.render import render as render_policy

    (policy,) = load_policies([str(profile)], None, site_ports(None))
    return render_policy(policy, target)


@pytest.mark.parametrize("live", ["permissive", "fwgen"])
def test_nftables_shadow(lab: Lab, tmp_path: Path, live: str) -> None:
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CANDIDATE)
    live_profile = tmp_path / "live.yaml"
    live_profile.write_text(LIVE)
    lab.listen(PORTS)
    reload = ADMIN if live == "permissive" else render(lab, live_profile, "nftables")["fwgen.nft"]
    lab.nft(reload)
    before = lab.matrix(PORTS)
    live_rules = ruleset(lab)

    fwgen(lab, "shadow", "start", str(candidate), "-t", "nftables")
    assert "table inet fwgen_shadow" in ruleset(lab)
    # every cell of the live firewall is unchanged: the shadow changed no verdict
    assert lab.matrix(PORTS) == before
    # a reload of the live rules leaves the shadow alone
    lab.nft(reload)
    report = json.loads(fwgen(lab, "shadow", "report", str(candidate), "--format", "json").stdout)
    groups = {(g["service"], g["proto"], g["port"]): g for g in report["groups"]}
    # what the candidate does not admit, whether the live firewall admits it or not: the
    # shadow sees every new connection before any filter chain decides
    assert before["outside", "ipv4", "tcp:22"] == "open"
    expected = {
        ("mysql", "tcp", 3306): 4,  # both clients, both families
        ("postgresql", "tcp", 5432): 4,
        ("dns", "udp", 53): 4,
        ("ssh", "tcp", 22): 2,  # `outside` only: `trusted` is in admins
        ("mdns", "udp", 5353): 4,
    }
    assert {k: g["connections"] for k, g in groups.items()} == expected
    assert ("http", "tcp", 80) not in groups
    outside = {n["network"] for n in groups["ssh", "tcp", 22]["networks"]}
    assert outside == {"198.18.2.2/32", "2001:db8:2::/64"}
    mysql = groups["mysql", "tcp", 3306]
    assert "port: 3306/tcp" in mysql["suggestion"] and "198.18.1.2/32" in mysql["suggestion"]
    assert mysql["first_seen"] <= mysql["last_seen"]
    text = fwgen(lab, "shadow", "report", str(candidate)).stdout
    assert "mysql (3306/tcp, inbound; MySQL / MariaDB): 4 new connections" in text

    loaded = ruleset(lab, stateless=False)
    assert fwgen(lab, "shadow", "stop", "-t", "nftables").stdout.startswith("fwgen: shadow of")
    # the live ruleset byte for byte: its rules as before the shadow, its state (counters,
    # set elements) as just before the stop
    assert ruleset(lab) == live_rules
    assert ruleset(lab, stateless=False) == without_shadow(loaded)
    assert "no shadow" in fwgen(lab, "shadow", "stop").stdout


def test_full_shadow_says_so(lab: Lab, tmp_path: Path) -> None:
    """A set of 16 keys, 40 ports probed: 16 recorded, the rest counted as unrecorded."""
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text("description: nothing\nextends: base\ninbound: []\n")
    fwgen(lab, "shadow", "start", str(candidate), "--size", "16")
    specs = [f"tcp:{port}" for port in range(10000, 10040)]
    lab.probe("trusted", "ipv4", specs)
    report = json.loads(fwgen(lab, "shadow", "report", str(candidate), "--format", "json").stdout)
    assert sum(g["connections"] for g in report["groups"]) == 16
    assert report["unrecorded"] == [{"direction": "in", "family": "ipv4", "connections": 24}]
    assert any("was full" in note for note in report["notes"])


def test_foreign_table_named_like_the_shadow(lab: Lab, tmp_path: Path) -> None:
    """A table inet fwgen_shadow that fwgen did not make is never replaced, read or removed."""
    lab.nft(
        "table inet fwgen_shadow {\n\tchain c {\n\t\ttype filter hook input priority 0;\n\t}\n}\n"
    )
    foreign = lab.run(lab.server, "nft", "list", "table", "inet", "fwgen_shadow")
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text("description: nothing\nextends: base\ninbound: []\n")
    for args in (["start", str(candidate)], ["report", str(candidate)], ["stop"]):
        result = fwgen(lab, "shadow", *args, check=False)
        assert result.returncode == 2 and "not a shadow fwgen made" in result.stderr, result
    assert lab.run(lab.server, "nft", "list", "table", "inet", "fwgen_shadow") == foreign


HITS = """\
description: hits
extends: base
networks:
  admins: [198.18.1.0/24, "2001:db8:1::/64"]
inbound:
  - service: ssh
    from: admins
  - service: http
  - service: mysql
    from: admins
"""


@pytest.mark.parametrize("target", ["nftables", "iptables"])
def test_hits_count_real_connections(lab: Lab, tmp_path: Path, target: str) -> None:
    profile = tmp_path / "hits.yaml"
    profile.write_text(HITS)
    lab.listen(["tcp:22", "tcp:80", "tcp:3306"])
    lab.apply(target, render(lab, profile, target))
    for _ in range(3):
        assert lab.probe("trusted", "ipv4", ["tcp:22"]) == {"tcp:22": "open"}
    assert lab.probe("trusted", "ipv6", ["tcp:22", "tcp:80"]) == {
        "tcp:22": "open",
        "tcp:80": "open",
    }
    assert lab.probe("outside", "ipv4", ["tcp:80", "tcp:3306"]) == {
        "tcp:80": "open",
        "tcp:3306": "blocked",
    }
    found = json.loads(fwgen(lab, "hits", str(profile), "-t", target, "--format", "json").stdout)
    rules = {r["name"]: r for r in found["rules"]}
    assert {n: rules[n]["connections"] for n in ("ssh", "http", "mysql")} == {
        "ssh": 4,
        "http": 2,
        "mysql": 0,
    }
    assert rules["mysql"]["unused"] and not rules["ssh"]["unused"]
    assert rules["ssh"]["origin"].endswith("hits.yaml:6")
    assert found["notes"] == []  # every rule fwgen rendered is found as the kernel prints it
    if target == "nftables":
        assert found["loaded_at"] is not None
    text = fwgen(lab, "hits", str(profile), "-t", target).stdout
    assert "ssh (" in text and "4 new connections" in text and "no hits" in text
    sarif = json.loads(fwgen(lab, "hits", str(profile), "-t", target, "--format", "sarif").stdout)
    results = sarif["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {"FW023"}
    assert any("mysql" in r["message"]["text"] for r in results)


COPY = {  # another program's rule ahead of fwgen's, taking its SSH and copying its comment
    "nftables": [
        "nft", "insert", "rule", "inet", "fwgen", "input", "tcp", "dport", "22", "counter",
        "accept", "comment", '"ssh: Secure Shell"',
    ],
    "iptables": [
        "iptables", "-I", "INPUT", "1", "-p", "tcp", "--dport", "22", "-m", "comment",
        "--comment", "ssh: Secure Shell", "-j", "ACCEPT",
    ],
}  # fmt: skip


@pytest.mark.parametrize("target", ["nftables", "iptables"])
def test_hits_credit_no_rule_that_copies_fwgens_comment(
    lab: Lab, tmp_path: Path, target: str
) -> None:
    """The connections another program's rule admits (first in the chain, with the comment
    of fwgen's ssh rule) are not fwgen's rule's hits: they are said to be someone else's."""
    profile = tmp_path / "hits.yaml"
    profile.write_text(HITS)
    lab.listen(["tcp:22"])
    lab.apply(target, render(lab, profile, target))
    lab.run(lab.server, *COPY[target])
    for _ in range(3):
        assert lab.probe("trusted", "ipv4", ["tcp:22"]) == {"tcp:22": "open"}
    found = json.loads(fwgen(lab, "hits", str(profile), "-t", target, "--format", "json").stdout)
    rules = {r["name"]: r for r in found["rules"]}
    assert rules["ssh"]["connections"] == 0 and rules["ssh"]["unused"]
    assert found["notes"] == [
        "1 rules outside fwgen's own carry the comment of one of its rules (another "
        "program's?); not counted"
    ]


def saved(lab: Lab) -> str:
    """Every table of both families and the ipsets, as their tools print them (no counters)."""
    return "".join(
        lab.run(lab.server, tool) for tool in ("iptables-save", "ip6tables-save")
    ) + lab.run(lab.server, "ipset", "list", "-n")


def without_dates(text: str) -> str:
    """*saved* without its dated comments and policy counters, and without a mangle table that holds no rule:
    iptables-nft keeps the (empty) table the shadow's chains were in, which changes nothing."""
    text = re.sub(r"\[\d+:\d+\]", "[0:0]", re.sub(r"(?m)^#.*\n", "", text))
    return re.sub(r"\*mangle\n(:[A-Z]+ ACCEPT \[0:0\]\n)*COMMIT\n", "", text)


@pytest.mark.parametrize("live", ["permissive", "fwgen", "fwgen+docker"])
def test_iptables_shadow(lab: Lab, tmp_path: Path, live: str) -> None:
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CANDIDATE)
    live_profile = tmp_path / "live.yaml"
    live_profile.write_text(LIVE)
    lab.listen(PORTS)
    if live.startswith("fwgen"):
        lab.apply("iptables", render(lab, live_profile, "iptables"))
    if live.endswith("docker"):
        lab.docker_rules()
    before = lab.matrix(PORTS)
    live_rules = without_dates(saved(lab))

    fwgen(lab, "shadow", "start", str(candidate), "-t", "iptables")
    assert "FWGEN-SHADOW-IN" in lab.run(lab.server, "iptables-save", "-t", "mangle")
    assert lab.matrix(PORTS) == before  # the shadow changed no verdict
    if live == "fwgen":  # a reload of the live rules leaves the shadow alone
        lab.apply("iptables", render(lab, live_profile, "iptables"))
    args = ["shadow", "report", str(candidate), "-t", "iptables", "--format", "json"]
    report = json.loads(fwgen(lab, *args).stdout)
    groups = {(g["service"], g["proto"], g["port"]): g for g in report["groups"]}
    assert {k: g["connections"] for k, g in groups.items()} == {
        ("mysql", "tcp", 3306): 4,
        ("postgresql", "tcp", 5432): 4,
        ("dns", "udp", 53): 4,
        ("ssh", "tcp", 22): 2,
        ("mdns", "udp", 5353): 4,
    }
    outside = {n["network"] for n in groups["ssh", "tcp", 22]["networks"]}
    assert outside == {"198.18.2.2/32", "2001:db8:2::/64"}
    mysql = groups["mysql", "tcp", 3306]
    assert mysql["first_seen"] is not None and mysql["first_seen"] <= mysql["last_seen"]
    assert report["loaded_at"] is not None and report["unrecorded"] == []

    assert "removed" in fwgen(lab, "shadow", "stop", "-t", "iptables").stdout
    assert without_dates(saved(lab)) == live_rules  # every table and set as before
    assert "no shadow" in fwgen(lab, "shadow", "stop", "-t", "iptables").stdout


def test_iptables_full_shadow_says_so(lab: Lab, tmp_path: Path) -> None:
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text("description: nothing\nextends: base\ninbound: []\n")
    fwgen(lab, "shadow", "start", str(candidate), "-t", "iptables", "--size", "16")
    lab.probe("trusted", "ipv4", [f"tcp:{port}" for port in range(10000, 10040)])
    args = ["shadow", "report", str(candidate), "-t", "iptables", "--format", "json"]
    report = json.loads(fwgen(lab, *args).stdout)
    assert sum(g["connections"] for g in report["groups"]) == 16
    assert report["unrecorded"] == [{"direction": "in", "family": "ipv4", "connections": 24}]


def test_iptables_foreign_chain_named_like_the_shadow(lab: Lab, tmp_path: Path) -> None:
    lab.run(lab.server, "iptables", "-t", "mangle", "-N", "FWGEN-SHADOW-IN")
    lab.run(lab.server, "iptables", "-t", "mangle", "-A", "FWGEN-SHADOW-IN", "-j", "RETURN")
    foreign = without_dates(saved(lab))
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text("description: nothing\nextends: base\ninbound: []\n")
    for args in (["start", str(candidate)], ["report", str(candidate)], ["stop"]):
        result = fwgen(lab, "shadow", *args, "-t", "iptables", check=False)
        assert result.returncode == 2 and "not a shadow fwgen made" in result.stderr, result
    assert without_dates(saved(lab)) == foreign


OUTBOUND = Path(__file__).parents[1] / "data/kernel/outbound.yaml"


@pytest.mark.parametrize("target", ["nftables", "iptables"])
def test_outbound_shadow(lab: Lab, target: str) -> None:
    """A profile that denies outbound: what the host sends and the profile would not let
    out is recorded by destination, and the datagrams still go (no verdict changed)."""
    fwgen(lab, "shadow", "start", str(OUTBOUND), "-t", target)
    specs = ["198.18.1.2,8443,40001", "198.18.1.2,9999,40002", "2001:db8:1::2,9999,40003"]
    assert lab.send("trusted", specs) == {spec: "sent" for spec in specs}
    args = ["shadow", "report", str(OUTBOUND), "-t", target, "--format", "json"]
    report = json.loads(fwgen(lab, *args).stdout)
    found = {
        (g["direction"], g["proto"], g["port"]): sorted(n["network"] for n in g["networks"])
        for g in report["groups"]
    }
    assert found == {  # 8443 is open to trusted over TCP only
        ("out", "udp", 9999): ["198.18.1.2/32", "2001:db8:1::/64"],
        ("out", "udp", 8443): ["198.18.1.2/32"],
    }
    group = report["groups"][0]
    assert "outbound:" in group["suggestion"] and "to: [" in group["suggestion"]
    fwgen(lab, "shadow", "stop", "-t", target)


def test_hits_on_ufw(lab: Lab, tmp_path: Path) -> None:
    """ufw: its own rules (http, mysql) by their place in user.rules, fwgen's block in
    before.rules (ICMP) by comment; read over the private copies of /etc/ufw."""
    profile = tmp_path / "hits.yaml"
    profile.write_text(HITS)
    lab.listen(["tcp:22", "tcp:80", "tcp:3306"])
    lab.apply("ufw", render(lab, profile, "ufw"))
    for _ in range(3):
        assert lab.probe("trusted", "ipv4", ["tcp:22"]) == {"tcp:22": "open"}
    assert lab.probe("trusted", "ipv6", ["tcp:22", "tcp:80"]) == {
        "tcp:22": "open",
        "tcp:80": "open",
    }
    assert lab.probe("outside", "ipv4", ["tcp:80", "tcp:3306"]) == {
        "tcp:80": "open",
        "tcp:3306": "blocked",
    }
    assert lab.ping("trusted", "ipv4") == "open"
    command = [*lab.ufw_root(), sys.executable, "-m", "fwgen", "hits", str(profile), "-t", "ufw"]
    out = lab.run(lab.server, *command, "--format", "json")
    report = json.loads(out)
    assert report["notes"] == []  # fwgen's block found in both families, as rendered
    rules = {r["name"]: r for r in report["rules"]}
    found = {n: rules[n]["connections"] for n in ("ssh", "http", "mysql")}
    assert found == {"ssh": 4, "http": 2, "mysql": 0}
    assert rules["ping"]["connections"] >= 1 and rules["mysql"]["unused"]


def test_iptables_shadow_after_a_load_that_flushed_mangle(lab: Lab, tmp_path: Path) -> None:
    """A load with --flush-ruleset empties the mangle table: the shadow's chains go, its
    sets stay. The report says no shadow is loaded; stop and start clear the leftovers."""
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CANDIDATE)
    fwgen(lab, "shadow", "start", str(candidate), "-t", "iptables")
    for tool in ("iptables", "ip6tables"):
        lab.run(lab.server, tool, "-t", "mangle", "-F")
        lab.run(lab.server, tool, "-t", "mangle", "-X")
    assert "fwgen-shadow-count-in-v4" in lab.run(lab.server, "ipset", "list", "-n")
    result = fwgen(lab, "shadow", "report", str(candidate), "-t", "iptables", check=False)
    assert result.returncode == 2 and "no shadow is loaded" in result.stderr
    fwgen(lab, "shadow", "start", str(candidate), "-t", "iptables")
    assert "FWGEN-SHADOW-IN" in lab.run(lab.server, "iptables-save", "-t", "mangle")
    fwgen(lab, "shadow", "stop", "-t", "iptables")
    assert "fwgen-shadow" not in lab.run(lab.server, "ipset", "list", "-n")
    lab.run(lab.server, "ipset", "create", "fwgen-shadow-count-in-v4", "hash:ip")
    result = fwgen(lab, "shadow", "start", str(candidate), "-t", "iptables", check=False)
    assert result.returncode == 2 and "without its chains or its mark" in result.stderr


@pytest.mark.parametrize("target", ["nftables", "iptables"])
def test_hits_find_every_rule_of_every_built_in_profile(lab: Lab, target: str) -> None:
    """What the kernel prints back (iptables-save reorders options, abbreviates rates,
    names protocols; nft lists JSON) is recognised as the rules fwgen rendered: loaded,
    every built-in profile has each of its rules in the live ruleset and nothing to say."""
    names = sorted(p.stem for p in Path("profiles").glob("*.yaml") if p.stem != "base")
    assert len(names) >= 13
    for name in names:
        for tool in ("iptables", "ip6tables") if target == "iptables" else ():
            lab.run(lab.server, tool, "-F")  # coexist mode loads beside what is there
            lab.run(lab.server, tool, "-X")
        lab.apply(target, render(lab, Path(name), target))
        out = fwgen(lab, "hits", name, "-t", target, "--format", "json").stdout
        report = json.loads(out)
        assert report["notes"] == [], (name, report["notes"])
        assert all(r["in_live_ruleset"] for r in report["rules"]), name
