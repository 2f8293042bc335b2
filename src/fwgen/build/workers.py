"""Rendering the hosts of a build on every CPU fwgen may use.

The process forks its workers once everything the hosts share is loaded (the manifest,
the profiles, the port catalogue, the templates). Each worker renders every *jobs*-th
host and sends back what it made; the parent renders its own share meanwhile, then puts
the results back in host order. Workers never write a file and never print: the parent
alone reports and writes, so a parallel build says and writes exactly what a serial one
does. A worker that dies (a signal, a crash) fails the build before anything is written;
on Ctrl-C or any error the parent kills and reaps the workers it started. A worker the
system refuses (no process, no file descriptor) leaves its share to the parent. Errors
come back as plain data (`sent_error`), so a parallel build reports them as a serial one.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TypeVar

from fwgen import stopping
from fwgen.errors import FwgenError, FwgenErrors, ProfileError, RenderError, ResolveError

T = TypeVar("T")
R = TypeVar("R")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
HOSTS_PER_JOB = 8  # fewer hosts than this per process do not repay starting it
# More processes than CPUs render no faster; a few per CPU are let through (CPUs busy with
# other work, a test of the split on a small machine), never --jobs 100000.
JOBS_PER_CPU = 4
Outcome = tuple[list[R], BaseException | None]  # results in order, then what stopped them


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, as `taskset` or a cgroup set it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def job_count(asked: int | None, items: int) -> int:
    """How many processes render *items* hosts: *asked* (``--jobs``) at most, never more
    than there are hosts nor `JOBS_PER_CPU` per usable CPU; by default one per usable CPU,
    and one per `HOSTS_PER_JOB` hosts."""
    if not hasattr(os, "fork"):
        return 1
    if asked is None:
        asked = min(usable_cpus(), items // HOSTS_PER_JOB)
    return max(1, min(asked, items, JOBS_PER_CPU * usable_cpus()))


def run_all(work: Callable[[T], R], items: Sequence[T], jobs: int = 1) -> Outcome[R]:
    """``work(item)`` for each item, in order, until one raises: the results before it,
    and its exception (None when every item succeeded). With *jobs* above 1, in that many
    processes; the answer is the same as in one."""
    if jobs <= 1 or len(items) < 2:
        return _run(work, items)
    # the first item here, before any fork: whatever it loads once (modules, templates,
    # the profiles and port files it reads) is then loaded for every worker
    first, failure = _run(work, items[:1])
    if failure is not None:
        return first, failure
    done, failure = _parallel(work, items[1:], jobs)
    return first + done, failure


def _parallel(work: Callable[[T], R], items: Sequence[T], jobs: int) -> Outcome[R]:
    sys.stdout.flush()
    sys.stderr.flush()
    workers: dict[int, tuple[int, int]] = {}  # share -> its worker's pid and pipe
    here = [0]  # the shares this process renders
    try:
        for share in range(1, jobs):
            try:
                workers[share] = _fork(work, items[share::jobs])
            except OSError:  # no process to be had (EAGAIN, ENOMEM, EMFILE): this one does
                here += range(share, jobs)  # the rest, with the same result, later
                break
        outcomes = {share: _run(work, items[share::jobs]) for share in here}
        for share, (pid, pipe) in list(workers.items()):
            del workers[share]  # reaped by _collect, whatever it finds
            outcomes[share] = _collect(pid, pipe)
    finally:
        for pid, pipe in workers.values():
            _stop(pid, pipe)
    return _interleave([outcomes[share] for share in range(jobs)], len(items))


def _run(work: Callable[[T], R], items: Sequence[T]) -> Outcome[R]:
    done: list[R] = []
    for item in items:
        try:
            done.append(work(item))
        except Exception as exc:  # handed to the caller, in its place in order
            return done, exc
    return done, None


def _interleave(outcomes: list[Outcome[R]], count: int) -> Outcome[R]:
    """Share *k*'s results are items k, k + jobs, ...: back in item order, up to the first
    item that failed."""
    jobs = len(outcomes)
    merged: list[R] = []
    for i in range(count):
        done, failure = outcomes[i % jobs]
        if i // jobs >= len(done):
            return merged, failure
        merged.append(done[i // jobs])
    return merged, None


def _fork(work: Callable[[T], R], share: Sequence[T]) -> tuple[int, int]:
    """A worker rendering *share*: its pid and the read end of the pipe it answers on."""
    read_end, write_end = os.pipe()
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        raise
    if pid == 0:  # the worker: it leaves only through os._exit, never through the caller
        status = 1
        try:
            _end_with(parent)
            os.close(read_end)
            stopping.in_child()
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends it at once
            gc.freeze()  # what the parent made stays untouched (and shared with it)
            _send(write_end, _run(work, share))
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    return pid, read_end


def _end_with(parent: int) -> None:
    """Have the kernel kill this worker when *parent* ends: a parent killed (SIGTERM,
    SIGKILL, the OOM killer) runs no `finally` to stop its workers. Linux only; elsewhere
    the worker ends when its share is done."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it ended before the line above
        os._exit(1)


