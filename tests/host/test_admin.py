"""Finding the admin's connections beyond fwgen's own environment (sudo, become), and
proving that a confirmation comes from a connection made after the load: over fake
/proc trees, plus one real process tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.host import admin, procs
from fwgen.host.guard import from_keep
from tests.fakeproc import LISTEN, FakeProc

ME = os.getpid()
ADMIN_SSH = "192.0.2.7 50022 192.0.2.1 22"
LOADED = 5000  # clock ticks after boot when the load ended


@pytest.fixture
def proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeProc:
    """`sshd` (100, listening on 22 and 2222) → sshd for the admin (150) → bash with
    SSH_CONNECTION (160) → sudo (200, env reset) → this process (fwgen, no SSH_CONNECTION)."""
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    fake = FakeProc(tmp_path / "proc")
    fake.process(100, 1, "sshd", 10)
    fake.process(150, 100, "sshd", 1000)
    fake.process(160, 150, "bash", 1001, {"SSH_CONNECTION": ADMIN_SSH, "TERM": "xterm"})
    fake.process(200, 160, "sudo", 1002, {"TERM": "xterm"})
    fake.process(ME, 200, "fwgen", 1003, {})
    fake.socket(100, 11, "0.0.0.0:22", state=LISTEN)
    fake.socket(100, 12, "[::]:2222", state=LISTEN)
    fake.socket(None, 13, "0.0.0.0:80", state=LISTEN)  # a web server: not sshd
    fake.socket(150, 21, "192.0.2.1:22", "192.0.2.7:50022")
    fake.socket(None, 22, "[2001:db8::1]:2222", "[2001:db8::9]:40000")  # a colleague
    fake.socket(None, 23, "192.0.2.1:80", "198.51.100.3:41000")  # a web client
    monkeypatch.setattr(procs, "PROC", fake.root)
    return fake


def test_sudo_and_become_find_the_admin_in_an_ancestor_and_at_sshd(proc: FakeProc) -> None:
    found, sshd = admin.admin_connections({})
    assert sshd.ports == {22, 2222}
    assert [(str(c.client), c.port, c.source) for c in found] == [
        ("192.0.2.7", 22, "SSH_CONNECTION of process 160 (bash)"),
        ("2001:db8::9", 2222, "established to sshd"),  # the admin's own is found once
    ]
    assert found[0].session == ADMIN_SSH


def test_an_apply_where_sshd_listens_and_no_admin_is_found_is_refused(
    proc: FakeProc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc.process(160, 150, "bash", 1001, {})  # no SSH_CONNECTION anywhere
    (proc.root / "net/tcp").write_text("header\n")
    (proc.root / "net/tcp6").write_text("header\n")
    proc.tables = {"tcp": [], "tcp6": []}
    proc.socket(100, 11, "0.0.0.0:22", state=LISTEN)
    monkeypatch.setenv("FWGEN_STATE_DIR", str(tmp_path / "state"))
    result = CliRunner().invoke(
        app, ["apply", "webserver", "-t", "nftables", "--set", "admins=10.1.0.0/16"]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "error: sshd listens on port 22, but no admin connection was found (no SSH_CONNECTION "
        "here or in a parent process, no connection to sshd): give --keep ADDR[:PORT] for the "
        "address you connect from, or --no-admin-connection if no one needs to connect\n"
    )
    assert not (tmp_path / "state/pending").exists()
    from fwgen.cli.apply_command import _admin_connections

    kept = [from_keep("198.51.100.9")]
    assert _admin_connections(kept, no_admin_connection=False) == kept
    assert _admin_connections([], no_admin_connection=True) == []


def test_no_sshd_and_no_admin_is_a_local_console(proc: FakeProc) -> None:
    for name in ("tcp", "tcp6"):
        (proc.root / "net" / name).write_text("header\n")
    proc.process(160, 150, "bash", 1001, {})
    from fwgen.cli.apply_command import _admin_connections

    assert _admin_connections([], no_admin_connection=False) == []


def test_a_process_without_ssh_connection_finds_its_ancestors_for_real() -> None:
    """`env -i` (what sudo's env_reset amounts to) below a shell that has SSH_CONNECTION."""
    code = "from fwgen.host.admin import ancestors_ssh; print([c.session for c in ancestors_ssh(__import__('pathlib').Path('/proc'))])"
    script = f'env -i {sys.executable} -c "{code}"'
    env = {**os.environ, "SSH_CONNECTION": "203.0.113.5 40404 203.0.113.1 22"}
    done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1].startswith("['203.0.113.5 40404 203.0.113.1 22'")


