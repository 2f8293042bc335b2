"""audit and discover on real nmap and ss output captured from the kernel harness
(tests/kernel/audit_capture.py regenerates tests/data/audit/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fwgen.audit import Observed, audit_scan, read_nmap, read_ss
from fwgen.cli import app
from fwgen.errors import FwgenError
from fwgen.portdb import catalogue
from fwgen.resolve import resolve_profile

runner = CliRunner()
DATA = Path("tests/data/audit")
ADMINS = ["--set", "admins=198.18.1.2,2001:db8:1::2"]  # the trusted client of the harness
OUTSIDE = "198.18.2.2"


def audit(*args: str) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["audit", "webserver", *ADMINS, *args, "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def test_host_that_matches_its_profile_has_no_drift() -> None:
    code, report = audit("--scan", str(DATA / "nmap-webserver-outside.xml"), "--from", OUTSIDE)
    assert code == 0 and report["drift"] is False
    kinds = {(i["kind"], i["port"]) for i in report["items"]}  # type: ignore[union-attr]
    assert kinds == {("allowed-not-open", 22)}  # ssh is for admins only: filtered from outside
    message = report["items"][0]["message"]  # type: ignore[index]
    assert "admits only admins" in message and OUTSIDE in message


def test_scan_from_the_trusted_network_sees_ssh_open_without_drift() -> None:
    code, report = audit("--scan", str(DATA / "nmap-webserver-trusted.xml"), "--from", "198.18.1.2")
    assert code == 0 and report["items"] == []


def test_host_without_its_firewall_drifts() -> None:
    code, report = audit("--scan", str(DATA / "nmap-open.xml"), "--from", OUTSIDE)
    assert code == 1 and report["drift"] is True
    drift = sorted(i["port"] for i in report["items"] if i["kind"] == "drift")  # type: ignore[union-attr]
    assert drift == [22, 3306, 47001]
    assert any(i["kind"] == "lan-only" and i["service"] == "mysql" for i in report["items"])  # type: ignore[union-attr]


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
    kinds = {(i["kind"], i["port"]) for i in report["items"]}  # type: ignore[union-attr]
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
    assert rendered.exit_code == 0 and "tcp dport 47001 accept" in rendered.stdout


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
    with pytest.raises(FwgenError, match="not `ss -tulnH` output"):
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
