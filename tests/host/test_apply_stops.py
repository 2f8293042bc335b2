"""`fwgen apply` and stop signals, over the fake firewall (tests/applyfakes.py) and real
signals to this process, run as every command runs (`fwgen.stopping.stopping`): Ctrl-C
at the prompt is an answer, the saved state restored and exit 1; a stop that comes while
the saved state is restored waits until it is, then ends the run as stopped."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from fwgen import stopping
from fwgen.host import apply as applying
from tests.applyfakes import Fake, request, steps

pytestmark = pytest.mark.usefixtures("no_firewall")


def ctrl_c(_: float) -> str | None:
    os.kill(os.getpid(), signal.SIGINT)
    return None


def test_ctrl_c_at_the_prompt_rolls_back_and_says_so(fake: type[Fake], no_firewall: Path) -> None:
    said: list[str] = []
    try:
        with stopping.stopping():
            code = applying.apply(request(5.0), said.append, ctrl_c)
    except KeyboardInterrupt:  # not to pytest: it would end the session
        pytest.fail("the answer ended the run as stopped")
    assert code == applying.ROLLED_BACK
    assert said[-1] == "rolled back: the saved state was restored"
    assert steps(no_firewall) == ["validate", "save", "load", "restore"]


def test_a_second_stop_while_restoring_waits_until_the_state_is_restored(
    fake: type[Fake], no_firewall: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    restore = Fake.restore

    def pressed_again(self: Fake, work: Path) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # a second stop, as the rollback starts
        restore(self, work)

    monkeypatch.setattr(Fake, "restore", pressed_again)
    with pytest.raises(stopping.Stopped), stopping.stopping(stopping.STOP_SIGNALS):
        applying.apply(request(5.0), print, ctrl_c)
    assert steps(no_firewall) == ["validate", "save", "load", "restore"]
    assert not (no_firewall / "pending").exists()
    assert json.loads((no_firewall / "last/meta.json").read_text())["outcome"] == "rolled back"


def test_a_stop_while_rollback_pending_restores_waits_until_the_state_is_restored(
    fake: type[Fake], no_firewall: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def gone(_: float) -> str | None:
        raise ConnectionAbortedError("the terminal went away")  # the apply stays pending

    with pytest.raises(ConnectionAbortedError):
        applying.apply(request(5.0), print, gone)
    assert (no_firewall / "pending").exists()
    restore = Fake.restore

    def stopped_meanwhile(self: Fake, work: Path) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        restore(self, work)

    monkeypatch.setattr(Fake, "restore", stopped_meanwhile)
    with pytest.raises(stopping.Stopped), stopping.stopping():
        applying.settle_pending(applying.ROLLBACK, print)  # `fwgen apply --rollback-pending`
    assert steps(no_firewall) == ["validate", "save", "load", "restore"]
    assert not (no_firewall / "pending").exists()
    assert json.loads((no_firewall / "last/meta.json").read_text())["outcome"] == "rolled back"
