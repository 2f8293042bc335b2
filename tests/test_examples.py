"""The examples run as written.

- The Ansible playbook runs for real with ansible-core: every destination in a
  temporary root, the rules loaded into throw-away network namespaces, and
  `systemctl` a stand-in that records what it is asked. Never the machine's own
  /etc or firewall.
- The CI workflow's steps run with bash in a git repository holding the example site.
- The pre-commit hook `fwgen-check` is given profiles only.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render
from tests.kernel.lab import Lab, missing_tools

BIN = Path(sys.executable).parent
PATH = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
PLAYBOOK = "examples/ansible/playbook.yml"
WORKFLOW = "examples/ci/fwgen.yml"


def need(reason: str) -> None:
    """Skip with *reason* (fail when FWGEN_REQUIRE_KERNEL is set); nothing when empty."""
    if reason:
        if os.environ.get("FWGEN_REQUIRE_KERNEL"):
            pytest.fail(f"{reason} (FWGEN_REQUIRE_KERNEL is set)")
        pytest.skip(reason)


def ansible(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("ansible-playbook", path=PATH)
    need("" if tool else "ansible-playbook not installed (pip install ansible-core)")
    assert tool is not None
    env = {
        **os.environ,
        "PATH": PATH,
        "LC_ALL": "C.UTF-8",
        "HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
    }
    return subprocess.run([tool, *args], capture_output=True, text=True, env=env, timeout=300)


def test_playbook_syntax(tmp_path: Path) -> None:
    result = ansible("--syntax-check", "-i", "localhost,", PLAYBOOK, home=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def stand_in(path: Path, log: Path) -> Path:
    """An executable that records its arguments in *log*, one call a line."""
    path.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    path.chmod(0o755)
    return path


def role_settings(tmp_path: Path, etc: Path, log: Path) -> dict[str, Any]:
    """The role's variables for a run on this machine: every destination under *etc* (the
    managed host's /etc), `systemctl` a stand-in that records its calls in *log*."""
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "fwgen_render_dir": str(tmp_path / "control" / "render"),
        "fwgen_nft_dest": str(etc / "nftables.d" / "fwgen.nft"),
        "fwgen_nft_conf": str(etc / "nftables.conf"),
        "fwgen_iptables_dest": str(etc / "iptables"),
        "fwgen_systemctl": str(stand_in(tmp_path / "systemctl", log)),
    }


@pytest.mark.kernel
def test_playbook_installs_checks_loads_and_enables_on_a_fresh_host(tmp_path: Path) -> None:
    need(missing_tools("nft", "iptables-restore", "ip6tables-restore", "ipset", "unshare"))
    etc = tmp_path / "root" / "etc"  # the managed host's /etc: empty, no folder exists yet
    partners = [f"203.0.113.{i}" for i in range(2, 42, 2)]  # 20 apart: an ipsets file
    big = tmp_path / "wall.yaml"
    big.write_text(
        "description: many partners\nextends: base\n"
        f"networks:\n  partners: [{', '.join(partners)}]\n"
        "inbound:\n  - {service: ssh, from: partners}\n"
    )
    log = tmp_path / "systemctl.log"
    with Lab() as web, Lab() as wall:
        inventory = tmp_path / "inventory.yml"
        hosts: dict[str, dict[str, Any]] = {
            "web": {"fwgen_sets": ["admins=192.0.2.0/24"], "fwgen_exec": exec_in(web)},
            "wall": {
                "fwgen_target": "iptables",
                "fwgen_profile": str(big),
                "fwgen_exec": exec_in(wall),
            },
        }
        inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
        settings = {
            **role_settings(tmp_path, etc, log),
            "fwgen_load": "direct",  # what this test checks; `apply` is tested with apply
            "fwgen_allow_placeholders": True,  # the namespaces use documentation addresses
        }
        args = ("-i", str(inventory), PLAYBOOK, "-e", json.dumps(settings))
        first = ansible(*args, home=tmp_path)
        assert first.returncode == 0, first.stdout + first.stderr

        # Installed: what fwgen renders, and nftables.service's file includes it.
        nft = render(resolve_profile("webserver", {"admins": ["192.0.2.0/24"]}), "nftables")
        assert (etc / "nftables.d" / "fwgen.nft").read_text() == nft["fwgen.nft"]
        conf = (etc / "nftables.conf").read_text()
        assert conf == f'include "{etc}/nftables.d/fwgen.nft"\n'
        iptables = render(resolve_profile(str(big)), "iptables")
        assert sorted(iptables) == ["ipsets", "rules.v4", "rules.v6"]
        for name, text in iptables.items():
            assert (etc / "iptables" / name).read_text() == text, name

        # Loaded, each into its namespace: the sets first, then the rules that match them.
        assert "192.0.2.0/24" in web.run(web.server, "nft", "list", "table", "inet", "fwgen")
        assert "fwgen-partners-v4" in wall.run(wall.server, "ipset", "list", "-n")
        rules = wall.run(wall.server, "iptables", "-S", "INPUT")
        assert "-P INPUT DROP" in rules and "--match-set fwgen-partners-v4 src" in rules
        assert "-P INPUT DROP" in wall.run(wall.server, "ip6tables", "-S", "INPUT")

        # Loaded at boot.
        assert sorted(log.read_text().splitlines()) == [
            "enable netfilter-persistent.service",
            "enable nftables.service",
        ]

        # Run again: nothing changes, nothing is loaded.
        second = ansible(*args, home=tmp_path)
        assert second.returncode == 0, second.stdout + second.stderr
        assert re.findall(r"changed=(\d+)", second.stdout) == ["0", "0"], second.stdout
        assert "RUNNING HANDLER" not in second.stdout


