from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.policy.resolve import resolve_profile
from fwgen.profile.portdb import catalogue
from fwgen.review.check import check_policy
from tests.conftest import BUILTIN, INTERFACES_TO_SET, NETWORKS_TO_SET, placeholder_sets

runner = CliRunner()
SCHEMA = json.loads(Path("tests/data/sarif-2.1.0-results.schema.json").read_text())


def codes(profile: str) -> list[tuple[str, str | None]]:
    return [(f.code, f.service) for f in check_policy(resolve_profile(profile), catalogue())]


def test_backdoor_port_is_an_error_naming_back_orifice() -> None:
    result = runner.invoke(app, ["check", "tests/data/review/backdoor.yaml"])
    assert result.exit_code == 1
    line = next(x for x in result.stdout.splitlines() if "FW001" in x)
    assert line.startswith("tests/data/review/backdoor.yaml:5: error FW001 [back-orifice]: ")
    assert "Back Orifice" in line


def test_a_port_inside_a_backdoor_range_is_fw001(write_profile: Callable[..., Path]) -> None:
    path = write_profile(
        """\
        description: x
        inbound:
          - {port: 3150/tcp, name: thing, allow_risky: "a lab honeypot"}
          - {service: socks, from: [10.0.0.0/8], allow_risky: "the office proxy"}
        """
    )
    found = codes(str(path))
    assert ("FW001", "mydoom") in found
    assert ("FW001", "socks-backdoors") in found
    assert ("FW004", "socks") in found  # the service itself is still judged as what it is


def test_lan_only_service_from_any_warns_with_the_word_lan() -> None:
    result = runner.invoke(app, ["check", "tests/data/review/mysql-any.yaml"])
    assert result.exit_code == 0  # warnings only
    line = next(x for x in result.stdout.splitlines() if "FW002" in x)
    assert (
        "LAN" in line
        and "mysql" in line
        and line.startswith("tests/data/review/mysql-any.yaml:5: warning")
    )
    strict = runner.invoke(app, ["check", "tests/data/review/mysql-any.yaml", "--strict"])
    assert strict.exit_code == 1


@pytest.mark.parametrize("profile", BUILTIN)
def test_builtin_profiles_have_no_warnings_once_their_placeholders_are_set(profile: str) -> None:
    networks = NETWORKS_TO_SET[profile]
    sets = placeholder_sets(profile, "10.1.0.0/16,fd00:1::/48")
    result = runner.invoke(app, ["check", profile, "--strict", *sets])
    if profile == "kubernetes-node":
        # kube-proxy DNATs NodePorts past the input rules, as Docker does published
        # ports: FW015 says so, on purpose, and is its only warning
        assert "0 errors, 1 warning" in result.stdout and "warning FW015" in result.stdout
        return
    assert result.exit_code == 0, result.stdout
    assert "0 errors, 0 warnings" in result.stdout
    placeholders = runner.invoke(app, ["check", profile, "--strict"])
    assert placeholders.exit_code == (1 if networks else 0), placeholders.stdout
    groups = INTERFACES_TO_SET.get(profile, [])
    for group in groups:  # each empty interface group warns until it is set
        assert f"interface group '{group}' is empty" in placeholders.stdout
    idle = {"app", "lan"} if groups else set()  # used only on the empty group: FW019 says it
    for network in set(networks) - idle:  # each placeholder network warns until it is set
        assert f"from network '{network}'), placeholders" in placeholders.stdout


def test_findings(write_profile: Callable[..., Path]) -> None:
    path = write_profile(
        """\
        description: x
        networks: {lan: [10.0.0.0/8], nobody: []}
        inbound:
          - {service: telnet, from: lan}
          - {service: ssh, from: lan}
          - {service: ssh}
          - {service: nfs, from: [8.8.8.0/24]}
          - {service: mysql, from: nobody}
        outbound:
          - {service: https}
        """
    )
    found = codes(str(path))
    assert ("FW003", "telnet") in found  # cleartext, use ssh
    assert ("FW005", "telnet") in found  # critical
    assert ("FW007", "ssh") in found  # ssh from lan is shadowed by ssh from any
    assert ("FW002", "nfs") in found  # lan-only from a public range
    assert ("FW008", None) in found  # empty network
    assert ("FW009", None) in found  # outbound deny without DNS
    assert ("FW006", None) not in found  # ssh is reachable


