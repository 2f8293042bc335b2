"""Run ansible-playbook and ansible-galaxy with the collection in examples/ansible, on this
machine, with a temporary home: never the machine's own ~/.ansible or collections."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PATH = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
COLLECTIONS = REPO / "examples" / "ansible"
COLLECTION = COLLECTIONS / "ansible_collections" / "fwgen" / "firewall"
PLAYBOOK = str(COLLECTIONS / "playbook.yml")


def need(reason: str) -> None:
    """Skip with *reason* (fail when FWGEN_REQUIRE_KERNEL is set); nothing when empty."""
    if reason:
        if os.environ.get("FWGEN_REQUIRE_KERNEL"):
            pytest.fail(f"{reason} (FWGEN_REQUIRE_KERNEL is set)")
        pytest.skip(reason)


def tool(name: str) -> str:
    found = shutil.which(name, path=PATH)
    need("" if found else f"{name} not installed (pip install -e '.[test]')")
    assert found is not None
    return found


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "SSH_"))}
    return {
        **env,
        "PATH": PATH,
        "LC_ALL": "C.UTF-8",
        "HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "ansible-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(home / "ansible-remote-tmp"),
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        "ANSIBLE_NOCOLOR": "1",
        **extra,
    }


def ansible(
    *args: str, home: Path, prefix: tuple[str, ...] = (), **extra: str
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook ARGS (after *prefix*, e.g. a network namespace's `ip netns exec`)."""
    command = [*prefix, tool("ansible-playbook"), *args]
    return subprocess.run(
        command, capture_output=True, text=True, env=environment(home, **extra), timeout=300
    )


def local(**host: Any) -> dict[str, Any]:
    """Variables of a host that is this machine, for the role: no packages installed."""
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "fwgen_packages": [],
        "fwgen_executable": str(BIN / "fwgen"),
        **host,
    }


def changed(stdout: str) -> list[int]:
    """The PLAY RECAP's changed= count of every host."""
    return [int(n) for n in re.findall(r"changed=(\d+)", stdout)]
