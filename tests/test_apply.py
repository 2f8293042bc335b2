"""`fwgen apply` without a kernel: the guard, the refusals, and the confirm/rollback logic
over a fake firewall. Nothing here may reach a real firewall command: `no_firewall`
makes every one of them fail the test (the kernel proof is tests/kernel/test_apply.py)."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fwgen import apply as applying
from fwgen import apply_targets, procs, runner
from fwgen.apply_targets import ApplyError, Backend
from fwgen.cli import app
from fwgen.errors import FwgenError
from fwgen.guard import admitting_rule, connections, from_keep, from_ssh, lockouts
from fwgen.resolve import resolve_profile

runner_cli = CliRunner()
REAL_START_WATCHER = applying.start_watcher
REAL_WAIT_READY = applying.wait_ready
ADMINS = {"admins": ["192.0.2.0/24", "2001:db8:5::/48"]}


@pytest.fixture(autouse=True)
def no_firewall(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    def refuse(*cmd: str, **_: object) -> str:
        raise AssertionError(f"a unit test reached a firewall command: {cmd}")

    monkeypatch.setattr(apply_targets, "run", refuse)
    monkeypatch.setattr(applying, "start_watcher", lambda *a: refuse("start_watcher"))
    monkeypatch.setenv("FWGEN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    (tmp_path / "proc").mkdir()
    monkeypatch.setattr(procs, "PROC", tmp_path / "proc")  # no sshd, no ancestors
    yield tmp_path / "state"


# the guard ---------------------------------------------------------------------------


def test_ssh_connection_and_keep_are_parsed() -> None:
    ssh = from_ssh("192.0.2.7 51234 192.0.2.1 2222")
    assert (str(ssh.client), ssh.port, str(ssh.server)) == ("192.0.2.7", 2222, "192.0.2.1")
    assert str(from_ssh("::ffff:192.0.2.7 1 ::ffff:192.0.2.1 22").client) == "192.0.2.7"
    assert str(from_ssh("fe80::1%eth0 1 fe80::2%eth0 22").client) == "fe80::1"
    assert (str(from_keep("192.0.2.9").client), from_keep("192.0.2.9").port) == ("192.0.2.9", 22)
    assert from_keep("192.0.2.9:2200").port == 2200
    assert from_keep("[2001:db8::9]:443").port == 443
    assert from_keep("2001:db8::9").client == ipaddress.ip_address("2001:db8::9")


@pytest.mark.parametrize(
    "bad", ["not-an-address", "192.0.2.1:0", "192.0.2.1:99999", "[2001:db8::1]x", "1.2.3.4:ssh"]
)
def test_bad_keep_is_a_user_error(bad: str) -> None:
    with pytest.raises(FwgenError, match="--keep"):
        from_keep(bad)


def test_bad_ssh_connection_is_a_user_error() -> None:
    with pytest.raises(FwgenError, match="SSH_CONNECTION"):
        from_ssh("192.0.2.7 51234")


def test_guard_admits_by_port_source_and_family() -> None:
    policy = resolve_profile("webserver", ADMINS)
    inside = from_ssh("192.0.2.7 1 192.0.2.1 22")
    rule = admitting_rule(policy, inside)
    assert rule is not None and rule.name == "ssh"
    assert admitting_rule(policy, from_ssh("2001:db8:5::7 1 2001:db8::1 22")) is not None
    assert admitting_rule(policy, from_ssh("198.51.100.7 1 192.0.2.1 22")) is None
    # the port matters: https is open to all, a port nothing opens is not
    assert admitting_rule(policy, from_keep("198.51.100.7:443")) is not None
    assert admitting_rule(policy, from_keep("192.0.2.7:2222")) is None
    # an IPv4-only admins network does not admit an IPv6 client
    v4only = resolve_profile("webserver", {"admins": ["192.0.2.0/24"]})
    assert admitting_rule(v4only, from_ssh("2001:db8:5::7 1 2001:db8::1 22")) is None


def test_guard_message_names_the_rule_and_the_fix() -> None:
    policy = resolve_profile("webserver", ADMINS)
    found = connections({"SSH_CONNECTION": "198.51.100.7 1 192.0.2.1 22"}, ["203.0.113.5:2222"])
    messages = lockouts(policy, found)
    assert messages == [
        "the new rules would cut off a new connection from 198.51.100.7 to port 22/tcp "
        "(SSH_CONNECTION); needed: 198.51.100.7 in network 'admins', which rule 'ssh' "
        "(profiles/webserver.yaml:14) admits to port 22/tcp (e.g. --set admins=...,198.51.100.7)",
        "the new rules would cut off a new connection from 203.0.113.5 to port 2222/tcp "
        "(--keep 203.0.113.5:2222); needed: an inbound rule for 2222/tcp from 203.0.113.5",
    ]


def test_guard_message_for_an_address_written_in_the_rule(tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("description: x\ninbound:\n  - service: ssh\n    from: 192.0.2.0/24\n")
    found = lockouts(resolve_profile(str(profile)), [from_keep("198.51.100.7")])
    assert found == [
        "the new rules would cut off a new connection from 198.51.100.7 to port 22/tcp "
        f"(--keep 198.51.100.7); needed: 198.51.100.7 in the `from:` of rule 'ssh' ({profile.name}:3)"
    ]


NO_SHORTCUT = """description: x
options: {{established: false}}
inbound:
  - service: ssh
    from: 192.0.2.0/24
{limit}outbound: {outbound}
"""


@pytest.mark.parametrize(
    ("limit", "outbound", "message"),
    [
        ("    limit: 5/minute\n", "accept", "rule 'ssh' (p.yaml:4) has a limit, which admits new"),
        ("", "[{service: dns}]", "its replies (from port 22/tcp) are not let out"),
        # replies out, but only to other clients or other ports: still cut off
        ("", "[{port: 443/tcp, name: web, to: 192.0.2.0/24}]", "are not let out"),
        ("", "[{port: 1024-65535/tcp, name: r, to: 198.51.100.0/24}]", "are not let out"),
        ("", "accept", ""),
        ("", "[{port: 1024-65535/tcp, name: r, to: 192.0.2.0/24}]", ""),
        ("", "[{port: 50000/tcp, name: r}]", ""),  # the client's own port (SSH_CONNECTION)
    ],
)
def test_without_established_the_guard_needs_every_packet_admitted(
    tmp_path: Path, limit: str, outbound: str, message: str
) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(NO_SHORTCUT.format(limit=limit, outbound=outbound))
    policy = resolve_profile(str(profile))
    found = lockouts(policy, [from_ssh("192.0.2.7 50000 192.0.2.1 22")])
    assert [message in m for m in found] == ([True] if message else [])
    if not message:  # a --keep connection's client port is unknown: any ephemeral port
        kept = lockouts(policy, [from_keep("192.0.2.7")])
        assert (kept == []) == ("50000" not in outbound)


# the command's refusals (exit 2, nothing touched) ------------------------------------


def apply_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner_cli.invoke(app, ["apply", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_windows_prints_the_script_and_the_command_to_run_it() -> None:
    code, out, err = apply_cli("webserver", "--target", "windows", "--set", "admins=10.1.0.0/16")
    assert code == 2
    assert "New-NetFirewallRule" in out
    assert "powershell -NoProfile -ExecutionPolicy Bypass -File .\\fwgen.ps1" in err


def test_refuses_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(applying.os, "geteuid", lambda: 1000)
    code, _, err = apply_cli("webserver", "-t", "nftables", "--set", "admins=10.1.0.0/16")
    assert (code, err) == (2, "error: fwgen apply loads rules into the kernel: run it as root\n")


def test_refuses_a_lockout_and_touches_nothing(no_firewall: Path) -> None:
    env = {"SSH_CONNECTION": "198.51.100.7 50000 192.0.2.1 22"}
    code, _, err = apply_cli("webserver", "-t", "iptables", "--set", "admins=10.1.0.0/16", env=env)
    assert code == 2
    assert "would cut off a new connection from 198.51.100.7 to port 22/tcp" in err
    assert err.endswith("error: nothing was loaded; --force loads anyway\n")
    assert not (no_firewall / "pending").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "nftables"], "give a PROFILE and --target"),
        (["webserver"], "give a PROFILE and --target"),
        (["webserver", "-t", "nftables", "--confirm", "0"], "--confirm 0.0: give a number"),
        (["webserver", "-t", "nftables", "--keep", "nowhere"], "--keep nowhere:"),
        (["--confirm-pending"], "no apply is pending"),
        (["--rollback-pending"], "no apply is pending"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    code, _, err = apply_cli(*args)
    assert code == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err


# confirm and roll back, over a fake firewall -----------------------------------------


class Fake(Backend):
    """Records what would have been done, in the pending folder's parent."""

    name = "fake"
    tools = ()
    replaces = "the fake firewall"
    fail_load = False

    def _log(self, work: Path, step: str) -> None:
        with open(work.parent / "steps", "a") as steps:
            steps.write(step + "\n")

    def validate(self, work: Path) -> None:
        self._log(work, "validate")

    def save(self, work: Path) -> None:
        self._log(work, "save")

    def load(self, work: Path) -> None:
        self._log(work, "load")
        if self.fail_load:
            raise ApplyError("load failed")

    def restore(self, work: Path) -> None:
        self._log(work, "restore")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[Fake]:
    monkeypatch.setitem(apply_targets.BACKENDS, "fake", Fake)
    monkeypatch.setattr(applying, "start_watcher", lambda *a: 0)
    monkeypatch.setattr(applying, "wait_ready", lambda *a: None)
    monkeypatch.setattr(applying.os, "geteuid", lambda: 0)
    return Fake