def test_no_remote_management_on_a_server_warns_of_lockout(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile("description: x\ninbound: [{service: https}]\n")
    assert ("FW006", None) in codes(str(path))


def test_json_output_shape() -> None:
    result = runner.invoke(app, ["check", "tests/data/review/backdoor.yaml", "--format", "json"])
    data = json.loads(result.stdout)
    assert list(data) == ["findings"]
    for finding in data["findings"]:
        assert set(finding) == {
            "code",
            "level",
            "message",
            "location",
            "service",
            "ports",
            "accepted",
        }
    error = next(f for f in data["findings"] if f["code"] == "FW001")
    assert error["ports"] == ["31337/tcp"] and error["level"] == "error"


def test_sarif_output_validates_against_the_schema() -> None:
    result = runner.invoke(
        app, ["check", "tests/data/review/backdoor.yaml", "webserver", "--format", "sarif"]
    )
    assert result.exit_code == 1
    log = json.loads(result.stdout)
    jsonschema.validate(log, SCHEMA)
    run = log["runs"][0]
    rule_ids = {r["id"] for r in run["tool"]["driver"]["rules"]}
    assert {r["ruleId"] for r in run["results"]} <= rule_ids
    error = next(r for r in run["results"] if r["ruleId"] == "FW001")
    assert error["level"] == "error"
    assert error["locations"][0]["physicalLocation"]["region"]["startLine"] == 5


def test_schema_rejects_a_broken_log() -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]}, SCHEMA)


# -------------------------------------------------------------- accepted findings

ACCEPTING = """\
description: legacy host
extends: base
inbound:
  - {service: ssh, from: [10.0.0.0/8]}
  - service: telnet
    from: [10.9.0.0/16]
    accept: {FW003: "the PLCs on this line speak only telnet", FW005: "isolated VLAN"}
  - port: 31337/tcp
    name: elite
    allow_risky: "sinkhole for a malware study"
"""


