"""The CI example that verifies every host of a manifest (examples/ci/verify.yml): the
commands it makes for the site example, and (kernel) that they pass as committed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

WORKFLOW = Path("examples/ci/verify.yml")
ADMINS = "--set admins=10.20.0.0/26,fd00:20::/48"


def verify_step() -> str:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = {s.get("name") or s["uses"]: s for s in workflow["jobs"]["verify"]["steps"]}
    return str(steps["Verify every host in a kernel"]["run"])


def commands(site: Path) -> list[str]:
    """What the step's generator writes for the manifest in *site*."""
    script = re.search(r"<<'PY'\n(.*?)\nPY\n", verify_step(), re.S)
    assert script is not None
    run = subprocess.run(
        [sys.executable, "-", str(site / "fwgen.yaml")],
        input=script.group(1),
        capture_output=True,
        text=True,
        check=True,
    )
    return run.stdout.splitlines()


def test_one_verify_per_host_and_linux_target(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree("examples/site", site)
    fwgen = "sudo /tmp/fwgen/bin/fwgen verify"
    web1 = f"{site}/generated/web1"
    assert commands(site) == [
        "echo '== web1 (nftables)'",
        f"{fwgen} {site}/profiles/web1.yaml -t nftables --ruleset {site}/generated/web1.nft"
        " || rc=$?",
        "echo '== web1 (iptables)'",
        f"{fwgen} {site}/profiles/web1.yaml -t iptables --ruleset {web1}/ipsets"
        f" --ruleset {web1}/rules.v4 --ruleset {web1}/rules.v6 || rc=$?",
        "echo '== mail1 (nftables)'",
        f"{fwgen} mailserver -t nftables {ADMINS} --ruleset {site}/generated/mail1.nft || rc=$?",
        "echo '== web2 (nftables)'",
        f"{fwgen} {site}/profiles/web2.yaml -t nftables --set backend=eth1"
        f" --ruleset {site}/generated/web2.nft || rc=$?",
        "echo '== web2 (ufw)'",
        f"{fwgen} {site}/profiles/web2.yaml -t ufw --set backend=eth1 || rc=$?",
    ]


def test_the_step_fails_when_one_host_fails() -> None:
    step = verify_step()
    assert "|| rc=$?" in step and step.rstrip().endswith('exit "$rc"')


@pytest.mark.kernel
def test_every_host_of_the_site_verifies_as_committed(tmp_path: Path) -> None:
    from tests.kernel.conftest import require

    require("nft", "iptables-restore", "ipset", "ufw")
    site = tmp_path / "site"
    shutil.copytree("examples/site", site)
    fwgen = str(Path(sys.executable).with_name("fwgen"))
    lines = [line.replace("sudo /tmp/fwgen/bin/fwgen", fwgen) for line in commands(site)]
    script = "rc=0\n" + "\n".join(lines) + '\nexit "$rc"\n'
    run = subprocess.run(
        ["bash", "-e", "-c", script], capture_output=True, text=True, env=os.environ, timeout=600
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("; all agree") == 5, run.stdout
