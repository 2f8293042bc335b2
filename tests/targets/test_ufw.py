from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render, render_with_warnings
from tests.conftest import BUILTIN, EVERY_FEATURE
from tests.roundtrip import canonical, expected, parse_ufw

UFW_LINE = re.compile(
    r"^ufw (allow|limit)( out)?( (in|out) on [A-Za-z0-9][A-Za-z0-9_.-]{0,13}[A-Za-z0-9_.+-])?( log)? "
    r"proto (tcp|udp) from \S+ to \S+ port [0-9,:]+ comment 'fwgen: [A-Za-z0-9_.+-]+ \[[0-9a-f]{10}\]'$"
)


def block(script: str, name: str) -> str:
    """The lines fwgen's block puts into /etc/ufw/NAME."""
    return script.split(f"<<'FWGEN_{name.upper().replace('.', '_')}'\n")[1].split("\nFWGEN_")[0]


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
    assert not any(" port 22 " in line for line in lines)  # limited: in the block
    assert re.search(
        r"^-A ufw6-before-input -s 2001:db8:1::/48 -p tcp -m tcp --dport 22 -m conntrack "
        r"--ctstate NEW -m set --match-set \S+ src -m hashlimit --hashlimit-upto 3/minute "
        r"--hashlimit-burst 6 --hashlimit-mode srcip --hashlimit-srcmask 56 "
        r"--hashlimit-htable-max 131072 --hashlimit-htable-expire 120000 ",
        block(files["fwgen-ufw.sh"], "before6.rules"),
        re.M,
    )
    assert any("from any to 224.0.0.251 port 5353" in line for line in lines)
    assert any(
        line.startswith("ufw allow out proto udp from any to 192.0.2.53 port 53 ") for line in lines
    )
    assert "set_default deny outgoing DEFAULT_OUTPUT_POLICY" in files["fwgen-ufw.sh"]
    assert "set_default allow routed DEFAULT_FORWARD_POLICY" in files["fwgen-ufw.sh"]
    assert "# matches nothing: network 'empty'" in files["fwgen-ufw.sh"]
    assert warnings == snapshot


def test_rate_limits_are_exact_in_before_rules_and_strict_passes() -> None:
    """ufw's own `limit` is fixed (6 in 30 s); per-source limits go into fwgen's block of
    before.rules / before6.rules as hashlimit rules, IPv6 keyed on the /64."""
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            *("render", "webserver", "-t", "ufw", "--strict"),
            *("--set", "admins=10.1.0.0/16", "--set", "admins=2001:67c:100::/48"),
        ],
    )
    assert (result.exit_code, result.stderr) == (0, "")
    script = result.stdout
    assert "ufw limit " not in script and "APPROXIMATED" not in script
    v4, v6 = block(script, "before.rules"), block(script, "before6.rules")
    assert re.search(
        r"^-A ufw-before-input -s 10\.1\.0\.0/16 -p tcp -m tcp --dport 22 -m conntrack "
        r"--ctstate NEW -m set --match-set \S+ src -m hashlimit --hashlimit-upto 10/minute "
        r"--hashlimit-burst 10 ",
        v4,
        re.M,
    )
    assert "-A ufw6-before-input -s 2001:67c:100::/48 -p tcp -m tcp --dport 22 " in v6
    assert "--hashlimit-srcmask 64" in v6 and "--hashlimit-srcmask 16" in v4  # and the /16s
    assert "--hashlimit-srcmask 32" not in v4
    # ping: 5/second per source, counted per echo request, before ufw's own rules
    assert re.search(
        r"-p icmp -m icmp --icmp-type 8 -m set --match-set \S+ src -m hashlimit "
        r"--hashlimit-upto 5/second",
        v4,
    )


def test_logging_is_left_to_the_admin_unless_drops_are_to_be_logged() -> None:
    quiet = render(resolve_profile("webserver"), "ufw")["fwgen-ufw.sh"]
    assert "ufw logging" not in quiet
    logged = render(resolve_profile(str(EVERY_FEATURE)), "ufw")["fwgen-ufw.sh"]
    assert "if grep -qsx 'LOGLEVEL=off' /etc/ufw/ufw.conf; then ufw logging low; fi" in logged


def test_ping_off_is_said_in_before_rules(write_profile: Callable[..., Path]) -> None:
    path = write_profile("description: x\nextends: base\noptions: {ping: false}\n")
    files, warnings = render_with_warnings(resolve_profile(str(path)), "ufw")
    assert warnings == []
    for name, chain, proto in (
        ("before.rules", "ufw-before-input", "icmp"),
        ("before6.rules", "ufw6-before-input", "ipv6-icmp"),
    ):
        text = block(files["fwgen-ufw.sh"], name)
        assert f"-A {chain} -p {proto} -j DROP" in text
        assert "echo" not in text and "--icmp-type 8 " not in text


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
    in log replaces the first, so the last would win and every run would rewrite them.
    One command stands for all, logged if any logs. Rate-limited rules are not ufw
    commands: each is a hashlimit rule of its own in fwgen's block, with its own rate."""
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
    assert lines == ["ufw allow log proto tcp from any to any port 8081"]
    assert script.count("\n# merged into web's above (1 of 1): ufw keeps") == 1
    limits = re.findall(
        r"--dport (\d+) .*--hashlimit-upto (\S+) .*-j (\w+)", block(script, "before.rules")
    )
    assert sorted(limits) == sorted(
        2
        * [  # a source's own bucket, and its /16's
            ("8080", "1/second", "ACCEPT"),
            ("8080", "2/second", "ACCEPT"),
            ("8081", "1/second", "ACCEPT"),
            ("8082", "1/second", "ACCEPT"),
            ("8082", "1/second", "ACCEPT"),
            ("8082", "1/second", "LOG"),
        ]
    )
    assert canonical(parse_ufw(script)) == canonical(expected(policy))
