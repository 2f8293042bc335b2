"""A fake firewall for `fwgen apply`'s unit tests, and a guard that no real one is reached
(the fixtures `no_firewall` and `fake` live in tests/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fwgen.host import apply as applying
from fwgen.host import backends as apply_targets
from fwgen.host import firewalld, procs
from fwgen.host.backends import ApplyError, Backend

REAL_START_WATCHER = applying.start_watcher
REAL_WAIT_READY = applying.wait_ready


def no_firewall(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    def refuse(*cmd: str, **_: object) -> str:
        raise AssertionError(f"a unit test reached a firewall command: {cmd}")

    monkeypatch.setattr(apply_targets, "run", refuse)
    monkeypatch.setattr(firewalld, "run", refuse)
    monkeypatch.setattr(applying, "start_watcher", lambda *a: refuse("start_watcher"))
    monkeypatch.setenv("FWGEN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    (tmp_path / "proc").mkdir()
    monkeypatch.setattr(procs, "PROC", tmp_path / "proc")  # no sshd, no ancestors
    yield tmp_path / "state"


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


def fake(monkeypatch: pytest.MonkeyPatch) -> type[Fake]:
    monkeypatch.setitem(applying.BACKENDS, "fake", Fake)
    monkeypatch.setattr(applying, "start_watcher", lambda *a: 0)
    monkeypatch.setattr(applying, "wait_ready", lambda *a: None)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    return Fake


def request(confirm: float | None = 5.0) -> applying.Request:
    return applying.Request(target="fake", files={"f": "x\n"}, profile="p", confirm=confirm)


def steps(state: Path) -> list[str]:
    return (state / "steps").read_text().split()