@pytest.mark.parametrize(
    ("sets", "refused"),
    [
        (
            [],  # the built-in profile's placeholder admins
            "profiles/webserver.yaml:14: ssh admits only documentation addresses "
            "(198.51.100.0/24, 2001:db8:100::/48, from network 'admins')",
        ),
        (["admins="], "ssh: network 'admins' is empty, so this rule matches nothing"),
    ],
)
def test_the_role_fails_on_rules_that_admit_no_one_and_installs_nothing(
    tmp_path: Path, sets: list[str], refused: str
) -> None:
    etc = tmp_path / "root" / "etc"
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"web": {"fwgen_sets": sets}}}}))
    settings = {
        **role_settings(tmp_path, etc, tmp_path / "systemctl.log"),
        "fwgen_exec": ["false"],  # were anything loaded, it would fail here
    }
    args = ("-i", str(inventory), PLAYBOOK, "-e", json.dumps(settings))
    result = ansible(*args, home=tmp_path)
    assert result.returncode != 0, result.stdout
    assert refused in result.stdout, result.stdout  # without -v
    assert "Refuse rules that admit no one" in result.stdout
    assert not etc.exists() and not (tmp_path / "systemctl.log").exists()


def test_the_role_refuses_the_iptables_coexist_mode_and_installs_nothing(tmp_path: Path) -> None:
    """netfilter-persistent loads rules.v4 without --noflush and without the loader's jump
    INPUT -> FWGEN-INPUT: Docker's chains would go, and INPUT would drop everything."""
    etc = tmp_path / "root" / "etc"
    sets = ["admins=10.1.0.0/16", "web_clients=10.2.0.0/16"]
    host = {"fwgen_profile": "docker-host", "fwgen_target": "iptables", "fwgen_sets": sets}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"docker1": host}}}))
    settings = {
        **role_settings(tmp_path, etc, tmp_path / "systemctl.log"),
        "fwgen_exec": ["false"],  # were anything loaded, it would fail here
    }
    args = ("-i", str(inventory), PLAYBOOK, "-e", json.dumps(settings))
    result = ansible(*args, home=tmp_path)
    assert result.returncode != 0, result.stdout
    assert "Refuse the iptables coexist mode" in result.stdout
    assert "fwgen-iptables.sh" in result.stdout, result.stdout  # without -v
    assert not etc.exists() and not (tmp_path / "systemctl.log").exists()