def test_an_acknowledged_backdoor_is_info_with_its_reason(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile(ACCEPTING)
    result = runner.invoke(app, ["check", str(path), "--strict"])
    assert result.exit_code == 0, result.stdout
    lines = result.stdout.splitlines()
    assert (
        "host.yaml:8: info FW001 [back-orifice]: back-orifice (Back Orifice) is never to be opened"
        in result.stdout
    )
    backdoor = next(line for line in lines if "FW001" in line)
    assert backdoor.endswith('(accepted: "sinkhole for a malware study")')
    assert lines[-1] == "0 errors, 0 warnings, 3 info"


def test_accepted_findings_are_info_with_their_reasons(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile(ACCEPTING)
    data = json.loads(runner.invoke(app, ["check", str(path), "--format", "json"]).stdout)
    telnet = {f["code"]: f for f in data["findings"] if f["service"] == "telnet"}
    assert telnet["FW003"]["level"] == "info"
    assert telnet["FW003"]["accepted"] == "the PLCs on this line speak only telnet"
    assert telnet["FW005"]["accepted"] == "isolated VLAN"
    assert telnet["FW003"]["location"] == "host.yaml:5"
    # without the accept: the same findings are warnings, and --strict fails
    (path.parent / "bare").mkdir()
    bare = path.parent / "bare" / "host.yaml"
    bare.write_text(ACCEPTING.replace("    accept:", "    # accept:"))
    result = runner.invoke(app, ["check", str(bare), "--strict"])
    assert result.exit_code == 1
    assert "host.yaml:5: warning FW003 [telnet]" in result.stdout
    # accepting a finding changes no rendered byte
    rendered = [
        runner.invoke(app, ["render", str(p), "-t", "nftables"]).stdout for p in (path, bare)
    ]
    assert rendered[0] == rendered[1] and "telnet" in rendered[0]


def test_sarif_marks_accepted_findings_as_suppressed(write_profile: Callable[..., Path]) -> None:
    path = write_profile(ACCEPTING)
    result = runner.invoke(app, ["check", str(path), "--format", "sarif"])
    assert result.exit_code == 0
    log = json.loads(result.stdout)
    jsonschema.validate(log, SCHEMA)
    results = {r["ruleId"]: r for r in log["runs"][0]["results"]}
    assert results["FW001"]["level"] == "error"  # what it is; the suppression says why it passes
    assert results["FW001"]["suppressions"] == [
        {"kind": "inSource", "justification": "sinkhole for a malware study"}
    ]
    assert results["FW003"]["suppressions"][0]["justification"].startswith("the PLCs")
    unaccepted = runner.invoke(app, ["check", "webserver", "--format", "sarif"]).stdout
    assert all("suppressions" not in r for r in json.loads(unaccepted)["runs"][0]["results"])


@pytest.mark.parametrize(
    ("accept", "message"),
    [
        ("{FW0009: why}", "unknown finding code 'FW0009' (did you mean 'FW009'?)"),
        ('{FW003: ""}', "accepting FW003 needs a reason: say why it is acceptable here"),
        (
            "[FW003]",
            "write accept: {CODE: {SERVICE: reason}}, e.g. {FW003: {ftp: why it is acceptable "
            "here}}",
        ),
        (
            "{FW001: why}",
            'a backdoor port (FW001) is acknowledged with `allow_risky: "why"` on the rule, '
            "not with accept",
        ),
        (
            "{FW006: why}",
            "finding FW006 is about the whole profile, not one rule; it cannot be accepted here",
        ),
    ],
)
def test_a_bad_accept_is_a_located_error(
    write_profile: Callable[..., Path], accept: str, message: str
) -> None:
    path = write_profile(f"description: x\ninbound:\n  - service: telnet\n    accept: {accept}\n")
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 2
    assert result.stderr == f"error: host.yaml:4: inbound[0].accept: {message}\n"


TWO = "description: x\ninbound:\n  - service: [ftp, telnet]\n    from: [10.9.0.0/16]\n"


def test_accept_names_the_service_it_accepts(write_profile: Callable[..., Path]) -> None:
    path = write_profile(TWO + '    accept: {FW003: {ftp: "the scanners send over FTP"}}\n')
    data = json.loads(runner.invoke(app, ["check", str(path), "--format", "json"]).stdout)
    fw003 = {f["service"]: f for f in data["findings"] if f["code"] == "FW003"}
    assert fw003["ftp"]["level"] == "info"
    assert fw003["ftp"]["accepted"] == "the scanners send over FTP"
    assert fw003["telnet"]["level"] == "warning" and fw003["telnet"]["accepted"] is None
    assert runner.invoke(app, ["check", str(path), "--strict"]).exit_code == 1
    sarif = json.loads(runner.invoke(app, ["check", str(path), "--format", "sarif"]).stdout)
    jsonschema.validate(sarif, SCHEMA)
    suppressed = [r["message"]["text"] for r in sarif["runs"][0]["results"] if "suppressions" in r]
    assert len(suppressed) == 1 and "ftp" in suppressed[0] and "telnet" not in suppressed[0]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            TWO + '    accept: {FW003: "both are fine"}\n',
            "host.yaml:5: inbound[0].accept: one reason for FW003 would accept it for everything "
            "this rule opens (ftp, telnet); name the service it is accepted for: "
            "accept: {FW003: {SERVICE: why}}",
        ),
        (
            "description: x\ninbound:\n  - {port: 1-1000/tcp, name: low, accept: {FW003: why}}\n",
            "host.yaml:3: inbound[0].accept: one reason for FW003 would accept it for everything "
            "this rule opens (1-1000/tcp); name the service it is accepted for: "
            "accept: {FW003: {SERVICE: why}}",
        ),
        (
            TWO + "    accept: {FW003: {ssh: why}}\n",
            "host.yaml:5: inbound[0].accept: FW003: this rule does not open 'ssh'; name one of "
            "its services (ftp, telnet)",
        ),
        (
            TWO + "    accept: {FW003: {}}\n",
            "host.yaml:5: inbound[0].accept: no service named for FW003: name one and why, or "
            "leave FW003 out",
        ),
    ],
)
def test_an_accept_that_could_mean_more_is_a_located_error(
    write_profile: Callable[..., Path], rule: str, message: str
) -> None:
    result = runner.invoke(app, ["check", str(write_profile(rule))])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {message}\n"


def test_a_port_range_accepts_for_the_services_it_names(
    write_profile: Callable[..., Path],
) -> None:
    rule = "description: x\ninbound:\n  - {port: 1-1000/tcp, name: low, from: [10.0.0.0/8], "
    path = write_profile(rule + "accept: {FW003: {telnet: old PLCs}}}\n")
    data = json.loads(runner.invoke(app, ["check", str(path), "--format", "json"]).stdout)
    fw003 = {f["service"]: f["level"] for f in data["findings"] if f["code"] == "FW003"}
    assert fw003["telnet"] == "info"
    assert {level for service, level in fw003.items() if service != "telnet"} == {"warning"}


