"""Every program fwgen starts, started one way: nothing from where it runs comes along.

A site repository is a pull request's folder, and fwgen often runs as root from it. So
a command runs from ``/`` (unless it needs a folder, like git), finds programs through
a fixed ``PATH``, speaks ``LC_ALL=C``, and inherits none of the variables that make a
shell, an interpreter or the dynamic loader run other code (``BASH_ENV``, ``ENV``,
``PYTHON*``, ``LD_*``, ``GIT_*``, ...): the environment is built, not filtered.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Passed on when set: where git finds its user's settings (safe.directory), nothing that runs code.
PASSED = ("HOME",)


def environment(
    passed: Sequence[str] = (), environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The whole environment of a command: a fixed PATH and locale, plus *passed* names."""
    source = os.environ if environ is None else environ
    env = {"PATH": SAFE_PATH, "LC_ALL": "C"}
    env.update({name: source[name] for name in passed if name in source})
    return env


def which(tool: str) -> str | None:
    """Where *tool* is on the fixed PATH (the PATH a command will be started with)."""
    return shutil.which(tool, path=SAFE_PATH)


def command(*cmd: str) -> list[str]:
    """*cmd* as it is started: bash without its profile and rc files."""
    if cmd and cmd[0] == "bash":
        return ["bash", "--noprofile", "--norc", *cmd[1:]]
    return list(cmd)


def run(
    cmd: Sequence[str],
    *,
    stdin: Path | None = None,
    data: bytes | None = None,
    timeout: float,
    cwd: str = "/",
) -> subprocess.CompletedProcess[bytes]:
    """Run *cmd* to its end, its standard input the file *stdin* or the bytes *data*; its
    output captured (OSError, TimeoutExpired raised)."""
    with contextlib.ExitStack() as stack:
        source = None if data is not None else stack.enter_context(open(stdin or os.devnull, "rb"))
        return subprocess.run(
            command(*cmd),
            stdin=source,
            input=data,
            capture_output=True,
            timeout=timeout,
            cwd=cwd,
            env=environment(PASSED),
        )