def test_the_role_installs_and_loads_firewalld(tmp_path: Path) -> None:
    """fwgen_target: firewalld: the rendered folder goes to the host, its script loads it
    (here a stand-in records the call: the script's own run is
    tests/kernel/test_firewalld_install.py), firewalld is enabled; a second run changes
    nothing. workstation renders with --strict on firewalld (no rate limit to lose)."""
    etc = tmp_path / "root" / "etc"
    log = tmp_path / "calls.log"
    inventory = tmp_path / "inventory.yml"
    host = {"fwgen_profile": "workstation", "fwgen_target": "firewalld"}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"laptop": host}}}))
    dest = etc / "fwgen" / "firewalld"
    settings = {
        **role_settings(tmp_path, etc, log),
        "fwgen_firewalld_dest": str(dest),
        "fwgen_load": "direct",
        "fwgen_exec": [str(stand_in(tmp_path / "loader", log))],
    }
    args = ("-i", str(inventory), PLAYBOOK, "-e", json.dumps(settings))
    first = ansible(*args, home=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    files = render(resolve_profile("workstation"), "firewalld")
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == sorted(files)
    for name, text in files.items():
        assert (dest / name).read_text() == text, name
    assert sorted(log.read_text().splitlines()) == [
        f"bash {dest}/fwgen-firewalld.sh",
        "enable firewalld.service",
    ]
    second = ansible(*args, home=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert re.findall(r"changed=(\d+)", second.stdout) == ["0"], second.stdout
    assert "RUNNING HANDLER" not in second.stdout


def test_the_role_renders_firewalld_strict_unless_told(tmp_path: Path) -> None:
    """webserver's limits cannot hold on firewalld: --strict fails the play, nothing is
    installed; fwgen_strict: false renders it with the warnings."""
    etc = tmp_path / "root" / "etc"
    inventory = tmp_path / "inventory.yml"
    host = {"fwgen_target": "firewalld", "fwgen_sets": ["admins=10.1.0.0/16"]}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"web": host}}}))
    settings = {
        **role_settings(tmp_path, etc, tmp_path / "systemctl.log"),
        "fwgen_firewalld_dest": str(etc / "fwgen" / "firewalld"),
        "fwgen_exec": ["false"],  # were anything loaded, it would fail here
    }
    args = ("-i", str(inventory), PLAYBOOK, "-e", json.dumps(settings))
    result = ansible(*args, home=tmp_path)
    assert result.returncode != 0 and "not rate limited" in result.stdout, result.stdout
    assert not etc.exists()
    settings |= {"fwgen_strict": False, "fwgen_load": "direct", "fwgen_exec": ["true"]}
    args = ("-i", str(inventory), PLAYBOOK, "-e", json.dumps(settings))
    result = ansible(*args, home=tmp_path)
    assert result.returncode == 0, result.stdout
    assert (etc / "fwgen" / "firewalld" / "zones" / "fwgen.xml").is_file()


def exec_in(lab: Lab) -> list[str]:
    return ["ip", "netns", "exec", lab.server]


# pre-commit ---------------------------------------------------------------


def test_pre_commit_hooks_run_fwgen_commands() -> None:
    hooks = yaml.safe_load(Path(".pre-commit-hooks.yaml").read_text())
    assert {h["id"]: h["entry"] for h in hooks} == {
        "fwgen-check": "fwgen check --strict",
        "fwgen-build-check": "fwgen build --check --strict",
    }


WORLD_OPEN = {  # what a reviewer must look at: exits 0 without --strict
    "telnet": "  - service: telnet\n",
    "mysql": "  - service: mysql\n",
}