# -------------------------------------------------------------- the host's own networking


@pytest.mark.parametrize(
    ("profile", "found"),
    [
        # without base: IPv6 neighbour discovery (and router advertisements) dropped
        ("inbound: [{service: ssh}]\n", ["FW016"]),
        ("inbound: [{service: ssh}]\noptions: {address: static}\n", ["FW016"]),
        # replies to the host's own connections, and its loopback traffic
        ("extends: base\noptions: {established: false}\n", ["FW017"]),
        ("extends: base\noptions: {loopback: false}\n", ["FW018"]),
        ("extends: base\noptions: {established: false, loopback: false}\n", ["FW017", "FW018"]),
        # neighbour discovery written by hand, but only from some addresses
        (
            "inbound:\n  - {icmpv6: [nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert,"
            " mld-listener-query], from: [fe80::/10]}\n",
            ["FW016"],
        ),
        # without MLD queries, a switch that snoops MLD stops sending the solicitations
        (
            "inbound: [{icmpv6: [nd-neighbor-solicit, nd-neighbor-advert]}]\n"
            "options: {address: static}\n",
            ["FW016"],
        ),
        # written by hand from any address: enough (a static host needs no router adverts)
        (
            "inbound:\n  - {icmpv6: [nd-neighbor-solicit, nd-neighbor-advert]}\n"
            "  - {icmpv6: [mld-listener-query], from: [fe80::/10]}\n"
            "options: {address: static}\n",
            [],
        ),
        ("extends: base\n", []),
    ],
)
def test_what_cuts_the_host_off_its_own_networking_is_reported_and_fails_strict(
    write_profile: Callable[..., Path], profile: str, found: list[str]
) -> None:
    path = write_profile("description: x\n" + profile)
    result = runner.invoke(app, ["check", str(path), "--strict"])
    reported = sorted(
        {c for c in ("FW016", "FW017", "FW018") if f" warning {c}: " in result.stdout}
    )
    assert reported == found, result.stdout
    assert result.exit_code == (1 if found else 0), result.stdout


