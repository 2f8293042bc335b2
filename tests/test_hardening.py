"""Hostile and broken input never yields a wrong or dangerous ruleset."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pytest
from typer.testing import CliRunner

from fwgen.build import output
from fwgen.cli.app import app
from fwgen.errors import FwgenError
from fwgen.policy.resolve import resolve_profile
from fwgen.targets import TARGETS
from fwgen.targets.render import render
from tests.conftest import nft_check, restore_test

runner = CliRunner()

# -------------------------------------------------------------- injection corpus
# Each case: profile text, and for every target either an error or text that must
# not appear outside a comment or a quoted string.
INJECTION = {
    "nft comment closes the string and starts a statement": (
        "description: x\ninbound:\n  - {port: 80/tcp, name: web, comment: 'x\" ; flush ruleset ; add rule inet fwgen input accept comment \"'}\n"
    ),
    "powershell comment ends the parameter list and removes rules": (
        "description: x\ninbound:\n  - {port: 80/tcp, name: web, comment: \"x' ; Get-NetFirewallRule | Remove-NetFirewallRule ; '\"}\n"
    ),
    "shell command substitution in the description": (
        "description: \"$(reboot) `reboot` '; reboot; '\"\ninbound: [{service: ssh}]\n"
    ),
    "iptables-restore COMMIT smuggled in a comment": (
        'description: x\ninbound:\n  - {port: 80/tcp, name: web, comment: "x\\" -j ACCEPT COMMIT *nat"}\n'
    ),
    "unicode quotes": (
        'description: "\u2019 \u2018"\ninbound:\n  - {port: 80/tcp, name: web, comment: "\u2019; Remove-NetFirewallRule; \u2018"}\n'
    ),
}
REFUSED = {
    "a right-to-left override in the description": 'description: "admin \\u202e txt.exe"\n',
    "a newline in a rule comment": 'description: x\ninbound:\n  - {port: 80/tcp, name: web, comment: "a\\nCOMMIT"}\n',
    "a newline in the description": 'description: "a\\n*filter\\n-P INPUT ACCEPT"\n',
    "a rule name with a quote": 'description: x\ninbound:\n  - {port: 80/tcp, name: "w\'eb"}\n',
    "a network name that is PowerShell": "description: x\nnetworks:\n  \"a'; Remove-NetFirewallRule; '\": [192.0.2.1]\n",
    "a service name with a semicolon": "description: x\ninbound:\n  - {service: 'ssh;reboot'}\n",
    "an address with a shell tail": "description: x\ninbound:\n  - {service: ssh, from: ['192.0.2.1;reboot']}\n",
}
DANGER = ("flush ruleset", "Remove-NetFirewallRule ;", "reboot", "COMMIT *nat")


def _outside_quotes_and_comments(text: str) -> str:
    """What a firewall's parser acts on: comment lines dropped, quoted strings blanked."""
    import re

    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    # XML (firewalld): comments dropped, and the text between tags, which is data
    joined = re.sub(r">[^<]*<", "><", re.sub(r"<!--.*?-->", "", "\n".join(lines), flags=re.S))
    joined = re.sub(r"'(?:[^']|'')*'", "''", joined)
    return re.sub(r'"[^"\n]*"', '""', joined)


@pytest.mark.parametrize("case", sorted(INJECTION))
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_hostile_text_is_neutralised(
    case: str, target: str, write_profile: Callable[..., Path]
) -> None:
    policy = resolve_profile(str(write_profile(INJECTION[case])))
    files = render(policy, target)
    for name, text in files.items():
        active = _outside_quotes_and_comments(text)
        for word in DANGER:
            assert word not in active, f"{name}: {word!r} escaped"
        if target == "nftables":
            assert nft_check(text).returncode == 0
        if target == "iptables" and name in ("rules.v4", "rules.v6"):
            assert restore_test(text, "ipv4" if name == "rules.v4" else "ipv6").returncode == 0
        if name.endswith(".xml"):
            ElementTree.fromstring(text.encode())  # well-formed: raises otherwise
        if target == "windows":
            from tests.targets.test_windows import parse_errors

            assert parse_errors(text) == []


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_hostile_names_are_refused_with_a_located_error(
    case: str, write_profile: Callable[..., Path]
) -> None:
    path = write_profile(REFUSED[case])
    result = runner.invoke(app, ["render", str(path), "-t", "nftables"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {path.name}:") and len(result.stderr.splitlines()) == 1


# -------------------------------------------------------------- malformed input that is made, not stored


def test_a_50_mb_file_is_refused_quickly(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.write(b"description: x\n" + b"#" * (50 * 1024 * 1024))
    start = time.perf_counter()
    result = runner.invoke(app, ["render", str(big), "-t", "nftables", "-o", str(tmp_path / "out")])
    assert time.perf_counter() - start < 2
    assert result.exit_code == 2 and "larger than 1 MiB" in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_alias_bomb_fails_fast() -> None:
    start = time.perf_counter()
    result = runner.invoke(app, ["render", "tests/data/bad/alias-bomb.yaml", "-t", "nftables"])
    assert result.exit_code == 2
    assert time.perf_counter() - start < 1


# -------------------------------------------------------------- safe writing


def test_a_failed_rename_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "fwgen.nft"
    out.write_text("previous\n")

    def fail(src: str, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output.os, "replace", fail)
    result = runner.invoke(
        app,
        ["render", "webserver", "-t", "nftables", "--set", "admins=10.1.0.0/16", "-o", str(out)],
    )
    assert result.exit_code == 2
    assert result.stderr == f"error: {out}: cannot write output: No space left on device\n"
    assert out.read_text() == "previous\n"
    assert os.listdir(tmp_path) == ["fwgen.nft"]


def test_a_failure_in_the_middle_of_rendering_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "rules"
    out.mkdir()
    (out / "rules.v4").write_text("previous v4\n")
    from fwgen.targets import iptables

    real = iptables.rule_lines
    calls = {"n": 0}

    def explode(*args: object, **kwargs: object) -> list[str]:
        calls["n"] += 1
        if calls["n"] > 3:
            raise FwgenError("simulated failure half-way through")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(iptables, "rule_lines", explode)
    result = runner.invoke(
        app,
        ["render", "webserver", "-t", "iptables", "--set", "admins=10.1.0.0/16", "-o", str(out)],
    )
    assert result.exit_code == 2
    assert (
        sorted(os.listdir(out)) == ["rules.v4"]
        and (out / "rules.v4").read_text() == "previous v4\n"
    )


# -------------------------------------------------------------- exposure guard


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_backdoor_port_needs_an_acknowledgement_repeated_in_the_output(
    target: str, write_profile: Callable[..., Path]
) -> None:
    bare = write_profile(
        "description: x\ninbound:\n  - {port: 12345/tcp, name: thing}\n", "bare.yaml"
    )
    result = runner.invoke(app, ["render", str(bare), "-t", target])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: bare.yaml:3: thing opens netbus (NetBus), a known backdoor port; remove the rule, "
        'or acknowledge it with `allow_risky: "why"`\n'
    )
    acked = write_profile(
        'description: x\ninbound:\n  - {port: 12345/tcp, name: thing, allow_risky: "sinkhole for a malware study"}\n',
        "acked.yaml",
    )
    text = "\n".join(render(resolve_profile(str(acked)), target).values())
    assert "opens netbus (NetBus); allow_risky: sinkhole for a malware study" in text
