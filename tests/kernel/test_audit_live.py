"""nmap against a loaded ruleset: no drift; with the firewall gone, drift."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app
from tests.kernel import audit_capture
from tests.kernel.conftest import require
from tests.kernel.lab import Lab

pytestmark = pytest.mark.kernel


def audit(lab: Lab, scan: str, tmp_name: str) -> tuple[int, dict[str, Any]]:
    trusted, outside = lab.clients["trusted"], lab.clients["outside"]
    with open(tmp_name, "w") as handle:
        handle.write(scan)
    result = CliRunner().invoke(
        app,
        [
            "audit",
            "webserver",
            "--set",
            f"admins={trusted.ipv4},{trusted.ipv6}",
            "--scan",
            tmp_name,
            "--from",
            outside.ipv4,
            "--format",
            "json",
        ],
    )
    return result.exit_code, json.loads(result.stdout)


def test_live_scan_finds_no_drift_then_drift(tmp_path: object) -> None:
    require("nmap")
    with Lab() as lab:
        audit_capture.start(lab)
        audit_capture.load_webserver(lab)
        code, report = audit(lab, audit_capture.nmap(lab, "outside", "ipv4"), f"{tmp_path}/a.xml")
        assert code == 0 and report["drift"] is False
        lab.run(lab.server, "nft", "flush", "ruleset")  # the ruleset is not applied
        code, report = audit(lab, audit_capture.nmap(lab, "outside", "ipv4"), f"{tmp_path}/b.xml")
        assert code == 1
        assert sorted(i["port"] for i in report["items"] if i["kind"] == "drift") == [
            22,
            3306,
            47001,
        ]


def test_live_udp_scan_of_dropped_ports_is_no_drift(tmp_path: object) -> None:
    """nmap -sU gets no answer from a port the firewall drops: open|filtered, not open."""
    require("nmap")
    with Lab() as lab:
        audit_capture.start(lab)
        audit_capture.load_webserver(lab)
        scan = audit_capture.nmap(lab, "outside", "ipv4", "-sU", "53,123,161")
        assert scan.count('state="open|filtered"') == 3, scan
        code, report = audit(lab, scan, f"{tmp_path}/u.xml")
        assert code == 0 and report["items"] == []
        lab.run(lab.server, "nft", "flush", "ruleset")  # now the kernel answers: closed
        scan = audit_capture.nmap(lab, "outside", "ipv4", "-sU", "53,123,161")
        assert scan.count('state="closed"') == 3, scan
