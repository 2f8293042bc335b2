"""Load a rendered ruleset safely: check it, save what it replaces, load it, and put the
old state back unless someone confirms in time.

The state lives in ``/run/fwgen`` (``$FWGEN_STATE_DIR``), mode 0700: ``pending/`` while
an apply waits (it is also the lock: one pending apply at a time), ``last/`` for the
one before, and ``lock`` for the file lock every change of state takes. Before loading,
a detached process (its own session, no terminal) is started that rolls back at the
deadline, so a dead terminal or SSH session still gets its firewall back. Confirming
(the prompt, or ``fwgen apply --confirm-pending`` from a new session) and rolling back
both go through `finish`, under the lock; whichever comes first wins.

Exit codes: 0 applied, 1 rolled back, 2 refused before anything was touched.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fwgen import runner, stopping
from fwgen.errors import FwgenError
from fwgen.host import admin, backends, procs
from fwgen.host.backends import ApplyError, Backend, write_private
from fwgen.host.firewalld import Firewalld
from fwgen.host.guard import Connection
from fwgen.host.state import (
    SETTLE,
    Refused,
    abandoned_yes,
    locked,
    read_meta,
    state_dir,
    stuck,
    update_meta,
    write_meta,
)

PACKAGE = Path(__file__).resolve().parents[1]  # the fwgen running now
APPLIED, ROLLED_BACK = 0, 1
CONFIRMED, ROLLBACK = "confirmed", "rolled back"
POLL = 0.2  # seconds between looks at the pending state
BACKENDS: dict[str, type[Backend]] = {**backends.BACKENDS, Firewalld.name: Firewalld}

Say = Callable[[str], None]


def backend_of(meta: dict[str, object]) -> Backend:
    return BACKENDS[str(meta["target"])](flush_ruleset=bool(meta["flush_ruleset"]))


def finish(state: Path, token: str, outcome: str, when_due: bool = False) -> str:
    """Confirm or roll back the pending apply *token*; what became of it. When it was
    already finished (by the prompt, a second session or the rollback process), that
    outcome is returned and nothing is done again. With *when_due*, nothing is done
    ("") while its deadline has not come (a load that took long moved it). A stop
    signal waits until that is done: no state is left half-changed."""
    with stopping.held(), locked(state):
        meta = read_meta(state / "pending")
        if meta is None or meta["id"] != token:
            last = read_meta(state / "last")
            return str(last.get("outcome", ROLLBACK)) if last and last["id"] == token else ROLLBACK
        if when_due and time.time() < float(str(meta["deadline"])):
            return ""
        return settle(state, meta, outcome)


def settle(state: Path, meta: dict[str, object], outcome: str) -> str:
    """Under the lock: confirm or roll back the pending apply *meta*. A rollback that
    fails leaves everything in ``pending/`` (no later apply starts, none deletes the
    saved state) until the admin settles it."""
    pending = state / "pending"
    if outcome == ROLLBACK:
        try:
            backend_of(meta).restore(pending)
        except (ApplyError, OSError) as error:
            failed = f"rollback FAILED: {error}; the saved state stays in {pending}/saved"
            update_meta(pending, failed=failed)
            return f"{failed}: {SETTLE}"
    meta.update(outcome=outcome, finished=time.time())
    meta.pop("failed", None)
    write_meta(pending, meta)
    shutil.rmtree(state / "last", ignore_errors=True)
    pending.rename(state / "last")
    return outcome


def pending_token(state: Path) -> str | None:
    """The id of the apply that waits (not of one whose rollback failed: that one waits
    for the admin, not for an answer)."""
    meta = read_meta(state / "pending")
    return str(meta["id"]) if meta and not meta.get("failed") else None


def watch(state: Path, token: str) -> str:
    """The detached rollback: wait for the deadline unless the apply is finished first.
    The deadline is read from the pending state each time: the apply moves it to
    *seconds after the load* once loading is done (a slow ufw script does not eat
    the time to confirm), and when the apply dies while loading, the first one holds."""
    while True:
        meta = read_meta(state / "pending")
        if meta is None or meta["id"] != token:
            return "finished elsewhere"
        if time.time() >= float(str(meta["deadline"])):
            outcome = finish(state, token, ROLLBACK, when_due=True)
            if outcome:
                return outcome
        time.sleep(POLL)


WATCHER = (
    "import os, sys; os.chdir('/'); sys.path.insert(0, sys.argv[1]); "
    "from fwgen.host.apply import main; sys.exit(main(sys.argv[1:]))"
)
READY_WAIT = 20.0  # seconds the rollback process may take to start (a busy machine)


def start_watcher(state: Path, token: str) -> int:
    """Start `watch` in its own session, with no terminal: it outlives this process, the
    shell and the SSH connection (their hangup and interrupt signals do not reach it).
    An isolated interpreter (``-I``: no PYTHON* variables, no user site, no working
    directory on its path), from ``/``, with a fixed environment, that imports the fwgen
    running now from the folder it came from, and nothing else from anywhere.
    Never waited for: it is spawned, not a child object a garbage collector reports."""
    home = str(PACKAGE.parent)
    log = os.open(state / "rollback.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        return os.posix_spawn(
            sys.executable,
            [sys.executable, "-I", "-c", WATCHER, home, str(state), token],
            runner.environment(),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, log, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(log)


def wait_ready(pending: Path, token: str, pid: int) -> None:
    """Return once the rollback process *pid* has said it runs (its mark in *pending*);
    refuse when it has not within `READY_WAIT` seconds or has died: then nothing
    would bring the old rules back, so nothing may be loaded."""
    mark = pending / "watcher-ready"
    end = time.time() + READY_WAIT
    while pid > 0 and time.time() < end:
        with contextlib.suppress(OSError):
            if mark.read_text(encoding="utf-8").split() == [token, str(pid)]:
                return
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                break  # it died
        time.sleep(POLL / 4)
    if pid > 0:  # never 0 or -1: those signal whole process groups
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    raise Refused(
        f"the rollback process did not start (see {pending.parent}/rollback.log): "
        "nothing was loaded"
    )


@dataclass
class Request:
    """One `fwgen apply`: what to load and how carefully."""

    target: str
    files: dict[str, str]
    profile: str
    flush_ruleset: bool = False
    confirm: float | None = 30.0  # seconds to wait; None: --yes
    connections: tuple[Connection, ...] = ()
    lockouts: tuple[str, ...] = ()  # the guard's findings (see fwgen.host.guard.lockouts)
    force: bool = False


def preflight(request: Request, say: Say) -> Backend:
    """Everything that can refuse without touching anything but fwgen's state folder."""
    if os.geteuid() != 0:
        raise Refused("fwgen apply loads rules into the kernel: run it as root")
    backend = BACKENDS[request.target](flush_ruleset=request.flush_ruleset)
    for tool in backend.tools:
        if runner.which(tool) is None:
            raise Refused(f"`{tool}` not found: {request.target} cannot be loaded here")
    if request.lockouts and not request.force:
        raise Refused("\n".join([*request.lockouts, "nothing was loaded; --force loads anyway"]))
    for message in request.lockouts:
        say(f"warning (--force): {message}")
    if request.connections:
        say(f"guard: {len(request.connections)} admin connection(s) to keep")
    for connection in request.connections:
        if not request.lockouts:
            say(f"guard: the new rules admit {connection}")
    if not request.connections:
        say(
            "guard: no admin connection (no SSH_CONNECTION here or in a parent process, "
            "none to sshd) and no --keep: not checking for a lock-out"
        )
    return backend


