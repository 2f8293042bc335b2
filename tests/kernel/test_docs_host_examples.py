"""The documentation's examples that need a host (apply, shadow, hits) run for real.

Each page with root's examples runs whole, in order, by tests/docs/host_run.py, inside
private mount and PID namespaces (a tmpfs on /run, where apply keeps its state and ufw
its lock; a private copy of /etc, which ufw's apply writes) and with root's commands in
a throw-away network namespace: nothing of the machine changes. tests/docs parses the
same examples without root; here the kernel judges them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.examples import REPO, documentation, page_examples
from tests.docs.test_docs_examples import scratch
from tests.kernel.conftest import need, require

pytestmark = pytest.mark.kernel

PREFIX = os.environ.get("FWGEN_NETNS_PREFIX", "fw")
HOST_PAGES = [p for p in documentation() if any(e.root for e in page_examples(p))]
SANDBOX = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc"]


def test_there_are_host_examples_to_run() -> None:
    assert len(HOST_PAGES) >= 5


@pytest.mark.parametrize(
    "page", HOST_PAGES, ids=[p.relative_to(REPO).as_posix() for p in HOST_PAGES]
)
def test_host_examples_of_the_page_run(page: Path, tmp_path: Path) -> None:
    require("nft", "iptables-restore", "ipset", "ufw", "ip", "unshare")
    need("" if os.geteuid() == 0 else "root's examples need root")
    folder = scratch(tmp_path / "scratch")
    netns = f"{PREFIX}dx{os.getpid() % 10000}"
    script = f"""set -euo pipefail
mount -t tmpfs tmpfs /run
cp -a /etc {tmp_path}/etc && mount --bind {tmp_path}/etc /etc
ip netns add {netns}
ip netns exec {netns} ip link set lo up
cd {REPO}
exec {sys.executable} -m tests.docs.host_run {page.relative_to(REPO)} {folder} {netns}
"""
    result = subprocess.run(
        [*SANDBOX, "bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    examples = page_examples(page)
    assert len(reports) == len(examples), result.stderr[-3000:]
    problems = [f"{r['where']}: {r['problem']}\n{r['output']}" for r in reports if r["problem"]]
    assert problems == []
