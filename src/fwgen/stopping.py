"""Stop signals in a command that runs a while: received one way, and never lost.

Inside `stopping()` a stop signal (SIGINT; SIGTERM and SIGHUP too where the command
asks for them) raises `Stopped`, a KeyboardInterrupt, in the main thread, and is
remembered for the rest of the run. Inside `held()` (removing a lab, changing state
that must not be left half-changed) the signals are blocked: neither this process nor
the commands it starts meanwhile (they inherit the blocked signals) are cut short, and
the stop is raised when the hold ends. A stop raised where Python drops it (inside a
finalizer, which Python reports and goes on) or caught by code that treats it as an
ordinary failure is raised again when the run ends: a run that received a stop signal
never ends as if it had not. A run on its way out after a stop (in its `finally` blocks
and `__exit__` methods) only remembers another. Only the main thread receives them;
elsewhere both contexts do nothing.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

INTERRUPTED = 130  # the exit status of a stopped run, whichever signal stopped it
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """A stop signal ended the run; *said* is what the command tells of it, if it knows
    better than "interrupted"."""

    def __init__(self, signum: int, said: str = "") -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.said = said

    @classmethod
    def of(cls, stop: KeyboardInterrupt, said: str) -> Stopped:
        """*stop* (Ctrl-C's own KeyboardInterrupt is SIGINT), told as *said*."""
        return cls(stop.signum if isinstance(stop, Stopped) else signal.SIGINT, said)


class _Run:
    """The run in progress: the signals it handles, those received, holds open."""

    handled: tuple[signal.Signals, ...] = ()
    received: list[int] = []  # noqa: RUF012 (one run at a time: the process's own)
    holding = 0
    last = False  # the process ends with the outermost run (see `ends_process`)


def _receive(signum: int, frame: FrameType | None) -> None:
    _Run.received.append(signum)
    if not _Run.holding and not _unwinding():
        raise Stopped(signum)


def _unwinding() -> bool:
    """A stop is being handled: a run already on its way out (its `finally` blocks and
    `__exit__` methods remove what it made) is not cut short by another."""
    return isinstance(sys.exc_info()[1], KeyboardInterrupt)


def received() -> int | None:
    """The first stop signal the run (the last one, once it ended) received, or None."""
    return _Run.received[0] if _Run.received else None


def answered() -> None:
    """The stops received so far were taken as an answer, and the run goes on to report
    its own outcome (`fwgen apply` rolls back on Ctrl-C at its prompt)."""
    _Run.received = []


def in_child() -> None:
    """In a process just forked inside a run: the stop signals of the run back to their
    defaults (a stop ends it at once), the run's record left to the parent."""
    for s in _Run.handled:
        signal.signal(s, signal.SIG_DFL)
    _Run.handled, _Run.received, _Run.holding = (), [], 0


def ends_process() -> None:
    """The process ends with its next outermost run (the ``fwgen`` command): once that
    has ended, its outcome decided and said, a stop signal is only remembered and waits
    (blocked) for the exit, which it does not change."""
    _Run.last = True


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def stopping(
    signals: tuple[signal.Signals, ...] = (signal.SIGINT,),
    told: Callable[[KeyboardInterrupt], None] | None = None,
) -> Iterator[None]:
    """Run the body as a run that *signals* stop (see the module): `Stopped` when one
    comes, and again at the end when one came and the body ended otherwise; *told* is
    called with it before the handlers are given back (what it says is said before a
    late signal could be handled otherwise). Nested, it adds the signals the outer run
    does not handle yet; the run is the outermost one."""
    if not _main_thread():
        yield
        return
    wanted = tuple(s for s in signals if s not in _Run.handled)
    outermost = not _Run.handled
    if outermost:
        _Run.received = []
    old = {s: signal.signal(s, _receive) for s in wanted}
    _Run.handled += wanted
    try:
        try:
            yield
        except KeyboardInterrupt:
            raise
        except BaseException:
            if _Run.received:  # an error because of the stop (a command it killed, say)
                raise Stopped(_Run.received[0])  # noqa: B904 (the error stays its context)
            raise
        if _Run.received:
            raise Stopped(_Run.received[0])
    except KeyboardInterrupt as stop:
        if told is not None:
            told(stop)
        raise
    finally:
        if outermost and _Run.last:
            _Run.holding += 1  # for good: the handlers stay, and only remember
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        elif old:
            with held():  # a signal arriving meanwhile is not dropped with the handler
                for s, handler in old.items():
                    signal.signal(s, handler)
                _Run.handled = tuple(s for s in _Run.handled if s not in wanted)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Stop signals wait while the body runs, and so do the programs it starts (they
    inherit them blocked: start no daemon here); one that came raises `Stopped` when it
    ends, also when the body raised."""
    if not _main_thread():
        yield
        return
    before = len(_Run.received)
    _Run.holding += 1
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        _Run.holding -= 1
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a waiting signal is delivered now
        if not _Run.holding and len(_Run.received) > before and not _unwinding():
            raise Stopped(_Run.received[before])