def request(confirm: float | None = 5.0) -> applying.Request:
    return applying.Request(target="fake", files={"f": "x\n"}, profile="p", confirm=confirm)


def steps(state: Path) -> list[str]:
    return (state / "steps").read_text().split()


@pytest.mark.parametrize(
    ("answers", "code", "done"),
    [
        (["yes\n"], 0, ["validate", "save", "load"]),
        ([None, None, "yes\n"], 0, ["validate", "save", "load"]),
        (["no\n"], 1, ["validate", "save", "load", "restore"]),
        (["", None], 1, ["validate", "save", "load", "restore"]),  # end of input, then the deadline
    ],
)
def test_answers(
    fake: type[Fake], no_firewall: Path, answers: list[str | None], code: int, done: list[str]
) -> None:
    said: list[str] = []
    given = iter(answers)
    confirm = 0.5 if answers[0] == "" else 5.0
    assert applying.apply(request(confirm), said.append, lambda _: next(given, None)) == code
    assert steps(no_firewall) == done
    assert not (no_firewall / "pending").exists()
    outcome = json.loads((no_firewall / "last/meta.json").read_text())["outcome"]
    assert outcome == ("confirmed" if code == 0 else "rolled back")


def test_yes_over_ssh_waits_for_a_new_connection_from_the_admin(
    fake: type[Fake], no_firewall: Path
) -> None:
    said: list[str] = []
    given = iter(["yes\n"])
    over_ssh = applying.Request(
        target="fake",
        files={"f": "x\n"},
        profile="p",
        confirm=1.0,
        connections=(from_ssh("192.0.2.7 50000 192.0.2.1 22"),),
    )
    assert applying.apply(over_ssh, said.append, lambda _: next(given, None)) == 1
    assert (
        "no new connection from 192.0.2.7 since the load: open one, then answer 'yes' again" in said
    )
    assert steps(no_firewall) == ["validate", "save", "load", "restore"]


