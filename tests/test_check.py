from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from fwgen.check import check_policy
from fwgen.cli import app
from fwgen.portdb import catalogue
from fwgen.resolve import resolve_profile

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


def test_builtin_profiles_have_no_warnings() -> None:
    for profile in ("base", "webserver", "mailserver", "workstation"):
        result = runner.invoke(app, ["check", profile, "--strict"])
        assert result.exit_code == 0, result.stdout


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
        assert set(finding) == {"code", "level", "message", "location", "service", "ports"}
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
