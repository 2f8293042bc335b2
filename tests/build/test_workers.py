"""A build's hosts rendered in several processes: the same files, warnings and errors as in
one, in host order; a worker that dies fails the build with nothing written; Ctrl-C
leaves no file and no process behind."""

from __future__ import annotations

import errno
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fwgen.build import manifest as manifest_module
from fwgen.build import workers
from fwgen.build.workers import job_count, run_all
from fwgen.cli.app import app
from fwgen.errors import FwgenError, FwgenErrors, ProfileError
from tests.build.test_build import files_under

runner = CliRunner()
PARENT = os.getpid()


def children() -> list[int]:
    """The processes this one started that have not been reaped."""
    text = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text()
    return [int(pid) for pid in text.split()]


def whose(item: int) -> tuple[int, int]:
    return item, os.getpid()


def test_items_come_back_in_order_from_several_processes() -> None:
    done, failure = run_all(whose, range(40), jobs=3)
    assert failure is None
    assert [item for item, _ in done] == list(range(40))
    pids = {pid for _, pid in done}
    assert PARENT in pids and len(pids) == 3  # the parent and two workers
    assert children() == []


def fails_at(*bad: int) -> object:
    def work(item: int) -> int:
        if item in bad:
            raise FwgenError(f"item {item} is bad")
        return item

    return work


@pytest.mark.parametrize("jobs", [1, 2, 3])
@pytest.mark.parametrize("bad", [(0,), (1,), (2,), (9, 4), (4, 9), (17,), (29,)])
def test_the_first_failure_in_item_order_stops_the_results_there(
    jobs: int, bad: tuple[int, ...]
) -> None:
    done, failure = run_all(fails_at(*bad), range(30), jobs=jobs)  # type: ignore[arg-type]
    first = min(bad)
    assert done == list(range(first))
    assert isinstance(failure, FwgenError) and failure.message == f"item {first} is bad"
    assert children() == []


def crashes_in_a_worker(item: int) -> int:
    if item == 6 and os.getpid() != PARENT:  # items 2, 4, 6... go to the worker
        raise KeyError("a bug")
    return item


def test_a_crash_in_a_worker_comes_back_with_its_traceback() -> None:
    done, failure = run_all(crashes_in_a_worker, range(20), jobs=2)
    assert done == [0, 1, 2, 3, 4, 5]
    assert isinstance(failure, RuntimeError) and not isinstance(failure, FwgenError)
    assert "KeyError: 'a bug'" in str(failure) and "crashes_in_a_worker" in str(failure)


def killed_in_a_worker(item: int) -> int:
    if item == 6 and os.getpid() != PARENT:
        os.kill(os.getpid(), signal.SIGKILL)
    return item


def test_a_worker_killed_by_a_signal_is_an_error() -> None:
    with pytest.raises(FwgenError, match="stopped by SIGKILL; nothing written"):
        run_all(killed_in_a_worker, range(20), jobs=2)
    assert children() == []


def interrupted_in_the_parent(item: int) -> int:
    if os.getpid() == PARENT and item > 0:
        raise KeyboardInterrupt
    time.sleep(0.05)
    return item


def test_ctrl_c_in_the_parent_stops_and_reaps_every_worker() -> None:
    with pytest.raises(KeyboardInterrupt):
        run_all(interrupted_in_the_parent, range(40), jobs=3)
    assert children() == []


def test_job_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "usable_cpus", lambda: 2)
    assert [job_count(None, n) for n in (1, 15, 16, 100)] == [1, 1, 2, 2]
    assert job_count(1, 100) == 1 and job_count(4, 100) == 4 and job_count(4, 3) == 3
    monkeypatch.setattr(workers, "usable_cpus", lambda: 8)
    assert [job_count(None, n) for n in (20, 40, 1000)] == [2, 5, 8]
    # --jobs 100000: never more processes than hosts, nor than 4 per usable CPU
    assert job_count(100000, 20) == 20 and job_count(100000, 1000) == 32
    monkeypatch.setattr(workers, "usable_cpus", lambda: 1)
    assert job_count(100000, 1000) == 4 and job_count(3, 1000) == 3


def open_fds() -> list[str]:
    return sorted(os.listdir("/proc/self/fd"))


def refusing(monkeypatch: pytest.MonkeyPatch, call: str, allowed: int, code: int) -> None:
    """`os.fork` or `os.pipe` succeed *allowed* times, then fail as the kernel does when
    it has no process (EAGAIN, ENOMEM) or no file descriptor (EMFILE) to give."""
    real = getattr(os, call)
    calls = []

    def refused() -> object:
        calls.append(1)
        if len(calls) > allowed:
            raise OSError(code, os.strerror(code))
        return real()

    monkeypatch.setattr(os, call, refused)


