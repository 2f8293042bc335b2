"""What the test suite must leave as it found it on the machine it runs on.

`machine_state` reads (never writes) the firewall files of the machine and, as root,
its own nftables ruleset and iptables tables; the session fixture in conftest.py
compares the state before and after the whole run.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

WATCHED_FILES = (
    "/etc/default/ufw",
    "/etc/ufw/*",
    "/etc/nftables.conf",
    "/etc/iptables/*",
    # the real engines' settings (their tests run them over private copies)
    "/etc/docker/*",
    "/etc/containerd/*",
    "/etc/fail2ban/*",
    "/etc/firewalld/*",
)
# Read-only listings of the machine's own firewall (its network namespace).
LISTINGS = (
    ("nft", "-s", "list", "ruleset"),  # -s: without counters, which traffic changes
    ("iptables-save",),
    ("ip6tables-save",),
)
_COUNTERS = re.compile(r"\[\d+:\d+\]")


def _files(patterns: Sequence[str]) -> list[Path]:
    found: set[Path] = set()
    for pattern in patterns:
        for name in glob.glob(pattern):
            path = Path(name)
            if path.is_dir():
                found.update(p for p in path.rglob("*") if p.is_file())
            elif path.is_file():
                found.add(path)
    return sorted(found)


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        return f"unreadable ({exc.strerror})"


def _listing(command: Sequence[str]) -> str | None:
    """The command's output with comments (iptables-save's date) and counters taken out;
    None when it cannot run here (not installed, not root)."""
    if os.geteuid() != 0 or shutil.which(command[0]) is None:
        return None
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        return None
    lines = [_COUNTERS.sub("[0:0]", line) for line in result.stdout.splitlines()]
    text = "\n".join(line for line in lines if not line.startswith("#"))
    return hashlib.sha256(text.encode()).hexdigest()


def machine_state(
    patterns: Sequence[str] = WATCHED_FILES, listings: Sequence[Sequence[str]] = LISTINGS
) -> dict[str, str]:
    """{what: sha256} for every watched file that exists and every listing that runs."""
    state = {str(path): _digest(path) for path in _files(patterns)}
    for command in listings:
        digest = _listing(command)
        if digest is not None:
            state[" ".join(command)] = digest
    return state


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """What differs between two states, one line each."""
    out = []
    for key in sorted(before.keys() | after.keys()):
        if key not in after:
            out.append(f"{key}: removed")
        elif key not in before:
            out.append(f"{key}: created")
        elif before[key] != after[key]:
            out.append(f"{key}: changed")
    return out
