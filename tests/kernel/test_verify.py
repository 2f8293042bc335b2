"""`fwgen verify` in a real kernel: every built-in profile on every Linux target agrees
with its Policy; a ruleset changed by hand to open a port or to drop SSH fails, naming
the cell; a `--ruleset` that flushes the whole ruleset and touches other tables changes
only the lab; Ctrl-C and SIGTERM leave no namespace and no process behind.

One lab per target serves every profile in turn (each load replaces the last, as on a
host; each profile gets links and source addresses of its own, so no rate limit's
budget is shared), with one firewalld for all of that target's profiles.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.errors import RenderError
from fwgen.lab.firewalld import Firewalld, missing_firewalld
from fwgen.lab.verify import verify_in
from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render
from tests.conftest import BUILTIN, INTERFACES_TO_SET, NETWORKS_TO_SET
from tests.kernel.conftest import need, require
from tests.kernel.lab import PREFIX, Lab
from tests.kernel.test_packet_truth import REFUSED
from tests.machine_guard import LISTINGS

pytestmark = pytest.mark.kernel

TARGETS = ["nftables", "iptables", "ufw", "firewalld"]
NETWORKS = ["10.20.0.0/16", "fd20::/48"]
ADMINS = ["--set", "admins=10.20.0.0/16,fd20::/48"]
runner = CliRunner()


@pytest.fixture(scope="module")
def labs() -> Iterator[dict[str, Lab]]:
    """The lab of the target being tested (the one before it removed on a switch)."""
    made: dict[str, Lab] = {}
    try:
        yield made
    finally:
        for lab in made.values():
            lab.__exit__()


def lab_for(labs: dict[str, Lab], target: str) -> Lab:
    require("nft", "iptables-restore", "ufw", "ipset")
    if target == "firewalld":
        need(missing_firewalld())
    if target not in labs:
        for other in list(labs):
            labs.pop(other).__exit__()
        labs[target] = Lab().__enter__()
        if target == "firewalld":
            Firewalld(labs[target]).start()
    return labs[target]


@pytest.mark.parametrize("profile", BUILTIN)
@pytest.mark.parametrize("target", TARGETS)
def test_verify_agrees_for_every_builtin_profile(
    labs: dict[str, Lab], target: str, profile: str
) -> None:
    overrides = {name: NETWORKS for name in NETWORKS_TO_SET[profile]}
    overrides |= {name: ["eth1"] for name in INTERFACES_TO_SET.get(profile, [])}
    policy = resolve_profile(profile, overrides)
    if (profile, target) in REFUSED:
        with pytest.raises(RenderError, match=REFUSED[profile, target]):
            render(policy, target)
        return
    lab = lab_for(labs, target)
    report = verify_in(lab, policy, target, render(policy, target), lambda _: None)
    assert [f"{r.cell.words()}: {r.got}" for r in report.failed] == []
    kinds = {r.cell.kind for r in report.results}
    assert kinds == {"port", "ping", "neighbours"}
    assert len(report.results) >= 10 and report.scanned > 2 * 65000
    if profile in INTERFACES_TO_SET:  # the private link and another
        assert {r.cell.interface for r in report.results} >= {"eth1", "lo"}
        assert len({r.cell.interface for r in report.results}) == 3


def tampered(tmp_path: Path, target: str, edit: str) -> list[str]:
    """`fwgen render webserver` for *target* into *tmp_path*, its ruleset changed by hand:
    *edit* "open" lets 3306/tcp in from anyone, "drop-ssh" drops 22/tcp first. The
    --ruleset options that load it."""
    out = tmp_path / "web1"
    result = runner.invoke(app, ["render", "webserver", "-t", target, *ADMINS, "-o", str(out)])
    assert result.exit_code == 0, result.output
    if target == "nftables":
        path = out
        rule = "tcp dport 3306 accept" if edit == "open" else "tcp dport 22 drop"
        text = path.read_text()
        anchor = '\t\tiif "lo" accept comment "loopback"\n'
        assert anchor in text
        path.write_text(text.replace(anchor, f"{anchor}\t\t{rule}\n", 1))
        return ["--ruleset", str(path)]
    given = []
    for name in ("rules.v4", "rules.v6"):
        path = out / name
        rule = "-p tcp --dport 3306 -j ACCEPT" if edit == "open" else "-p tcp --dport 22 -j DROP"
        text = path.read_text()
        first = re.search(r"^-A INPUT ", text, re.M)
        assert first is not None
        path.write_text(text[: first.start()] + f"-A INPUT {rule}\n" + text[first.start() :])
        given += ["--ruleset", str(path)]
    return given


@pytest.mark.parametrize("target", ["nftables", "iptables"])
def test_a_port_opened_by_hand_fails_naming_the_cell(tmp_path: Path, target: str) -> None:
    require("nft", "iptables-restore", "ipset")
    result = runner.invoke(
        app, ["verify", "webserver", "-t", target, *ADMINS, *tampered(tmp_path, target, "open")]
    )
    assert result.exit_code == 1, result.output
    mismatches = [line for line in result.output.splitlines() if line.startswith("MISMATCH")]
    assert len(mismatches) == 2, result.output  # the scan: from the lab client, both families
    for source, family in (("198.18.1.2", "ipv4"), ("2001:db8:1::2", "ipv6")):
        assert any(
            line.startswith(
                f"MISMATCH tcp:3306 from {source} (in no network of the profile) over {family} on "
            )
            and line.endswith("the profile says blocked (default policy), the kernel: open")
            for line in mismatches
        ), mismatches
    assert re.search(
        r"cells probed, \d+ passed, and \d+ more TCP ports scanned; 2 mismatch", result.output
    )


@pytest.mark.parametrize("target", ["nftables", "iptables"])
def test_ssh_dropped_by_hand_fails_naming_the_cell(tmp_path: Path, target: str) -> None:
    require("nft", "iptables-restore", "ipset")
    result = runner.invoke(
        app,
        ["verify", "webserver", "-t", target, *ADMINS, *tampered(tmp_path, target, "drop-ssh")],
    )
    assert result.exit_code == 1, result.output
    mismatches = [line for line in result.output.splitlines() if line.startswith("MISMATCH")]
    ssh = "the profile says open (ssh (profiles/webserver.yaml:14)), the kernel: blocked"
    assert sorted(m.split(" on ")[0] for m in mismatches) == [
        "MISMATCH tcp:22 from 10.20.0.2 (in admins) over ipv4",
        "MISMATCH tcp:22 from fd20::2 (in admins) over ipv6",
    ]
    assert all(m.endswith(ssh) for m in mismatches)


def machine_ruleset() -> list[str]:
    """The machine's own rulesets, read only (as the session's guard reads them)."""
    return [subprocess.run(cmd, capture_output=True, text=True).stdout for cmd in LISTINGS]


def test_a_ruleset_that_flushes_everything_changes_only_the_lab(tmp_path: Path) -> None:
    require("nft")
    before = machine_ruleset()
    out = tmp_path / "fwgen.nft"
    result = runner.invoke(app, ["render", "webserver", "-t", "nftables", *ADMINS, "-o", str(out)])
    assert result.exit_code == 0
    out.write_text(
        "flush ruleset\n"
        "table ip nat {\n\tchain postrouting {\n\t\ttype nat hook postrouting priority 100;\n"
        "\t\tmasquerade\n\t}\n}\n"
        "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority 10;\n"
        "\t\tpolicy accept;\n\t}\n}\n"
        "delete table ip nat\n" + out.read_text()
    )
    command = ["verify", "webserver", "-t", "nftables", *ADMINS, "--ruleset", str(out)]
    result = runner.invoke(app, [*command, "--format", "json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["ok"] is True and found["mismatches"] == []
    assert found["cells"] == found["passed"] > 40 and found["scanned_tcp_ports"] > 130000
    assert machine_ruleset() == before


def lab_namespaces(prefix: str) -> dict[str, int]:
    """The lab's namespaces by name, and the inode that names each."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names = [line.split()[0] for line in listed.splitlines() if line.startswith(prefix)]
    return {name: os.stat(f"/run/netns/{name}").st_ino for name in names}


