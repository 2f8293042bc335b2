from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion
from typer.testing import CliRunner

from fwgen.cli import app
from fwgen.render import render, render_with_warnings
from fwgen.resolve import resolve_profile
from tests.conftest import BUILTIN, EVERY_FEATURE
from tests.roundtrip import canonical, expected, parse_ufw

UFW_LINE = re.compile(
    r"^ufw (allow|limit)( out)?( log)? proto (tcp|udp) from \S+ to \S+ port [0-9,:]+ comment 'fwgen: [A-Za-z0-9_.+-]+ \[[0-9a-f]{10}\]'$"
)


def commands(script: str) -> list[str]:
    """The lines of section 1 that are not comments or blank."""
    section = script.split("# 1. The rules this profile allows.\n")[1].split("# 2. ")[0]
    return [line for line in section.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("profile", BUILTIN)
def test_builtin_profile_snapshot(profile: str, snapshot: SnapshotAssertion) -> None:
    files = render(resolve_profile(profile), "ufw")
    assert list(files) == ["fwgen-ufw.sh"]
    assert files["fwgen-ufw.sh"] == snapshot


@pytest.mark.parametrize("profile", [*BUILTIN, str(EVERY_FEATURE)])
def test_only_ufw_invocations_fwgen_means_to_emit(profile: str) -> None:
    script = render(resolve_profile(profile), "ufw")["fwgen-ufw.sh"]
    assert script.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in script
    for line in commands(script):
        assert UFW_LINE.match(line), line
    assert "ufw reset" not in script and "ufw disable" not in script


def test_every_feature_rules(snapshot: SnapshotAssertion) -> None:
    files, warnings = render_with_warnings(resolve_profile(str(EVERY_FEATURE)), "ufw")
    lines = commands(files["fwgen-ufw.sh"])
    many = [line for line in lines if "fwgen: many " in line]
    assert len(many) == 2  # 15 ports a rule, split beyond
    assert any(
        line.startswith("ufw limit log proto tcp from 192.0.2.0/24 to any port 22 ")
        for line in lines
    )
    assert any("from any to 224.0.0.251 port 5353" in line for line in lines)
    assert any(
        line.startswith("ufw allow out proto udp from any to 192.0.2.53 port 53 ") for line in lines
    )
    assert "ufw default deny outgoing" in files["fwgen-ufw.sh"]
    assert "ufw default allow routed" in files["fwgen-ufw.sh"]
    assert "ufw logging low" in files["fwgen-ufw.sh"]
    assert "# matches nothing: network 'empty'" in files["fwgen-ufw.sh"]
    assert warnings == snapshot


def test_rate_limit_is_approximated_with_a_warning_and_strict_fails() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["render", "webserver", "-t", "ufw"])
    assert result.exit_code == 0
    assert (
        "warning: ssh (profiles/webserver.yaml:14): limit 10/minute approximated" in result.stderr
    )
    assert "# APPROXIMATED: ssh (profiles/webserver.yaml:14): limit 10/minute" in result.stdout
    strict = runner.invoke(app, ["render", "webserver", "-t", "ufw", "--strict"])
    assert strict.exit_code == 2
    assert strict.stdout == ""


def test_hostile_names_and_comments_cannot_leave_the_quotes(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile(
        """\
        description: "x'; reboot; echo '$(reboot)`reboot`"
        inbound:
          - {port: 80/tcp, name: web, comment: "'; reboot; '"}
        """
    )
    script = render(resolve_profile(str(path)), "ufw")["fwgen-ufw.sh"]
    for line in commands(script):
        assert UFW_LINE.match(line), line
    header = [line for line in script.splitlines() if "reboot" in line]
    assert header and all(line.startswith("# ") for line in header)


def test_rules_ufw_cannot_tell_apart_become_one_command(write_profile: Callable[..., Path]) -> None:
    """ufw keeps one rule per direction, addresses and ports: adding a twin that differs
    in allow/limit or log replaces the first, so the last would win and every run would
    rewrite them. One command stands for all: allow if any twin is unlimited, log if any logs."""
    path = write_profile(
        """\
        description: twins
        inbound:
          - {port: 8080/tcp, name: web, limit: 1/second}
          - {port: 8080/tcp, name: web, limit: 2/second}
          - {port: 8081/tcp, name: web, limit: 1/second}
          - {port: 8081/tcp, name: web, log: true}
          - {port: 8081/tcp, name: web}
          - {port: 8082/tcp, name: web, limit: 1/second, log: true}
          - {port: 8082/tcp, name: web, limit: 1/second}
        """
    )
    policy = resolve_profile(str(path))
    script = render(policy, "ufw")["fwgen-ufw.sh"]
    lines = [re.sub(r" comment .*", "", line) for line in commands(script)]
    assert lines == [
        "ufw limit proto tcp from any to any port 8080",
        "ufw allow log proto tcp from any to any port 8081",
        "ufw limit log proto tcp from any to any port 8082",
    ]
    assert script.count("\n# merged into web's above (1 of 1): ufw keeps") == 4
    assert canonical(parse_ufw(script)) == canonical(expected(policy))
