"""`fwgen verify` stopped by a signal at the points a timing test rarely hits: while the
lab is removed after a run that found everything, and where Python drops the raise.
The lab here is a stand-in that records its removal (the kernel's side, with real
namespaces and processes, is tests/kernel/test_verify.py); the signals are real.

Each ends with exit 130, "verify: interrupted; the lab is removed", and the lab removed
to its end."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.lab import verify as verifying
from fwgen.lab.verify import Report

runner = CliRunner()
ADMINS = ["--set", "admins=10.20.0.0/16,fd20::/48"]
STOPPED = "verify: interrupted; the lab is removed"


def send(signum: int) -> None:
    os.kill(os.getpid(), signum)


class SignalsWhenFreed:
    def __init__(self, signum: int) -> None:
        self.signum = signum

    def __del__(self) -> None:  # the handler runs here: Python drops what it raises
        send(self.signum)


def lab_that(
    monkeypatch: pytest.MonkeyPatch,
    probing: Callable[[], None] = lambda: None,
    removing: Callable[[], None] = lambda: None,
) -> list[str]:
    """A stand-in lab: *probing* runs as the run probes, *removing* as the lab is
    removed; what happened to it, in order."""
    events: list[str] = []

    class Lab:
        def __enter__(self) -> Lab:
            events.append("made")
            return self

        def __exit__(self, *exc: object) -> None:
            events.append("removing")
            removing()
            events.append("removed")

    def verify_in(lab: Any, policy: Any, target: str, files: Any, progress: Any) -> Report:
        probing()
        events.append("probed")
        return Report(policy.profile, target)

    monkeypatch.setattr(verifying, "Lab", Lab)
    monkeypatch.setattr(verifying, "verify_in", verify_in)
    monkeypatch.setattr(verifying, "missing", lambda target: "")
    return events


def verify() -> tuple[int, str]:
    result = runner.invoke(app, ["verify", "webserver", "-t", "nftables", *ADMINS])
    return result.exit_code, result.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_while_the_lab_is_removed_after_a_clean_run(
    monkeypatch: pytest.MonkeyPatch, signum: int
) -> None:
    events = lab_that(monkeypatch, removing=lambda: send(signum))
    code, stderr = verify()
    assert (code, stderr.splitlines()[-1]) == (130, STOPPED)
    assert events == ["made", "probed", "removing", "removed"]


def test_a_second_stop_while_the_lab_is_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    events = lab_that(
        monkeypatch,
        probing=lambda: send(signal.SIGINT),
        removing=lambda: (send(signal.SIGINT), send(signal.SIGTERM)),
    )
    code, stderr = verify()
    assert (code, stderr.splitlines()[-1]) == (130, STOPPED)
    assert events == ["made", "removing", "removed"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_stop_python_drops_while_probing(monkeypatch: pytest.MonkeyPatch) -> None:
    events = lab_that(monkeypatch, probing=lambda: SignalsWhenFreed(signal.SIGINT) and None)
    code, stderr = verify()
    assert (code, stderr.splitlines()[-1]) == (130, STOPPED)
    assert events == ["made", "probed", "removing", "removed"]  # the run went on to the end


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_after_the_lab_is_removed_while_the_report_is_made(
    monkeypatch: pytest.MonkeyPatch, signum: int
) -> None:
    lab_that(monkeypatch)
    shown = verifying.Report.failed

    def failed(report: Report) -> list[Any]:
        send(signum)
        return list(shown.fget(report))  # type: ignore[attr-defined]

    monkeypatch.setattr(verifying.Report, "failed", property(failed))
    code, stderr = verify()
    assert (code, stderr.splitlines()[-1]) == (130, "fwgen: interrupted")