def processes_in(inodes: set[int]) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.stat(entry / "ns" / "net").st_ino in inodes:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class Verify:
    """`fwgen verify webserver -t TARGET` in a process of its own, with namespaces named
    for this test; its stderr read line by line as it comes (a thread), so that a test
    waits on what it says, never on a clock."""

    def __init__(self, target: str, prefix: str, script: str = "") -> None:
        env = {**os.environ, "FWGEN_NETNS_PREFIX": prefix}
        start = [sys.executable, "-c", script] if script else [sys.executable, "-m", "fwgen"]
        self.prefix = prefix
        self.proc = subprocess.Popen(
            [*start, "verify", "webserver", "-t", target, *ADMINS],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.said: list[str] = []
        self.seen: dict[str, int] = {}  # every namespace of the lab, and its inode
        self.ended = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        with self.proc.stderr as stderr:
            for line in stderr:
                self.seen |= lab_namespaces(self.prefix)
                self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next_line(self, timeout: float) -> str | None:
        """The next line it says (None at its end, or when none came in *timeout*)."""
        if self.ended:
            return None
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if line is None:
            self.ended = True
        else:
            self.said.append(line)
        return line

    def wait_for(self, text: str) -> None:
        while (line := self.next_line(300)) is not None:
            if text in line:
                return
        pytest.fail(f"it ended without saying {text!r}: {self.said}")

    def end(self) -> int:
        while self.next_line(300) is not None:
            pass
        return self.proc.wait(timeout=120)

    def assert_stopped_leaving_nothing(self) -> None:
        code = self.end()
        assert code == 130, self.said
        assert self.said[-1] == "verify: interrupted; the lab is removed"
        assert self.seen, "the lab made no namespace"
        assert lab_namespaces(self.prefix) == {}
        assert processes_in(set(self.seen.values())) == []


def need_target(target: str) -> None:
    require("nft", "iptables-restore", "ufw", "ipset")
    if target == "firewalld":
        need(missing_firewalld())


@pytest.mark.parametrize(
    ("target", "when", "how"),
    [
        ("nftables", "probing", signal.SIGINT),
        ("firewalld", "loading the firewalld ruleset", signal.SIGINT),
        ("ufw", "loading the ufw ruleset", signal.SIGTERM),
        ("iptables", "scanning every other TCP port", signal.SIGHUP),
    ],
)
def test_a_stopped_verify_leaves_nothing_behind(target: str, when: str, how: int) -> None:
    need_target(target)
    run = Verify(target, PREFIX[:3] + "k")  # this test's own namespaces
    run.wait_for(when)
    run.proc.send_signal(how)
    run.assert_stopped_leaving_nothing()


@pytest.mark.parametrize(("target", "how"), [("nftables", signal.SIGINT), ("ufw", signal.SIGTERM)])
def test_a_stop_signal_sent_again_and_again_stops_it_once(target: str, how: int) -> None:
    """Ctrl-C pressed until something happens: each arrives at another point of the
    run and of the lab's removal, which none of them cuts short."""
    need_target(target)
    run = Verify(target, PREFIX[:3] + "r")
    run.wait_for("lab:")
    while not run.ended and "interrupted" not in (run.next_line(0.05) or ""):
        run.proc.send_signal(how)
    run.assert_stopped_leaving_nothing()


# `fwgen verify` with a stop signal sent to itself as the lab's removal begins, after
# a run that found everything (the moment a signal sent from outside hits by luck).
SIGNALLED_AS_REMOVED = """
import os, signal, sys
from fwgen.lab.netns import Lab

removing = Lab.__exit__


def signalled(self, *exc):
    os.kill(os.getpid(), signal.{how})
    removing(self, *exc)


Lab.__exit__ = signalled
from fwgen.cli.app import main

sys.argv[0] = "fwgen"
main()
"""


@pytest.mark.parametrize(
    ("target", "how"),
    [("nftables", "SIGINT"), ("ufw", "SIGHUP"), ("firewalld", "SIGTERM")],
)
def test_a_stop_while_the_lab_is_removed_is_not_lost(target: str, how: str) -> None:
    need_target(target)
    run = Verify(target, PREFIX[:3] + "e", SIGNALLED_AS_REMOVED.format(how=how))
    run.assert_stopped_leaving_nothing()
    assert any("scanning every other TCP port" in line for line in run.said)  # it ran to the end