def test_yes_keeps_without_asking_and_a_failed_load_restores(
    fake: type[Fake], no_firewall: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(_: float) -> str:
        raise AssertionError("asked")

    assert applying.apply(request(None), print, never) == 0
    assert steps(no_firewall) == ["validate", "save", "load"]
    monkeypatch.setattr(Fake, "fail_load", True)
    assert applying.apply(request(None), print, never) == 1
    assert steps(no_firewall)[3:] == ["validate", "save", "load", "restore"]


def test_one_pending_apply_at_a_time_and_a_late_confirmation_is_refused(
    fake: type[Fake], no_firewall: Path
) -> None:
    def second(_: float) -> str | None:
        with pytest.raises(applying.Refused, match="another apply is pending"):
            applying.apply(request(), print, second)
        # the watcher's view: not due yet, so nothing is done
        token = applying.pending_token(no_firewall)
        assert token is not None
        assert applying.finish(no_firewall, token, applying.ROLLBACK, when_due=True) == ""
        assert applying.watch(no_firewall, "someone else") == "finished elsewhere"
        assert applying.settle_pending(applying.CONFIRMED, print) == 0
        return None

    assert applying.apply(request(), print, second) == 0
    assert steps(no_firewall) == ["validate", "save", "load"]


def test_the_watcher_rolls_back_at_the_deadline(fake: type[Fake], no_firewall: Path) -> None:
    def watcher(_: float) -> str | None:
        token = applying.pending_token(no_firewall)
        assert token is not None
        applying.update_meta(no_firewall / "pending", deadline=0)
        assert applying.watch(no_firewall, token) == "rolled back"
        return None

    assert applying.apply(request(), print, watcher) == 1
    assert steps(no_firewall) == ["validate", "save", "load", "restore"]


def test_a_failed_rollback_keeps_the_saved_state_until_the_admin_decides(
    fake: type[Fake], no_firewall: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Fake, work: Path) -> None:
        raise ApplyError("`nft -f restore.nft` failed: busy")

    monkeypatch.setattr(Fake, "restore", broken)
    (no_firewall / "saved-by-hand").parent.mkdir(parents=True, exist_ok=True)
    said: list[str] = []
    assert applying.apply(request(), said.append, lambda _: "no\n") == 1
    assert said[-1] == (
        "rollback FAILED: `nft -f restore.nft` failed: busy; "
        f"the saved state stays in {no_firewall}/pending/saved: "
        "`fwgen apply --confirm-pending` keeps the rules loaded now, "
        "`fwgen apply --rollback-pending` restores the saved ones"
    )
    # the next apply neither starts nor deletes what the rollback needs
    with pytest.raises(applying.Refused, match=r"its rollback failed \(rollback FAILED: "):
        applying.apply(request(None), print, lambda _: None)
    assert (no_firewall / "pending/meta.json").exists()
    # --rollback-pending tries again; once the firewall takes it, the state is settled
    monkeypatch.setattr(Fake, "restore", lambda self, work: self._log(work, "restore"))
    assert applying.settle_pending(applying.ROLLBACK, print) == 1
    assert not (no_firewall / "pending").exists()
    assert steps(no_firewall)[-1] == "restore"
    assert json.loads((no_firewall / "last/meta.json").read_text())["outcome"] == "rolled back"


def test_after_a_failed_rollback_confirm_pending_keeps_the_loaded_rules(
    fake: type[Fake], no_firewall: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Fake, work: Path) -> None:
        raise ApplyError("busy")

    monkeypatch.setattr(Fake, "restore", broken)
    assert applying.apply(request(), print, lambda _: "no\n") == 1
    assert applying.settle_pending(applying.CONFIRMED, print) == 0
    assert json.loads((no_firewall / "last/meta.json").read_text())["outcome"] == "confirmed"


def dead_process() -> tuple[int, int]:
    """The pid and start time of a process that has ended."""
    child = subprocess.Popen(["true"])
    ticks = procs.start_ticks(child.pid)
    child.wait()
    assert ticks is not None
    return child.pid, ticks


def leave_pending(state: Path, **meta: object) -> None:
    """A pending apply as a killed `fwgen apply` leaves it."""
    pending = state / "pending"
    (pending / "saved").mkdir(parents=True)
    (pending / "saved/rules").write_text("the old rules\n")
    pid, ticks = dead_process()
    base = {"id": "old", "target": "fake", "flush_ruleset": False, "profile": "old.yaml"}
    base |= {"started": 1.0, "deadline": 2.0, "pid": pid, "pid_start": ticks}
    applying.write_meta(pending, base | meta)


def test_a_yes_apply_killed_after_loading_counts_as_confirmed(
    fake: type[Fake], no_firewall: Path
) -> None:
    no_firewall.mkdir(mode=0o700)
    leave_pending(no_firewall, yes=True, loaded=3.0)
    said: list[str] = []
    assert applying.apply(request(None), said.append, lambda _: None) == 0
    assert "the --yes apply of old.yaml was stopped after loading: its rules stay" in said
    assert json.loads((no_firewall / "last/meta.json").read_text())["outcome"] == "confirmed"


@pytest.mark.parametrize(
    "meta",
    [
        {"yes": True},  # killed while loading: what is loaded is unknown
        {"yes": False, "loaded": 3.0, "watcher": 1, "watcher_start": 1},  # its rollback died
        # pid reused: the recorded pid runs, but it is a newer process
        {"yes": False, "loaded": 3.0, "pid": os.getpid(), "pid_start": 1},
    ],
)
def test_an_abandoned_apply_is_reported_and_its_state_kept(
    fake: type[Fake], no_firewall: Path, meta: dict[str, object]
) -> None:
    no_firewall.mkdir(mode=0o700)
    leave_pending(no_firewall, **meta)
    with pytest.raises(applying.Refused) as refused:
        applying.apply(request(None), print, lambda _: None)
    assert "its processes are gone (killed?), and no rollback runs" in str(refused.value)
    assert "`fwgen apply --confirm-pending` keeps the rules loaded now" in str(refused.value)
    assert "`fwgen apply --rollback-pending` restores the saved ones" in str(refused.value)
    assert (no_firewall / "pending/saved/rules").read_text() == "the old rules\n"
    assert not (no_firewall / "steps").exists()


def test_a_pending_apply_whose_process_runs_is_not_abandoned(
    fake: type[Fake], no_firewall: Path
) -> None:
    no_firewall.mkdir(mode=0o700)
    leave_pending(no_firewall, yes=True, loaded=3.0)
    applying.update_meta(
        no_firewall / "pending", pid=os.getpid(), pid_start=procs.start_ticks(os.getpid())
    )
    with pytest.raises(applying.Refused, match="it waits for confirmation"):
        applying.apply(request(None), print, lambda _: None)


@pytest.mark.parametrize("how", ["link", "mode", "owner"])
def test_a_state_folder_others_control_is_refused(
    fake: type[Fake], no_firewall: Path, tmp_path: Path, how: str
) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    if how == "link":
        no_firewall.symlink_to(real)
        why = "not a directory (a link or a file)"
    else:
        no_firewall.mkdir(mode=0o700)
        if how == "mode":
            no_firewall.chmod(0o777)
            why = "writable by others (mode 777)"
        else:
            os.chown(no_firewall, 65534, 0)
            why = f"owned by uid 65534, not by uid {os.geteuid()} which runs fwgen"
    with pytest.raises(applying.Refused) as refused:
        applying.apply(request(None), print, lambda _: None)
    assert str(refused.value) == (
        f"{no_firewall}: {why}; fwgen keeps the state it restores there: remove it, "
        "or set FWGEN_STATE_DIR to a folder only root can write"
    )
    assert not (real / "pending").exists() and not (no_firewall / "pending").exists()


def test_refuses_iptables_coexist_mode_which_it_would_flatten() -> None:
    code, out, err = apply_cli(
        "docker-host", "-t", "iptables", "--set", "admins=10.1.0.0/16",
        "--set", "web_clients=10.2.0.0/16", "--yes",
    )  # fmt: skip
    assert code == 2 and out == ""
    assert err == (
        "error: fwgen apply cannot load iptables in coexist mode (containers: or coexist:) yet: "
        "it would replace the chains of Docker and others; render with -o DIR and run "
        "DIR/fwgen-iptables.sh, or use --target nftables\n"
    )


# the rollback process and the commands fwgen starts -----------------------------------

HOSTILE = "import pathlib; pathlib.Path({marker!r}).write_text('ran')\n"


def hostile_site(folder: Path, marker: Path) -> Path:
    """A site repository holding its own `fwgen` package that would write *marker*."""
    package = folder / "fwgen"
    package.mkdir(parents=True)
    for name in ("__init__.py", "apply.py", "runner.py"):
        (package / name).write_text(HOSTILE.format(marker=str(marker)))
    return folder


def test_the_rollback_process_imports_nothing_from_where_it_runs(
    no_firewall: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker"
    site = hostile_site(tmp_path / "site", marker)
    monkeypatch.chdir(site)
    for name in ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME"):
        monkeypatch.setenv(name, str(site) if name != "PYTHONHOME" else "/nonexistent")
    no_firewall.mkdir(mode=0o700)
    applying.write_meta(no_firewall / "pending", {"id": "t0k", "deadline": 1e12})
    pid = REAL_START_WATCHER(no_firewall, "t0k")
    try:
        REAL_WAIT_READY(no_firewall / "pending", "t0k", pid)  # the real fwgen runs it
        assert (no_firewall / "pending/watcher-ready").read_text() == f"t0k {pid}\n"
        assert Path(f"/proc/{pid}/cwd").resolve() == Path("/")
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert sorted(e for e in environ if e) == [
            b"LC_ALL=C",
            b"PATH=" + runner.SAFE_PATH.encode(),
        ]
    finally:
        shutil.rmtree(no_firewall / "pending")  # it sees the apply finished elsewhere, and ends
        assert os.waitpid(pid, 0)[1] == 0
    assert not marker.exists()
    assert "finished elsewhere" in (no_firewall / "rollback.log").read_text()


def test_a_rollback_process_that_does_not_start_refuses_the_apply(
    no_firewall: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(applying, "READY_WAIT", 1.0)
    no_firewall.mkdir(mode=0o700)
    (no_firewall / "pending").mkdir()
    sleeper = subprocess.Popen(["sleep", "30"])  # alive, but never says it is ready
    with pytest.raises(applying.Refused, match="the rollback process did not start"):
        REAL_WAIT_READY(no_firewall / "pending", "t0k", sleeper.pid)
    assert sleeper.poll() is not None  # stopped by its pid


def test_commands_run_from_root_with_a_fixed_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker"
    (tmp_path / "env.sh").write_text(f"echo ran > {marker}\n")
    monkeypatch.setenv("BASH_ENV", str(tmp_path / "env.sh"))
    monkeypatch.setenv("ENV", str(tmp_path / "env.sh"))
    monkeypatch.setenv("LD_PRELOAD", "/nonexistent/evil.so")
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    (tmp_path / "bash").write_text(f"#!/bin/sh\necho ran > {marker}\n")
    (tmp_path / "bash").chmod(0o755)
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "show.sh"
    script.write_text('pwd; echo "$-"; env | sort\n')
    done = runner.run(["bash", str(script)], timeout=30)
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "/"
    assert not marker.exists()
    shown = {line.partition("=")[0] for line in lines[2:]}
    assert {"BASH_ENV", "ENV", "LD_PRELOAD", "PYTHONPATH"}.isdisjoint(shown)
    assert f"PATH={runner.SAFE_PATH}" in lines and "LC_ALL=C" in lines