@pytest.mark.parametrize(
    ("call", "code"), [("fork", errno.EAGAIN), ("fork", errno.ENOMEM), ("pipe", errno.EMFILE)]
)
@pytest.mark.parametrize("allowed", [0, 1])
def test_a_process_refused_leaves_its_share_to_this_one(
    call: str, code: int, allowed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = open_fds()
    refusing(monkeypatch, call, allowed, code)
    done, failure = run_all(whose, range(40), jobs=4)
    assert failure is None
    assert [item for item, _ in done] == list(range(40))
    assert len({pid for _, pid in done} - {PARENT}) == allowed
    assert children() == [] and open_fds() == before  # no pipe left open


def test_a_refused_process_fails_on_the_first_bad_item_as_one_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refusing(monkeypatch, "fork", 1, errno.EAGAIN)
    done, failure = run_all(fails_at(23, 6), range(30), jobs=3)  # type: ignore[arg-type]
    assert done == list(range(6)) and isinstance(failure, FwgenError)
    assert failure.message == "item 6 is bad"


# -------------------------------------------------------------- whole builds


def site(folder: Path, hosts: int, bad: tuple[int, ...] = ()) -> Path:
    """*hosts* hosts over several targets: some with their own admins, some warned about
    placeholders, some approximated (Windows cannot rate-limit), *bad* ones broken."""
    (folder / "limited.yaml").write_text(
        "description: limited\nextends: base\nnetworks:\n  admins: [10.255.0.0/16]\ninbound:\n"
        "  - {service: ssh, from: admins, limit: 3/minute}\n"
    )
    lines = ["hosts:"]
    for i in range(hosts):
        lines += [f"  h{i:03}:", f"    profile: {'limited.yaml' if i % 2 == 0 else 'webserver'}"]
        if i in bad:
            lines += ["    set: {admins: [10.0.0.300/24]}"]
        elif i % 5:
            lines += [f"    set: {{admins: [10.{i}.0.0/24]}}"]
        targets = {
            0: "nftables: out/h{i}.nft",
            1: "iptables: out/h{i}/",
            2: "windows: out/h{i}.ps1",
        }
        lines += [
            "    targets:",
            f"      {targets[i % 3].format(i=i)}",
            f"      ufw: out/u{i}.rules",
        ]
    path = folder / "fwgen.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def fwgen(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fwgen", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "FWGEN_JOBS": ""},
    )


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_parallel_build_writes_and_says_what_a_serial_one_does(tmp_path: Path) -> None:
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    for folder in (serial, parallel):
        folder.mkdir()
        site(folder, 100)
    one = fwgen("build", "fwgen.yaml", "--jobs", "1", cwd=serial)
    two = fwgen("build", "fwgen.yaml", "--jobs", "2", cwd=parallel)
    assert one.returncode == two.returncode == 0, one.stderr + two.stderr
    written = contents(serial / "out")
    assert len(written) == 34 + 33 * 3 + 33 + 100  # nftables, iptables, windows, ufw
    assert contents(parallel / "out") == written
    assert two.stdout == one.stdout and two.stderr == one.stderr
    warned = one.stderr.splitlines()
    assert any(w.startswith("warning: h002 (windows): ssh") for w in warned), warned[:5]
    assert any(w.startswith("warning: h005: network 'admins'") for w in warned), warned[:5]


