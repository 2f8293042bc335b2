"""The examples are tested: the Ansible playbook parses and runs in check mode,
the pre-commit hooks and CI workflow name real commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent
PLAYBOOK = "examples/ansible/playbook.yml"


def ansible(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("ansible-playbook", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if tool is None:
        pytest.skip("ansible-playbook not installed (pip install ansible-core)")
    full_env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "LC_ALL": "C.UTF-8",
        "ANSIBLE_LOCAL_TEMP": str(Path(env["HOME"]) / "tmp") if env else "/tmp",
        **(env or {}),
    }
    return subprocess.run([tool, *args], capture_output=True, text=True, env=full_env, timeout=300)


def test_playbook_syntax() -> None:
    result = ansible("--syntax-check", "-i", "localhost,", PLAYBOOK)
    assert result.returncode == 0, result.stdout + result.stderr


def test_playbook_check_mode_against_localhost(tmp_path: Path) -> None:
    render_dir = tmp_path / "render"
    render_dir.mkdir()
    env = {"HOME": str(tmp_path), "FWGEN_RENDER_DIR": str(render_dir)}
    result = ansible(
        "--check",
        "--diff",
        "-i",
        "localhost,",
        "-c",
        "local",
        PLAYBOOK,
        "-e",
        f"fwgen_nft_dest={tmp_path / 'etc' / 'fwgen.nft'}",
        "-e",
        '{"fwgen_sets": ["admins=192.0.2.0/24"]}',
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rendered = (render_dir / "localhost").read_text()
    assert "elements = { 192.0.2.0/24 }" in rendered
    assert "Install the nftables ruleset" in result.stdout and "changed=1" in result.stdout
    assert not (tmp_path / "etc" / "fwgen.nft").exists()  # check mode writes nothing


def test_pre_commit_hooks_run_fwgen_commands() -> None:
    hooks = yaml.safe_load(Path(".pre-commit-hooks.yaml").read_text())
    assert {h["id"]: h["entry"] for h in hooks} == {
        "fwgen-check": "fwgen check",
        "fwgen-build-check": "fwgen build --check",
    }


def test_ci_workflow_runs_build_check_and_diff() -> None:
    workflow = yaml.safe_load(Path("examples/ci/fwgen.yml").read_text())
    steps = " ".join(str(step.get("run", "")) for step in workflow["jobs"]["fwgen"]["steps"])
    assert "fwgen build site/fwgen.yaml --check" in steps
    assert "--format markdown" in steps


def test_playbook_handler_loads_with_fwgen_apply_and_its_guard() -> None:
    (play,) = yaml.safe_load(Path(PLAYBOOK).read_text())
    (handler,) = play["handlers"]
    argv = handler["ansible.builtin.command"]["argv"]
    assert "['fwgen', 'apply', fwgen_profile, '--target', fwgen_target, '--yes']" in argv
    assert "'--keep='" in argv
    notified = {task["notify"] for task in play["tasks"] if "notify" in task}
    assert notified == set(handler["listen"])