def begin(
    state: Path, request: Request, backend: Backend, say: Say, deadline: float
) -> tuple[str, Path]:
    """Under the lock: claim `pending`, write the files, check them, save the state."""
    pending = state / "pending"
    meta = read_meta(pending)
    if pending.exists() and meta is None:
        # Left by an apply that stopped before its state was complete: nothing was loaded.
        shutil.rmtree(pending)
    elif meta is not None and abandoned_yes(meta):
        say(f"the --yes apply of {meta['profile']} was stopped after loading: its rules stay")
        settle(state, meta, CONFIRMED)
    elif meta is not None:
        since = time.ctime(float(str(meta["started"])))
        why = stuck(meta) or "it waits for confirmation"
        raise Refused(f"another apply is pending ({pending}, since {since}; {why}): {SETTLE}")
    token = uuid.uuid4().hex
    try:
        pending.mkdir(mode=0o700)
        for name, text in request.files.items():
            write_private(pending / "new" / name, text)
        backend.validate(pending)
        say(f"checked: the {request.target} checker accepts the new rules")
        backend.save(pending)
    except (OSError, FwgenError) as error:
        shutil.rmtree(pending, ignore_errors=True)
        raise Refused(f"nothing was loaded: {error}") from None
    say(f"saved: {backend.replaces}, to {pending}/saved")
    started = time.time()
    write_meta(
        pending,
        {
            "id": token,
            "target": request.target,
            "flush_ruleset": request.flush_ruleset,
            "profile": request.profile,
            "started": started,
            "deadline": deadline,
            "yes": request.confirm is None,
            "pid": os.getpid(),
            "pid_start": procs.start_ticks(os.getpid()),
            "connections": [str(c) for c in request.connections],
            "sessions": [c.session for c in request.connections if c.session],
        },
    )
    return token, pending


