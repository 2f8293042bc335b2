"""`fwgen verify` before any lab is made: hostile `--ruleset` files, a target it does not
run, and a machine without root or the firewall's tools. Each is one line and exit 2,
and no namespace is made (the kernel's side is tests/kernel/test_verify.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.lab.netns import PREFIX

runner = CliRunner()
ADMINS = ["--set", "admins=10.20.0.0/16,fd20::/48"]


def verify(*args: str) -> tuple[int, list[str]]:
    result = runner.invoke(app, ["verify", "webserver", *ADMINS, *args])
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    return result.exit_code, errors


IP = shutil.which("ip") or "ip"


def namespaces() -> list[str]:
    """The namespaces named as a lab of this run would be (others' come and go)."""
    listed = subprocess.run([IP, "netns", "list"], capture_output=True, text=True).stdout
    return [line for line in listed.splitlines() if line.startswith(PREFIX)]


@pytest.fixture(autouse=True)
def _no_lab_is_made() -> object:
    before = namespaces()
    yield
    assert namespaces() == before


def test_a_target_verify_does_not_run() -> None:
    code, errors = verify("-t", "windows")
    assert code == 2
    assert errors == ["error: --target 'windows': verify runs nftables, iptables, ufw, firewalld"]


def test_a_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.nft"
    real.write_text("table inet fwgen {}\n")
    (tmp_path / "link.nft").symlink_to(real)
    code, errors = verify("-t", "nftables", "--ruleset", str(tmp_path / "link.nft"))
    assert code == 2
    assert errors == [
        f"error: {tmp_path}/link.nft: --ruleset: a symbolic link; give the file itself"
    ]


def test_a_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "fwgen.nft"
    os.mkfifo(fifo)
    code, errors = verify("-t", "nftables", "--ruleset", str(fifo))  # no writer: would hang
    assert code == 2
    assert errors == [f"error: {fifo}: ruleset path is a FIFO, not a file"]


def test_a_huge_file_is_refused_unread(tmp_path: Path) -> None:
    huge = tmp_path / "fwgen.nft"
    with huge.open("wb") as out:
        out.truncate(64 * 1024 * 1024 + 1)  # sparse: no disk used
    code, errors = verify("-t", "nftables", "--ruleset", str(huge))
    assert code == 2
    assert len(errors) == 1 and "larger than 64 MiB" in errors[0]


def test_a_hidden_line_break_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "fwgen.nft"
    text.write_text("table inet fwgen {}\u2028flush ruleset\n", encoding="utf-8")
    code, errors = verify("-t", "nftables", "--ruleset", str(text))
    assert code == 2
    assert len(errors) == 1 and "U+2028 (LINE SEPARATOR) is not allowed" in errors[0]


def test_nft_include_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "fwgen.nft"
    text.write_text('flush ruleset\ntable inet x { include "/etc/shadow" }\n')
    code, errors = verify("-t", "nftables", "--ruleset", str(text))
    assert code == 2
    assert errors == [
        f"error: {text}:2: --ruleset: `include` reads other files of the machine; "
        "give one self-contained nftables file"
    ]


@pytest.mark.parametrize(
    ("target", "name", "script"),
    [
        ("ufw", "anything.sh", "fwgen-ufw.sh"),
        ("firewalld", "fwgen-firewalld.sh", "fwgen-firewalld.sh"),
    ],
)
def test_a_script_is_never_run(tmp_path: Path, target: str, name: str, script: str) -> None:
    given = tmp_path / name
    given.write_text("#!/bin/sh\ntouch /tmp/owned\n")
    code, errors = verify("-t", target, "--ruleset", str(given))
    assert code == 2
    assert len(errors) == 1 and f"{script} is {target}'s shell script" in errors[0]
    assert "never one it is given" in errors[0]


def test_a_file_the_target_does_not_render_is_refused(tmp_path: Path) -> None:
    given = tmp_path / "rules.v5"
    given.write_text("*filter\nCOMMIT\n")
    code, errors = verify("-t", "iptables", "--ruleset", str(given))
    assert code == 2
    assert errors == [
        f"error: {given}: --ruleset: iptables renders no file named 'rules.v5' for this "
        "profile (its files: ipsets, rules.v4, rules.v6); name the file as `fwgen render -o` does"
    ]


def test_a_file_named_as_a_script_is_refused_for_a_target_of_one_file(tmp_path: Path) -> None:
    """nftables renders one file, so any name replaces it, but not a script's: an empty
    x.sh was loaded as the ruleset, and every port reported open."""
    given = tmp_path / "x.sh"
    given.write_text("#!/bin/sh\n")
    code, errors = verify("-t", "nftables", "--ruleset", str(given))
    assert code == 2
    assert errors == [
        f"error: {given}: --ruleset: x.sh is named as a shell script (the nftables ruleset "
        "is fwgen.nft); verify runs only the scripts fwgen renders, never one it is given "
        "(give the ruleset files the script loads, if the target has any)"
    ]


def test_without_root_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code, errors = verify("-t", "nftables")
    assert code == 2
    assert errors == ["error: fwgen verify needs root (network namespaces)"]


def test_without_the_firewalls_tools_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "ip").symlink_to("/bin/true")
    monkeypatch.setenv("PATH", str(bin_))
    code, errors = verify("-t", "nftables")
    assert code == 2
    assert errors == ["error: fwgen verify needs `nft` (apt-get install nftables)"]
    code, errors = verify("-t", "iptables")
    assert errors == ["error: fwgen verify needs `iptables-restore` (apt-get install iptables)"]
