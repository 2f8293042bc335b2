"""audit and discover on real nmap and ss output captured from the kernel harness
(tests/kernel/audit_capture.py regenerates tests/data/audit/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.errors import FwgenError
from fwgen.host.audit import audit_scan
from fwgen.host.observed import Observed, read_nmap, read_ss
from fwgen.policy.resolve import resolve_profile
from fwgen.profile.portdb import catalogue

runner = CliRunner()
DATA = Path("tests/data/audit")
ADMINS = ["--set", "admins=198.18.1.2,2001:db8:1::2"]  # the trusted client of the harness
OUTSIDE = "198.18.2.2"


def audit(*args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["audit", "webserver", *ADMINS, *args, "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def test_host_that_matches_its_profile_has_no_drift() -> None:
    code, report = audit("--scan", str(DATA / "nmap-webserver-outside.xml"), "--from", OUTSIDE)
    assert code == 0 and report["drift"] is False
    kinds = {(i["kind"], i["port"]) for i in report["items"]}
    assert kinds == {("allowed-not-open", 22)}  # ssh is for admins only: filtered from outside
    message = report["items"][0]["message"]
    assert "admits only admins" in message and OUTSIDE in message


def test_scan_from_the_trusted_network_sees_ssh_open_without_drift() -> None:
    code, report = audit("--scan", str(DATA / "nmap-webserver-trusted.xml"), "--from", "198.18.1.2")
    assert code == 0 and report["items"] == []


def test_host_without_its_firewall_drifts() -> None:
    code, report = audit("--scan", str(DATA / "nmap-open.xml"), "--from", OUTSIDE)
    assert code == 1 and report["drift"] is True
    drift = sorted(i["port"] for i in report["items"] if i["kind"] == "drift")
    assert drift == [22, 3306, 47001]
    assert any(i["kind"] == "lan-only" and i["service"] == "mysql" for i in report["items"])


def test_text_output_and_ipv6_scan() -> None:
    result = runner.invoke(
        app,
        [
            "audit",
            "webserver",
            *ADMINS,
            "--scan",
            str(DATA / "nmap-webserver-outside-v6.xml"),
            "--from",
            "2001:db8:2::2",
        ],
    )
    assert result.exit_code == 0
    assert result.stdout.endswith("0 drift, 1 other finding(s)\n")
    assert "22/tcp (ipv6, ssh) is allowed" in result.stdout


def test_scan_without_from_cannot_judge_restricted_rules_but_says_so() -> None:
    code, report = audit("--scan", str(DATA / "nmap-open.xml"))
    kinds = {(i["kind"], i["port"]) for i in report["items"]}
    assert ("unjudged", 22) in kinds and ("drift", 3306) in kinds and code == 1


def test_listening_report() -> None:
    result = runner.invoke(
        app, ["audit", "webserver", *ADMINS, "--listening", str(DATA / "ss-tulpnH.txt")]
    )
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert (
        "info: *:3306/tcp by python listens but the profile does not allow it: only the default policy protects it"
        in lines
    )
    assert not any(":631/" in line for line in lines)  # loopback is ignored
    assert not any(
        "nothing listens" in line for line in lines
    )  # every allowed service has a listener


def test_listening_report_finds_allowed_services_without_listener() -> None:
    result = runner.invoke(
        app, ["audit", "mailserver", *ADMINS, "--listening", str(DATA / "ss-tulnH.txt")]
    )
    assert (
        "smtp (25/tcp, ipv4) is allowed" in result.stdout
        and "nothing listens on it" in result.stdout
    )


def test_discover_drafts_a_profile_that_check_and_render_accept(tmp_path: Path) -> None:
    draft = tmp_path / "draft.yaml"
    result = runner.invoke(
        app, ["discover", "--listening", str(DATA / "ss-tulpnH.txt"), "-o", str(draft)]
    )
    assert result.exit_code == 0
    text = draft.read_text()
    assert "extends: base" in text
    # Every listener of the capture is a python test server: named after it, not after the
    # service the port database has on that port, which the comment names instead.
    assert (
        "  - port: 22/tcp\n    name: python-22  # python listens; the port database calls "
        "22/tcp ssh (Secure Shell: risk medium, exposure public)\n" in text
    )
    assert (
        "  - port: 3306/tcp\n    name: python-3306  # python listens; the port database calls "
        "3306/tcp mysql (MySQL / MariaDB: risk high, exposure lan-only)\n    from: lan\n" in text
    )
    assert "  - port: 443/tcp\n    name: python-443-tcp  #" in text
    assert "  - port: 443/udp\n    name: python-443-udp  #" in text
    assert "  - port: 47001/tcp\n    name: python-47001  # not in the port database" in text
    assert "631" not in text
    assert runner.invoke(app, ["check", str(draft)]).exit_code == 0
    rendered = runner.invoke(app, ["render", str(draft), "-t", "nftables"])
    assert rendered.exit_code == 0 and "tcp dport 47001 counter accept" in rendered.stdout


def test_discover_names_a_service_after_the_program_that_usually_serves_it() -> None:
    ss = "".join(
        f'tcp LISTEN 0 128 *:{port} *:* users:(("{program}",pid=1,fd=3))\n'
        for port, program in (
            (22, "sshd"),
            (80, "nginx"),
            (443, "nginx"),
            (3306, "mysqld"),
            (9999, "python3"),
            (31337, "bo2k"),
        )
    )
    result = runner.invoke(app, ["discover", "--listening", "-"], input=ss)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "  - service: ssh  # Secure Shell" in out
    assert "  - service: http  #" in out and "  - service: https  #" in out
    assert (
        "  - service: mysql  # MySQL / MariaDB: risk high, exposure lan-only\n    from: lan" in out
    )
    # python3 on 9999 is not the smart plug the port database knows there
    assert (
        "  - port: 9999/tcp\n    name: python3  # python3 listens; the port database calls 9999/tcp"
        in out
    )
    assert "service: tplink" not in out
    assert "  # - port: 31337/tcp  # bo2k listens; back-orifice (" in out and "do not open" in out


def test_discover_without_process_names_and_from_stdin() -> None:
    text = (DATA / "ss-tulnH.txt").read_text()
    result = runner.invoke(app, ["discover", "--listening", "-"], input=text)
    assert result.exit_code == 0
    assert "  - port: 47001/tcp\n    name: port-47001" in result.stdout


def test_bad_inputs_are_user_errors(tmp_path: Path) -> None:
    bad = tmp_path / "scan.xml"
    bad.write_text("<html/>")
    result = runner.invoke(app, ["audit", "webserver", "--scan", str(bad)])
    assert result.exit_code == 2 and "not an nmap XML report" in result.stderr
    with pytest.raises(FwgenError, match="not `ss -tulpnH` output"):
        read_ss("hello world\n", "x")
    result = runner.invoke(app, ["audit", "webserver"])
    assert result.exit_code == 2 and "give one of --scan" in result.stderr
    result = runner.invoke(app, ["audit", "webserver", "--scan", "x.xml", "--from", "nope"])
    assert result.exit_code == 2


def test_readers_parse_the_fixtures() -> None:
    seen, scanned = read_nmap(DATA / "nmap-open.xml")
    assert scanned["tcp"] == {22, 80, 443, 3306, 8080, 47001}
    assert {(o.port, o.state) for o in seen} >= {(22, "open"), (8080, "closed")}
    listeners = read_ss((DATA / "ss-tulpnH.txt").read_text(), "ss")
    assert {(o.proto, o.port, o.process) for o in listeners} >= {
        ("tcp", 631, "python"),
        ("udp", 443, "python"),
    }


def test_a_port_inside_a_backdoor_range_is_a_backdoor_to_audit_and_discover() -> None:
    seen = [Observed("ipv4", "tcp", 3150, "open"), Observed("ipv4", "tcp", 3128, "open")]
    items = audit_scan(resolve_profile("webserver"), catalogue(), seen, {"tcp": {3128, 3150}}, None)
    found = {(i.port, i.kind, i.level, i.service) for i in items}
    assert {(3150, "never", "error", "mydoom"), (3128, "never", "error", "mydoom")} <= found
    assert (3150, "drift", "error", "mydoom") in found
    ss = "".join(
        f'tcp LISTEN 0 128 *:{port} *:* users:(("{program}",pid=1,fd=3))\n'
        for port, program in ((3150, "python3"), (3128, "squid"))
    )
    out = runner.invoke(app, ["discover", "--listening", "-"], input=ss).stdout
    assert "  # - port: 3150/tcp  # python3 listens; mydoom (MyDoom backdoor: " in out
    assert "  # - port: 3128/tcp  # squid listens; mydoom (" in out
    assert "do not open without an allow_risky reason" in out
    assert "service: squid" not in out


# ---------------------------------------------------------------- scans judged as nmap means them


def nmap_xml(address: str, ports: list[tuple[str, int, str]]) -> str:
    """A minimal nmap -oX report: one host, (proto, port, state) each scanned and reported."""
    family = "ipv6" if ":" in address else "ipv4"
    protos = sorted({proto for proto, _, _ in ports})
    infos = "".join(
        f'<scaninfo type="syn" protocol="{p}" numservices="1" '
        f'services="{",".join(str(n) for q, n, _ in ports if q == p)}"/>'
        for p in protos
    )
    rows = "".join(
        f'<port protocol="{p}" portid="{n}"><state state="{s}" reason="no-response"/></port>'
        for p, n, s in ports
    )
    return (
        f'<?xml version="1.0"?>\n<nmaprun scanner="nmap">{infos}'
        f'<host><address addr="{address}" addrtype="{family}"/><ports>{rows}</ports></host>'
        "</nmaprun>\n"
    )


def scan_report(tmp_path: Path, profile: str, xml: str, *args: str) -> tuple[int, list[Any]]:
    scan = tmp_path / "scan.xml"
    scan.write_text(xml)
    result = runner.invoke(app, ["audit", profile, "--scan", str(scan), *args, "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)["items"]


def test_open_filtered_udp_ports_are_not_open(tmp_path: Path) -> None:
    # nmap -sU on a host whose firewall drops 53, 123 and 161/udp: no answer either way
    xml = nmap_xml(
        "198.18.2.1",
        [
            ("udp", 53, "open|filtered"),
            ("udp", 123, "open|filtered"),
            ("udp", 161, "open|filtered"),
        ],
    )
    code, items = scan_report(tmp_path, "webserver", xml, *ADMINS, "--from", OUTSIDE)
    assert code == 0 and items == []
    # an allowed port that gave no answer is not confirmed open, and the report says why
    code, items = scan_report(
        tmp_path,
        "dns-resolver",
        nmap_xml("198.18.2.1", [("udp", 53, "open|filtered")]),
        "--set",
        "lan=198.18.2.0/24",
        "--set",
        "admins=198.18.1.0/24",
        "--from",
        "198.18.2.2",
    )
    assert code == 0
    assert [(i["kind"], i["port"]) for i in items] == [("allowed-not-open", 53)]
    assert "no answer (open|filtered)" in items[0]["message"]


def test_a_lan_only_port_scanned_from_the_network_allowed_is_not_a_warning(
    tmp_path: Path,
) -> None:
    sets = ("--set", "monitoring=198.18.3.0/24", "--set", "admins=198.18.1.0/24")
    xml = nmap_xml("198.18.2.1", [("tcp", 3000, "open"), ("tcp", 9100, "open")])
    code, items = scan_report(tmp_path, "monitoring", xml, *sets, "--from", "198.18.3.7")
    assert code == 0
    assert [i for i in items if i["port"] in (3000, 9100)] == []
    # from elsewhere the same open ports are drift, and LAN-only
    code, items = scan_report(tmp_path, "monitoring", xml, *sets, "--from", "203.0.113.9")
    found = {(i["kind"], i["port"]) for i in items}
    assert code == 1 and {("drift", 3000), ("lan-only", 3000), ("lan-only", 9100)} <= found


def host_profile(tmp_path: Path) -> str:
    profile = tmp_path / "host.yaml"
    profile.write_text(
        "description: x\nextends: base\ninbound:\n"
        "  - {port: 8443/tcp, name: admin-ui, host: 198.18.2.10}\n"
    )
    return str(profile)


def test_audit_honours_host(tmp_path: Path) -> None:
    profile = host_profile(tmp_path)
    # open at another address of the host than the rule's: the profile does not allow it
    code, items = scan_report(
        tmp_path, profile, nmap_xml("198.18.2.1", [("tcp", 8443, "open")]), "--from", OUTSIDE
    )
    assert code == 1 and [(i["kind"], i["port"]) for i in items] == [("drift", 8443)]
    code, items = scan_report(
        tmp_path, profile, nmap_xml("198.18.2.10", [("tcp", 8443, "open")]), "--from", OUTSIDE
    )
    assert code == 0 and items == []
    # shut at the rule's address is reported; shut elsewhere is what the rule says
    code, items = scan_report(
        tmp_path, profile, nmap_xml("198.18.2.10", [("tcp", 8443, "filtered")]), "--from", OUTSIDE
    )
    assert [(i["kind"], i["port"]) for i in items] == [("allowed-not-open", 8443)]
    code, items = scan_report(
        tmp_path, profile, nmap_xml("198.18.2.1", [("tcp", 8443, "filtered")]), "--from", OUTSIDE
    )
    assert code == 0 and items == []


def test_listening_honours_host(tmp_path: Path) -> None:
    ss = "tcp LISTEN 0 128 198.18.2.1:8443 0.0.0.0:*\ntcp LISTEN 0 128 198.18.2.10:8443 0.0.0.0:*\n"
    result = runner.invoke(app, ["audit", host_profile(tmp_path), "--listening", "-"], input=ss)
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if "8443" in line]
    assert lines == [
        "info: 198.18.2.1:8443/tcp listens but the profile does not allow it: only the default policy protects it"
    ]


LOOPBACK_SS = "".join(
    f"tcp LISTEN 0 128 {local}:{port} 0.0.0.0:*\n"
    for local, port in (
        ("[::ffff:127.0.0.1]", 8001),
        ("127.0.0.53%lo", 8002),
        ("127.3.4.5", 8003),
        ("[::1]", 8004),
        ("[0:0:0:0:0:0:0:1]", 8005),
        ("0.0.0.0%lo", 8006),
        ("[::ffff:7f00:1]", 8007),
        ("0.0.0.0", 8080),
    )
)


def test_discover_drafts_nothing_for_loopback_in_any_spelling() -> None:
    result = runner.invoke(app, ["discover", "--listening", "-"], input=LOOPBACK_SS)
    assert result.exit_code == 0, result.output
    assert "service: http-alt" in result.stdout
    assert not any(f"800{n}" in result.stdout for n in range(1, 8)), result.stdout


def test_audit_listening_ignores_loopback_in_any_spelling() -> None:
    result = runner.invoke(
        app, ["audit", "webserver", *ADMINS, "--listening", "-"], input=LOOPBACK_SS
    )
    assert "0.0.0.0:8080/tcp listens" in result.stdout
    assert not any(f":800{n}/" in result.stdout for n in range(1, 8)), result.stdout


NODE_EXPORTER = 'tcp LISTEN 0 4096 *:9100 *:* users:(("node_exporter",pid=7,fd=3))\n'


def test_discover_and_audit_give_9100_one_name() -> None:
    draft = runner.invoke(app, ["discover", "--listening", "-"], input=NODE_EXPORTER)
    assert "  - service: node-exporter  # Prometheus node exporter" in draft.stdout
    assert "exposure lan-only; 9100/tcp is also jetdirect\n" in draft.stdout
    unnamed = NODE_EXPORTER.replace(' users:(("node_exporter",pid=7,fd=3))', "")
    draft = runner.invoke(app, ["discover", "--listening", "-"], input=unnamed)
    assert (
        "  - service: jetdirect  # Raw printing (JetDirect): risk medium, exposure lan-only; 9100/tcp is also node-exporter\n"
        in draft.stdout
    )
    result = runner.invoke(
        app,
        ["audit", "webserver", *ADMINS, "--listening", "-", "--format", "json"],
        input=NODE_EXPORTER,
    )
    items = json.loads(result.stdout)["items"]
    assert [i["service"] for i in items if i["port"] == 9100] == ["node-exporter"]
    # the program decides between the entries naming a port, never against a backdoor's
    from fwgen.host.audit import port_service

    cat = catalogue()
    named = {
        (port, program): getattr(port_service(cat, "tcp", port, program), "name", None)
        for port, program in ((9100, "prometheus-node"), (9100, ""), (3128, "squid"))
    }
    assert named == {
        (9100, "prometheus-node"): "node-exporter",
        (9100, ""): "jetdirect",  # nothing to tell them apart: the first by name
        (3128, "squid"): "mydoom",
    }


@pytest.mark.parametrize("command", ["audit", "discover"])
def test_help_and_docs_agree_on_the_ss_flags(command: str) -> None:
    help_text = " ".join(runner.invoke(app, [command, "--help"]).stdout.split())
    assert "`ss -tulpnH` output taken on the host" in help_text
    assert "-tulnH" not in help_text
    audit = Path("docs/commands/audit.md").read_text(encoding="utf-8")
    discover = Path("docs/commands/discover.md").read_text(encoding="utf-8")
    assert "ss -tulpnH > web1.ss" in audit and "ss -tulpnH | fwgen discover" in discover


def test_a_lan_only_port_also_open_to_any_address_is_a_warning_from_the_lan_too(
    tmp_path: Path,
) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(
        "description: x\nextends: base\ninbound:\n"
        "  - {service: mysql, from: 198.18.3.0/24}\n"
        "  - {port: 3306/tcp, name: everyone}\n"
    )
    xml = nmap_xml("198.18.2.1", [("tcp", 3306, "open")])
    code, items = scan_report(tmp_path, str(profile), xml, "--from", "198.18.3.7")
    assert code == 0 and [(i["kind"], i["port"]) for i in items] == [("lan-only", 3306)]