Located = tuple[str, str, str | None, int | None, str]  # class, message, path, line, field
KINDS = {kind.__name__: kind for kind in (FwgenError, ProfileError, ResolveError, RenderError)}


def sent_error(error: FwgenError) -> tuple[list[Located], str]:
    """*error* as plain data, whatever its class holds or how it is made (an error's own
    class may not pickle, or not unpickle): each error's class, message and location, and
    the text the user is shown."""
    return [
        (
            type(e).__name__,
            str(e.message),
            None if e.path is None else str(e.path),
            e.line if isinstance(e.line, int) else None,
            str(e.field),
        )
        for e in (error.errors if isinstance(error, FwgenErrors) else [error])
    ], str(error)


def received_error(errors: list[Located], shown: str) -> FwgenError:
    """The error `sent_error` sent: the same classes where they are fwgen's plain ones, and
    the same text; one line of that text when a class showed itself otherwise."""
    made = [
        KINDS.get(kind, FwgenError)(message, path=path, line=line, field=field)
        for kind, message, path, line, field in errors
    ]
    rebuilt = made[0] if len(made) == 1 else FwgenErrors(made)
    return rebuilt if str(rebuilt) == shown else FwgenError(shown)


def _send(fd: int, outcome: Outcome[R]) -> None:
    done, failure = outcome
    sent: object = failure
    if isinstance(failure, FwgenError):
        sent = sent_error(failure)
    elif failure is not None:
        sent = RuntimeError(
            "a process rendering hosts failed:\n"
            + "".join(traceback.format_exception(failure)).rstrip()
        )
    try:
        data = pickle.dumps((done, sent), pickle.HIGHEST_PROTOCOL)
    except Exception:  # something unpicklable: said, as a crash
        data = pickle.dumps(
            ([], RuntimeError(f"a process rendering hosts failed:\n{traceback.format_exc()}"))
        )
    with os.fdopen(fd, "wb") as pipe:
        pipe.write(data)


def _collect(pid: int, pipe: int) -> Outcome[R]:
    """What the worker *pid* sent, once it has ended; an error when it did not end well."""
    try:
        with os.fdopen(pipe, "rb") as reader:
            data = reader.read()
        _, status = os.waitpid(pid, 0)
    except BaseException:  # Ctrl-C while waiting: the worker goes too
        _stop(pid, None)
        raise
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        raise FwgenError(
            f"a process rendering hosts was stopped by {name}; nothing written "
            "(--jobs 1 renders every host in one process)"
        )
    if os.waitstatus_to_exitcode(status) != 0 or not data:
        raise FwgenError(
            f"a process rendering hosts failed (exit status {os.waitstatus_to_exitcode(status)}); "
            "nothing written (--jobs 1 renders every host in one process)"
        )
    done, sent = pickle.loads(data)  # our own worker's bytes: results and plain data
    if isinstance(sent, tuple):
        return done, received_error(*sent)
    return done, sent


def _stop(pid: int, pipe: int | None) -> None:
    """Kill the worker *pid* (by its pid), reap it, and close its *pipe*."""
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.waitpid(pid, 0)
    if pipe is not None:
        with contextlib.suppress(OSError):
            os.close(pipe)
