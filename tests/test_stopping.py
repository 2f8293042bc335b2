"""fwgen.stopping: a stop signal received at any point of a run ends it as stopped.

Each test sends a real signal to this process (the handlers are the run's own while it
lasts, and the test process's again after it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from fwgen import stopping
from fwgen.errors import FwgenError
from fwgen.stopping import Stopped


def send(signum: int) -> None:
    os.kill(os.getpid(), signum)


class SignalsWhenFreed:
    """Sends *signum* from its finalizer: the handler runs there, where Python reports
    what it raises and drops it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    def __del__(self) -> None:
        send(self.signum)


@pytest.mark.parametrize("signum", stopping.STOP_SIGNALS)
def test_a_stop_raises_at_once(signum: int) -> None:
    reached = []
    with pytest.raises(Stopped) as stopped, stopping.stopping(stopping.STOP_SIGNALS):
        send(signum)
        reached.append("after")
    assert stopped.value.signum == signum and reached == []


DROPPED = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@DROPPED
def test_a_stop_python_drops_in_a_finalizer_ends_the_run_as_stopped() -> None:
    reached = []
    with pytest.raises(Stopped) as stopped, stopping.stopping():
        SignalsWhenFreed(signal.SIGINT)  # freed at once: its finalizer swallows the raise
        reached.append("the run went on")
    assert reached == ["the run went on"]  # what Python did with it
    assert stopped.value.signum == signal.SIGINT  # and the run still ends as stopped


@DROPPED
def test_an_error_after_a_stop_ends_the_run_as_stopped() -> None:
    """A command killed by the same Ctrl-C fails; the stop, not its failure, is the end."""
    with pytest.raises(Stopped) as stopped, stopping.stopping():
        SignalsWhenFreed(signal.SIGINT)
        raise FwgenError("nft failed")
    assert isinstance(stopped.value.__context__, FwgenError)


@pytest.mark.parametrize("signum", stopping.STOP_SIGNALS)
def test_a_stop_while_held_waits_for_the_end_of_the_hold(signum: int) -> None:
    done = []
    with pytest.raises(Stopped) as stopped, stopping.stopping(stopping.STOP_SIGNALS):
        with stopping.held():
            send(signum)
            send(signum)  # a second Ctrl-C
            done.append("the hold's work")
        done.append("after the hold")
    assert done == ["the hold's work"] and stopped.value.signum == signum


def test_a_stop_while_held_ends_a_run_that_had_finished_as_stopped() -> None:
    """The lab removed after a run that found everything: a stop then is not lost."""
    with pytest.raises(Stopped), stopping.stopping(stopping.STOP_SIGNALS):
        try:
            pass  # the run's work, done
        finally:
            with stopping.held():
                send(signal.SIGTERM)


def test_commands_started_while_held_are_not_cut_short_by_a_stop() -> None:
    """What a terminal's Ctrl-C sends to the whole group cannot stop them halfway."""
    script = "kill -INT $$; kill -TERM $$; kill -HUP $$; echo finished"
    with stopping.stopping(stopping.STOP_SIGNALS), stopping.held():
        out = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert (out.returncode, out.stdout) == (0, "finished\n")
    unheld = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    assert unheld.returncode == -signal.SIGINT and unheld.stdout == ""


def test_nested_runs_add_signals_and_give_back_the_handlers() -> None:
    before = {s: signal.getsignal(s) for s in stopping.STOP_SIGNALS}
    with pytest.raises(Stopped) as stopped, stopping.stopping():
        with stopping.stopping(stopping.STOP_SIGNALS):
            assert signal.getsignal(signal.SIGHUP) is not before[signal.SIGHUP]
        assert signal.getsignal(signal.SIGHUP) is before[signal.SIGHUP]
        send(signal.SIGINT)
    assert stopped.value.signum == signal.SIGINT
    assert {s: signal.getsignal(s) for s in stopping.STOP_SIGNALS} == before
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) & set(stopping.STOP_SIGNALS) == set()


def test_a_stop_taken_as_an_answer_lets_the_run_report_its_outcome() -> None:
    with stopping.stopping():
        try:
            send(signal.SIGINT)
        except KeyboardInterrupt:
            stopping.answered()
    assert stopping.received() is None


def test_a_run_without_a_stop_ends_as_it_ends() -> None:
    with pytest.raises(FwgenError, match="bad"), stopping.stopping():
        raise FwgenError("bad")
    with stopping.stopping(), stopping.held():
        pass
    assert stopping.received() is None


# The ``fwgen`` process: its command stopped, then stopped again on the way out.
STOPPED_ON_THE_WAY_OUT = """
import os, signal, sys
from fwgen import stopping

stopping.ends_process()
try:
    with stopping.stopping(stopping.STOP_SIGNALS):
        os.kill(os.getpid(), signal.SIGINT)
except KeyboardInterrupt:
    print("interrupted", flush=True)  # said: the outcome is decided
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGINT)
    sys.exit(stopping.INTERRUPTED)
"""


def test_a_stop_after_the_outcome_is_said_does_not_change_the_exit_status() -> None:
    done = subprocess.run(
        [sys.executable, "-c", STOPPED_ON_THE_WAY_OUT], capture_output=True, text=True
    )
    assert (done.returncode, done.stdout, done.stderr) == (130, "interrupted\n", "")