# --confirm-pending ------------------------------------------------------------------


def meta(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {"loaded_ticks": LOADED, "connections": ["the admin's"]}
    return base | {"sessions": [ADMIN_SSH]} | fields


def confirm_from(proc: FakeProc, session: str, started: int) -> None:
    """A new ssh session: sshd's child for it started at *started*, a shell below it."""
    client, cport, server, port = session.split()
    proc.process(700, 100, "sshd", started)
    proc.process(710, 700, "bash", started + 1, {"SSH_CONNECTION": session})
    proc.process(ME, 710, "fwgen", started + 2, {})
    proc.socket(700, 77, f"{server}:{port}", f"{client}:{cport}")


def test_a_confirmation_while_loading_is_refused(proc: FakeProc) -> None:
    problem = admin.confirmer_problem(meta(loaded_ticks=None), {})
    assert problem == "the apply is still loading the new rules: confirm once it asks for it"


def test_the_apply_s_own_connection_cannot_confirm(proc: FakeProc) -> None:
    # ssh ControlMaster or tmux: the same TCP connection, a new shell
    problem = admin.confirmer_problem(meta(), {"SSH_CONNECTION": ADMIN_SSH})
    assert problem.startswith(f"this is the apply's own connection ({ADMIN_SSH})")


def test_a_connection_made_before_the_load_cannot_confirm(proc: FakeProc) -> None:
    confirm_from(proc, "192.0.2.7 50100 192.0.2.1 22", started=LOADED - 100)
    problem = admin.confirmer_problem(meta(), {})
    assert problem == (
        "the connection 192.0.2.7 50100 192.0.2.1 22 was not established after the load: "
        "open a NEW SSH connection and confirm from there"
    )


def test_a_new_connection_after_the_load_confirms(proc: FakeProc) -> None:
    confirm_from(proc, "192.0.2.7 50100 192.0.2.1 22", started=LOADED + 100)
    assert admin.confirmer_problem(meta(), {}) == ""
    # ... unless its socket is also held by an older process (handed over, not new)
    (proc.root / "150/fd/9").symlink_to("socket:[77]")
    assert "was not established after the load" in admin.confirmer_problem(meta(), {})


def test_a_session_fwgen_cannot_see_cannot_confirm_an_apply_over_ssh(proc: FakeProc) -> None:
    proc.process(160, 150, "bash", 1001, {})
    assert "not an SSH connection fwgen can see" in admin.confirmer_problem(meta(), {})
    # an apply made at a local console had nothing to protect: anyone may confirm it
    assert admin.confirmer_problem(meta(connections=[], sessions=[]), {}) == ""


def test_a_new_connection_from_the_admin_is_seen(proc: FakeProc) -> None:
    admins, _ = admin.admin_connections({})
    assert admin.new_connection(admins, since=LOADED) == ""  # only the old ones
    proc.process(800, 100, "sshd", LOADED + 5)
    proc.socket(800, 88, "192.0.2.1:22", "192.0.2.7:50200")
    assert admin.new_connection(admins, since=LOADED) == "192.0.2.7 port 50200"
    assert admin.new_connection(admins, since=LOADED + 10) == ""


def test_a_reused_pid_is_not_the_recorded_process(proc: FakeProc) -> None:
    root = proc.root
    assert procs.alive(200, 1002, root)
    assert not procs.alive(200, 999, root)  # same pid, another start: a newer process
    assert not procs.alive(4242, None, root)
    proc.process(300, 1, "zombie", 5)
    (root / "300/stat").write_text((root / "300/stat").read_text().replace(" S ", " Z "))
    assert not procs.alive(300, 5, root)
    assert procs.start_ticks(ME, root) == 1003
