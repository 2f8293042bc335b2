"""`fwgen apply`'s state and helper processes without a kernel: a failed rollback, an
abandoned apply, a state folder others control, the rollback process and the commands
fwgen starts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fwgen import runner
from fwgen.host import apply as applying
from fwgen.host import procs
from fwgen.host.backends import ApplyError
from fwgen.host.state import Refused, update_meta, write_meta
from tests.applyfakes import REAL_START_WATCHER, REAL_WAIT_READY, Fake, request, steps

pytestmark = pytest.mark.usefixtures("no_firewall")


# a failed rollback, an abandoned apply, the state folder ------------------------------


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
    with pytest.raises(Refused, match=r"its rollback failed \(rollback FAILED: "):
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
    write_meta(pending, base | meta)


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
    with pytest.raises(Refused) as refused:
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
    update_meta(no_firewall / "pending", pid=os.getpid(), pid_start=procs.start_ticks(os.getpid()))
    with pytest.raises(Refused, match="it waits for confirmation"):
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
    with pytest.raises(Refused) as refused:
        applying.apply(request(None), print, lambda _: None)
    assert str(refused.value) == (
        f"{no_firewall}: {why}; fwgen keeps the state it restores there: remove it, "
        "or set FWGEN_STATE_DIR to a folder only root can write"
    )
    assert not (real / "pending").exists() and not (no_firewall / "pending").exists()


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
    write_meta(no_firewall / "pending", {"id": "t0k", "deadline": 1e12})
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
    with pytest.raises(Refused, match="the rollback process did not start"):
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