@pytest.mark.parametrize("service", sorted(WORLD_OPEN))
def test_fwgen_check_hook_fails_on_a_service_open_to_the_world(
    tmp_path: Path, service: str
) -> None:
    (hook,) = [
        h
        for h in yaml.safe_load(Path(".pre-commit-hooks.yaml").read_text())
        if h["id"] == "fwgen-check"
    ]
    profile = tmp_path / "site" / "profiles" / "web1.yaml"
    profile.parent.mkdir(parents=True)
    profile.write_text(Path("examples/site/profiles/web1.yaml").read_text() + WORLD_OPEN[service])
    assert re.search(hook["files"], "site/profiles/web1.yaml")
    # what pre-commit runs: the entry, then the names of the changed files
    result = subprocess.run(
        [*shlex.split(hook["entry"]), "site/profiles/web1.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": PATH},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(rf": warning FW00[235] \[{service}\]: ", result.stdout), result.stdout


@pytest.mark.parametrize(
    ("path", "is_profile"),
    [
        ("profiles/base.yaml", True),
        ("site/profiles/web1.yaml", True),
        ("examples/site/profiles/web1.yaml", True),
        ("site/profiles/web1.yml", True),
        ("site/fwgen.yaml", False),  # a manifest
        ("fwgen.yaml", False),
        ("site/ports.yaml", False),  # a --ports file
        ("site/web1.yaml", False),  # not in a profiles/ folder
        ("site/profiles/lists/partners.txt", False),
        ("site/generated/web1.nft", False),
    ],
)
def test_fwgen_check_hook_is_given_profiles_only(path: str, is_profile: bool) -> None:
    (hook,) = [
        h
        for h in yaml.safe_load(Path(".pre-commit-hooks.yaml").read_text())
        if h["id"] == "fwgen-check"
    ]
    # pre-commit's selection: `files` searched in the path, `exclude` (if any) not.
    chosen = re.search(hook["files"], path) and not re.search(hook.get("exclude", "^$"), path)
    assert bool(chosen) == is_profile


def test_fwgen_check_hook_passes_on_the_example_profiles() -> None:
    profiles = sorted(str(p) for p in Path("examples").rglob("profiles/*.yaml"))
    assert profiles == ["examples/site/profiles/web1.yaml", "examples/site/profiles/web2.yaml"]
    result = subprocess.run(
        [str(BIN / "fwgen"), "check", *profiles], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


# CI -----------------------------------------------------------------------


def steps() -> dict[str, dict[str, Any]]:
    workflow = yaml.safe_load(Path(WORKFLOW).read_text())
    return {s.get("name") or s["uses"]: s for s in workflow["jobs"]["fwgen"]["steps"]}


def test_ci_installs_fwgen_from_its_repository_not_from_pypi() -> None:
    found = steps()
    assert found["actions/checkout@v4"]["with"]["submodules"] is True
    assert found["Install fwgen from its repository"]["run"] == "pip install ./vendor/fwgen"
    runs = [str(s.get("run", "")) for s in found.values()]
    assert not [r for r in runs if re.search(r"pip install +fwgen(\s|$)", r)]
    assert "unrelated" in Path(WORKFLOW).read_text()  # the comment says why


def test_ci_steps_fail_on_a_broken_profile_and_pass_on_changes(tmp_path: Path) -> None:
    need("" if shutil.which("git") else "git not installed")
    repo = tmp_path / "repo"
    shutil.copytree("examples/site", repo / "site")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh_log = tmp_path / "gh.log"
    stand_in(bin_dir / "gh", gh_log)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{PATH}",
        "BASE_REF": "main",
        "PR": "7",
        "GH_TOKEN": "unused",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }

    def run(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)

    def step(name: str) -> int:
        # GitHub runs a `run:` script with `bash -e`.
        return run("bash", "-e", "-c", steps()[name]["run"]).returncode

    assert run("git", "init", "-q", "-b", "main").returncode == 0
    # built inside the work tree, so the files are named by their paths in it
    assert run("fwgen", "build", "site/fwgen.yaml").returncode == 0
    for cmd in (
        ("git", "add", "-A"),
        ("git", "-c", "user.name=ci", "-c", "user.email=ci@example.org", "commit", "-qm", "site"),
        ("git", "update-ref", "refs/remotes/origin/main", "HEAD"),
    ):
        assert run(*cmd).returncode == 0
    changes = "What this pull request changes"

    # Nothing changed: every step passes, and nothing is posted.
    assert [step(s) for s in ("Generated rules are current", "Findings", changes)] == [0, 0, 0]
    assert not gh_log.exists()

    # A pull request that opens a port: the comment is posted and the job goes on;
    # the generated files are stale until `fwgen build` runs.
    profile = repo / "site" / "profiles" / "web1.yaml"
    original = profile.read_text()
    profile.write_text(original + "  - service: imaps\n")
    assert step(changes) == 0
    assert gh_log.read_text() == "pr comment 7 --body-file diff.md\n"
    assert "imaps" in (repo / "diff.md").read_text()
    assert step("Generated rules are current") == 1

    # A pull request that opens telnet or MySQL to the world fails the findings.
    for opened in WORLD_OPEN.values():
        profile.write_text(original + opened)
        assert step("Findings") == 1

    # A pull request that adds a profile, or changes any profile but web1: commented too,
    # each under its file's name.
    profile.write_text(original)
    gh_log.unlink()
    other = repo / "site" / "profiles" / "db1.yaml"
    other.write_text("description: db1\nextends: database\n")
    assert step(changes) == 0
    assert gh_log.read_text() == "pr comment 7 --body-file diff.md\n"
    assert "site/profiles/db1.yaml" in (repo / "diff.md").read_text()
    assert run("git", "add", "-A").returncode == 0
    assert (
        run(
            "git", "-c", "user.name=ci", "-c", "user.email=ci@example.org", "commit", "-qm", "db1"
        ).returncode
        == 0
    )
    assert run("git", "update-ref", "refs/remotes/origin/main", "HEAD").returncode == 0
    other.write_text("description: db1\nextends: database\ninbound:\n  - service: redis\n")
    gh_log.unlink()
    assert step(changes) == 0
    assert gh_log.exists() and "redis" in (repo / "diff.md").read_text()
    other.unlink()

    # A broken profile fails every step with fwgen's exit 2.
    profile.write_text(original + "  - service: imapz\n")
    assert [step(s) for s in ("Generated rules are current", "Findings", changes)] == [2, 2, 2]


def test_the_role_can_load_with_fwgen_apply_and_its_guard() -> None:
    handlers = yaml.safe_load(Path("examples/ansible/roles/fwgen/handlers/main.yml").read_text())
    by_name = {h["name"]: h for h in handlers}
    apply = by_name["Load the firewall with fwgen apply"]
    argv = apply["ansible.builtin.command"]["argv"]
    assert "['fwgen', 'apply', fwgen_profile, '--target', fwgen_target, '--yes']" in argv
    assert "'--keep='" in argv and apply["when"] == "fwgen_load == 'apply'"
    assert set(apply["listen"]) == {
        "Load the nftables ruleset",
        "Load the iptables rules",
        "Load the firewalld zone",
    }
    for name in apply["listen"]:
        assert by_name[name]["when"] == "fwgen_load == 'direct'"
    defaults = yaml.safe_load(Path("examples/ansible/roles/fwgen/defaults/main.yml").read_text())
    assert defaults["fwgen_load"] == "apply" and defaults["fwgen_keep"] == []


@pytest.mark.parametrize(
    ("ssh", "keep"),
    [
        ("192.0.2.10 50000 192.0.2.1 2222", ["192.0.2.10:2222"]),
        ("2001:db8::10 50000 2001:db8::1 22", ["[2001:db8::10]:22"]),
        ("", []),  # a local connection: nothing to keep
    ],
)
def test_the_role_passes_the_controller_s_connection_to_fwgen_apply(
    tmp_path: Path, ssh: str, keep: list[str]
) -> None:
    """sudo and become drop SSH_CONNECTION: the role reads it without become and passes
    it as --keep (ansible-playbook run for real, the role's own tasks file)."""
    playbook = tmp_path / "controller.yml"
    role = Path("examples/ansible/roles/fwgen").resolve()
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "all",
                    "gather_facts": False,
                    "vars": {"fwgen_load": "apply"},
                    "tasks": [
                        {
                            "ansible.builtin.include_role": {
                                "name": str(role),
                                "tasks_from": "controller",
                            }
                        },
                        {
                            "ansible.builtin.copy": {
                                "content": "{{ fwgen_controller_keep | default([]) | to_json }}",
                                "dest": str(tmp_path / "keep.json"),
                            }
                        },
                    ],
                }
            ]
        )
    )
    settings = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSH_CONNECTION", ssh)
        done = ansible("-i", "localhost,", str(playbook), "-e", json.dumps(settings), home=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((tmp_path / "keep.json").read_text()) == keep
    handlers = Path("examples/ansible/roles/fwgen/handlers/main.yml").read_text()
    assert "(fwgen_keep + fwgen_controller_keep) | map('regex_replace', '^', '--keep=')" in handlers