def apply(request: Request, say: Say, answer: Callable[[float], str | None]) -> int:
    """Load *request* safely; 0 applied, 1 rolled back (Refused: nothing touched).

    *answer(timeout)* returns a line the user typed, "" at end of input, or None when
    nothing came within *timeout* seconds.
    """
    backend = preflight(request, say)
    state = state_dir()
    seconds = request.confirm or 0.0
    with locked(state):
        token, pending = begin(state, request, backend, say, time.time() + seconds)
        if request.confirm is not None:
            pid = start_watcher(state, token)
            update_meta(pending, watcher=pid, watcher_start=procs.start_ticks(pid))
            try:
                wait_ready(pending, token, pid)
            except Refused:
                shutil.rmtree(pending, ignore_errors=True)
                raise
            say(f"rollback: process {pid} restores the saved state unless confirmed")
        try:
            backend.load(pending)
        except ApplyError as error:
            say(f"loading failed: {error}")
            failed = True
        else:
            failed = False
            say(f"loaded: {request.profile} into {backend.replaces}")
        deadline = time.time() + seconds
        loaded = admin.now_ticks()
        update_meta(pending, deadline=deadline, loaded=time.time(), loaded_ticks=loaded)
    if failed:
        return _report(finish(state, token, ROLLBACK), say)
    if request.confirm is None:
        return _report(finish(state, token, CONFIRMED), say)
    return _report(_wait(state, token, deadline, say, answer, _proof(request, loaded, say)), say)


def _proof(request: Request, loaded: int, say: Say) -> Callable[[], bool]:
    """Whether a 'yes' typed now counts: at once on a local console (no connection to
    protect); over SSH once a new connection from the admin got in after the load."""
    clients = sorted({str(c.client) for c in request.connections})

    def proven() -> bool:
        if not request.connections:
            return True
        found = admin.new_connection(request.connections, loaded)
        if found:
            say(f"a new connection from {found} got in after the load")
        else:
            say(
                f"no new connection from {' or '.join(clients)} since the load: open one, "
                "then answer 'yes' again"
            )
        return bool(found)

    return proven


def _wait(
    state: Path,
    token: str,
    deadline: float,
    say: Say,
    answer: Callable[[float], str | None],
    proven: Callable[[], bool],
) -> str:
    say(
        f"Open a NEW session to this host now. Type 'yes' here (or run `fwgen apply "
        f"--confirm-pending` there) within {max(0, round(deadline - time.time()))} s "
        "to keep the new rules; anything else, or nothing, restores the old ones."
    )
    reading = True
    try:
        while time.time() < deadline and pending_token(state) == token:
            line = answer(min(POLL, max(0.0, deadline - time.time()))) if reading else None
            if not reading:
                time.sleep(POLL)
            if line == "":
                reading = False  # end of input: wait for --confirm-pending or the deadline
            elif line is not None and line.strip() != "yes":
                return finish(state, token, ROLLBACK)
            elif line is not None and proven():
                return finish(state, token, CONFIRMED)
    except KeyboardInterrupt:  # an answer (documented): roll back, and say so
        stopping.answered()
        return finish(state, token, ROLLBACK)
    return finish(state, token, ROLLBACK)


def _report(outcome: str, say: Say) -> int:
    if outcome == CONFIRMED:
        say("applied: the new rules stay")
        return APPLIED
    say(f"{outcome}: the saved state was restored" if outcome == ROLLBACK else outcome)
    return ROLLED_BACK


def stdin_answer(timeout: float) -> str | None:
    """A line from standard input within *timeout* seconds ("" at its end, None if none)."""
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    return sys.stdin.readline() if ready else None


def settle_pending(outcome: str, say: Say) -> int:
    """`--confirm-pending` / `--rollback-pending`: finish the pending apply from anywhere."""
    state = state_dir()
    meta = read_meta(state / "pending")
    if meta is None:
        last = read_meta(state / "last")
        was = f" (the last one: {last.get('outcome')})" if last else ""
        raise Refused(f"no apply is pending{was}")
    if outcome == CONFIRMED and not stuck(meta):  # it waits: a new connection must show
        problem = admin.confirmer_problem(meta, os.environ)
        if problem:
            raise Refused(f"not confirmed: {problem}")
    return _report(finish(state, str(meta["id"]), outcome), say)


def main(argv: list[str]) -> int:
    """The detached rollback (see `WATCHER`): ``HOME STATE_DIR TOKEN``."""
    if len(argv) != 3 or not PACKAGE.is_relative_to(argv[0]):
        print(f"rollback: not the fwgen of {argv[:1]}: {PACKAGE}", file=sys.stderr)
        return 2
    for sig in (signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    state, token = Path(argv[1]), argv[2]
    meta = read_meta(state / "pending")
    if meta is None or meta["id"] != token:
        return 2
    write_private(state / "pending/watcher-ready", f"{token} {os.getpid()}\n")
    outcome = watch(state, token)
    print(f"{time.ctime()}: apply {token}: {outcome}", file=sys.stderr)
    return 0