def test_a_parallel_build_fails_on_the_first_bad_host_as_a_serial_one(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    site(folder, 60, bad=(41, 22))
    results = [fwgen("build", "fwgen.yaml", "-j", str(j), cwd=folder) for j in (1, 2, 3)]
    for result in results:
        assert result.returncode == 2
        assert result.stderr == results[0].stderr
    assert results[0].stderr.count("error: ") == 1 and "hosts.h022.set.admins" in results[0].stderr
    assert "warning" not in results[0].stderr  # as before: an error, then nothing else
    assert not (folder / "out").exists()


def test_build_jobs_100000_with_no_process_to_be_had_writes_what_one_process_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    for folder in (serial, parallel):
        folder.mkdir()
        site(folder, 30)
    one = runner.invoke(app, ["build", str(serial / "fwgen.yaml"), "--jobs", "1"])
    refusing(monkeypatch, "fork", 1, errno.EAGAIN)
    many = runner.invoke(app, ["build", str(parallel / "fwgen.yaml"), "--jobs", "100000"])
    assert one.exit_code == many.exit_code == 0, many.output
    assert many.exception is None
    assert contents(parallel / "out") == contents(serial / "out") != {}
    assert many.stderr == one.stderr
    assert many.stdout == one.stdout.replace(str(serial), str(parallel))
    assert children() == []


def test_a_worker_killed_fails_the_build_with_nothing_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    path = site(folder, 40)
    resolve = manifest_module.resolve_profile

    def dies(*args: object, **kwargs: object) -> object:
        if os.getpid() != PARENT:
            os.kill(os.getpid(), signal.SIGKILL)
        return resolve(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(manifest_module, "resolve_profile", dies)
    result = runner.invoke(app, ["build", str(path), "--jobs", "2"])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "error: a process rendering hosts was stopped by SIGKILL; nothing written "
        "(--jobs 1 renders every host in one process)"
    ]
    assert files_under(folder) == ["fwgen.yaml", "limited.yaml"]
    assert children() == []


class KeywordOnly(FwgenError):
    """An error whose class cannot be rebuilt from its message: unpickling it fails."""

    def __init__(self, message: str, *, column: int) -> None:
        super().__init__(message, path="bad.yaml", line=3, field="inbound[0]")
        self.column = column


def unpicklable() -> FwgenError:
    error = FwgenError("a value that does not pickle", path="bad.yaml", line=2)
    error.value = lambda: None  # type: ignore[attr-defined]
    return error


def several() -> FwgenError:
    return FwgenErrors(
        [
            ProfileError("unknown service 'htps'", path="bad.yaml", line=4, field="inbound[1]"),
            FwgenError("the second problem"),
        ]
    )


FAILURES = {
    "a class that does not unpickle": lambda: KeywordOnly("an odd error", column=4),
    "a value that does not pickle": unpicklable,
    "several errors": several,
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_an_error_in_a_worker_reads_as_in_one_process(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever an error's class holds, a parallel build says what a serial one does."""
    resolve = manifest_module.resolve_profile

    def fails(profile: str, *args: object, **kwargs: object) -> object:
        if profile == "bad.yaml":
            (tmp_path / f"failed-in-{os.getpid()}").touch()
            raise FAILURES[case]()
        return resolve(profile, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(manifest_module, "resolve_profile", fails)
    folder = tmp_path / "site"
    folder.mkdir()
    hosts = [  # h08 is rendered by the second process of two
        f"  h{i:02}: {{profile: {'bad.yaml' if i == 8 else 'webserver'}, "
        f"set: {{admins: 10.0.0.0/8}}, targets: {{nftables: out/h{i:02}.nft}}}}"
        for i in range(12)
    ]
    (folder / "fwgen.yaml").write_text("\n".join(["hosts:", *hosts]) + "\n")
    serial = runner.invoke(app, ["build", str(folder / "fwgen.yaml"), "--jobs", "1"])
    parallel = runner.invoke(app, ["build", str(folder / "fwgen.yaml"), "--jobs", "2"])
    assert serial.exit_code == parallel.exit_code == 2, parallel.output
    assert isinstance(parallel.exception, SystemExit)  # no traceback
    assert (
        parallel.stderr
        == serial.stderr
        == "".join(f"error: {line}\n" for line in str(FAILURES[case]()).splitlines())
    )
    failed_in = {int(p.name.rsplit("-", 1)[1]) for p in tmp_path.glob("failed-in-*")}
    assert PARENT in failed_in and len(failed_in) == 2  # once in this process, once in a worker
    assert files_under(folder) == ["fwgen.yaml"]


def test_an_error_sent_by_a_worker_keeps_its_class_and_place() -> None:
    sent = workers.sent_error(several())
    error = workers.received_error(*pickle.loads(pickle.dumps(sent)))
    assert isinstance(error, FwgenErrors) and [type(e) for e in error.errors] == [
        ProfileError,
        FwgenError,
    ]
    first = error.errors[0]
    assert (first.path, first.line, first.field) == ("bad.yaml", 4, "inbound[1]")
    assert str(error) == str(several())


def processes_in_group(group: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[2]) == group:
                found.append(int(entry.name))
    return found


def test_ctrl_c_leaves_no_file_and_no_process_behind(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    site(folder, 1500)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fwgen", "build", "fwgen.yaml", "--jobs", "2"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a terminal's job is
    )
    children_file = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.monotonic() + 60
    while not children_file.read_text().split() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert children_file.read_text().split(), "no worker started"
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: to the whole group
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.decode().splitlines()[-1] == "fwgen: interrupted"
    assert processes_in_group(proc.pid) == []
    assert files_under(folder) == ["fwgen.yaml", "limited.yaml"]


SLOW_BUILD = """
import os, sys, time
from fwgen.build.workers import run_all
def slow(item):
    time.sleep(0.5)
    return item
print(os.getpid(), flush=True)
run_all(slow, list(range(400)), jobs=3)
"""


def test_a_parent_killed_leaves_no_worker_running() -> None:
    """SIGTERM (systemd, a CI job cancelled, `kill`) or SIGKILL (the OOM killer) ends the
    parent without its `finally`: its workers must not render on, orphaned, for minutes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_BUILD], stdout=subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout is not None
    parent = int(proc.stdout.readline())
    children_file = Path(f"/proc/{parent}/task/{parent}/children")
    deadline = time.monotonic() + 30
    while len(children_file.read_text().split()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = [int(pid) for pid in children_file.read_text().split()]
    assert len(started) == 2, started
    os.kill(parent, signal.SIGTERM)  # the parent alone, as `kill PID` does
    proc.wait(timeout=30)
    proc.stdout.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in started):
        time.sleep(0.05)
    left = [p for p in started if Path(f"/proc/{p}").exists()]
    for pid in left:  # this test's own orphans, by their pids
        os.kill(pid, signal.SIGKILL)
    assert left == []