def test_neighbour_discovery_finding_says_what_is_dropped_and_the_fix(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile(
        "description: x\ninbound:\n  - {service: ssh}\n"
        "  - {icmpv6: [nd-neighbor-solicit, mld-listener-query]}\noptions: {address: static}\n"
    )
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 0  # a warning: --strict fails on it
    assert result.stdout == (
        "host.yaml:1: warning FW016: IPv6 neighbour discovery is dropped (nd-neighbor-advert "
        "not accepted): the host loses its IPv6 neighbours, so IPv6 connections (SSH too) "
        "die when the neighbour cache expires; add `extends: base`, or inbound rules for "
        "`icmpv6: [nd-neighbor-advert]` from any address (MLD queries: from fe80::/10)\n"
        "0 errors, 1 warning, 0 info\n"
    )


# -------------------------------------------------------------- FW007: shadows and duplicates

SHADOWS = """\
description: x
extends: base
networks:
  admins: [10.0.0.0/8]
  ops: [10.1.0.0/16]
inbound:
  - {service: ssh, from: 10.0.0.0/8}
  - {service: ssh, from: 10.0.0.0/8}
  - {service: ssh, from: admins}
  - {service: ssh, from: ops}
  - {service: ssh, from: admins}
  - {service: https, from: ops, host: 10.9.9.9}
  - {service: https, from: admins}
  - {service: imaps, from: admins, host: 10.9.9.9}
  - {service: imaps, from: ops}
  - {service: pop3s, from: [10.1.0.0/16, 192.168.0.0/16]}
  - {service: pop3s, from: admins}
  - {port: 5000-5010/tcp, name: app, from: admins}
  - {port: 5005/tcp, name: app-one, from: ops}
  - {port: 5005/udp, name: app-udp, from: ops}
  - {service: smtp, from: ops, limit: 10/minute}
  - {service: smtp, from: admins}
  - {service: submission, from: admins, limit: 10/minute}
  - {service: submission, from: ops}
"""


def test_fw007_finds_duplicates_and_rules_inside_wider_ones(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile(SHADOWS)
    result = runner.invoke(app, ["check", str(path)])
    found = [line for line in result.stdout.splitlines() if "FW007" in line]
    assert found == [
        "host.yaml:8: warning FW007 [ssh]: ssh duplicates ssh (host.yaml:7), which already "
        "accepts this traffic",
        "host.yaml:9: warning FW007 [ssh]: ssh duplicates ssh (host.yaml:7), which already "
        "accepts this traffic",
        "host.yaml:10: warning FW007 [ssh]: ssh is shadowed by ssh (host.yaml:7), which "
        "already accepts this traffic",
        "host.yaml:11: warning FW007 [ssh]: ssh duplicates ssh (host.yaml:9), which already "
        "accepts this traffic",
        # host: narrows the narrower rule only; the wider one takes every address
        "host.yaml:12: warning FW007 [https]: https is shadowed by https (host.yaml:13), which "
        "already accepts this traffic",
        "host.yaml:19: warning FW007: app-one is shadowed by app (host.yaml:18), which already "
        "accepts this traffic",
        # a rate-limited rule is shadowed by an unconditional one: its limit never applies
        "host.yaml:21: warning FW007 [smtp]: smtp is shadowed by smtp (host.yaml:22), which "
        "already accepts this traffic",
    ], result.stdout
    # not shadowed: imaps for one host address only; pop3s from a range outside admins;
    # another protocol; an unconditional rule beside a limited one that is wider


def test_fw007_stays_quiet_on_the_builtin_profiles() -> None:
    for profile in BUILTIN:
        assert "FW007" not in {c for c, _ in codes(profile)}, profile


def compared(ranges: list[tuple[int, int]]) -> int:
    """How many rule pairs FW007 compares in a Policy of one rule per port range, each
    from its own network (so none shadows another)."""
    from fwgen.policy.ir import AddressSet, Policy, PortRange, Rule
    from fwgen.policy.ir import Defaults as PolicyDefaults
    from fwgen.review.shadows import Shadows

    sets = tuple(
        AddressSet(name=f"s{i}", ipv4=(f"10.{i >> 8}.{i & 255}.0/24",), origin="p:1")
        for i in range(len(ranges))
    )
    rules = tuple(
        Rule(
            direction="in",
            proto="tcp",
            ports=(PortRange(start=start, end=end),),
            remote=f"s{i}",
            families=("ipv4",),
            name=f"r{i}",
            origin=f"p.yaml:{i + 2}",
        )
        for i, (start, end) in enumerate(ranges)
    )
    policy = Policy(
        profile="p",
        description="",
        files=("p.yaml",),
        defaults=PolicyDefaults(),
        sets=sets,
        rules=rules,
    )
    shadows = Shadows(policy)
    assert all(shadows.find(rule) is None for rule in rules)
    return shadows.compared


def test_fw007_compares_each_rule_with_few_others() -> None:
    ports = [1000 + i % 500 for i in range(3000)]
    # each port is shared by 6 rules: a rule is compared with those 5, never with all 2,999
    assert compared([(p, p) for p in ports]) == 3000 * 5


def test_fw007_compares_rules_of_wide_port_ranges_with_few_others() -> None:
    # each rule a range of 1,000 ports, in 20 places 3,000 ports apart
    starts = [1024 + 3000 * (i % 20) for i in range(2000)]
    # the 100 rules of each place share a block, but each is from its own network: which
    # of them could cover a rule is found by its address, so no pair is compared at all
    assert compared([(s, s + 999) for s in starts]) == 0


def test_fw007_finds_the_rules_whose_sources_hold_a_rule_by_address() -> None:
    # 40 rules on one port, each from its own network: none is compared with another
    assert compared([(22, 22)] * 40) == 0


def test_each_finding_is_printed_once_with_all_its_ports() -> None:
    result = runner.invoke(app, ["check", "dns-resolver"])
    lines = result.stdout.splitlines()
    assert len(lines) == len(set(lines)), result.stdout
    assert sum(" FW004 " in line for line in lines) == 1
    kube = runner.invoke(app, ["check", "kubernetes-node"]).stdout.splitlines()
    assert len(kube) == len(set(kube)) and sum(" FW001 [back-orifice]" in x for x in kube) == 1
    data = json.loads(runner.invoke(app, ["check", "dns-resolver", "--format", "json"]).stdout)
    fw004 = [f for f in data["findings"] if f["code"] == "FW004"]
    assert [f["ports"] for f in fw004] == [["53/tcp", "53/udp"]]
