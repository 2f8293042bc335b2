"""The examples run as written.

- The Ansible collection: tests/test_ansible.py and tests/kernel/test_ansible.py.
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

BIN = Path(sys.executable).parent
PATH = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
WORKFLOW = "examples/ci/fwgen.yml"


def need(reason: str) -> None:
    """Skip with *reason* (fail when FWGEN_REQUIRE_KERNEL is set); nothing when empty."""
    if reason:
        if os.environ.get("FWGEN_REQUIRE_KERNEL"):
            pytest.fail(f"{reason} (FWGEN_REQUIRE_KERNEL is set)")
        pytest.skip(reason)


def stand_in(path: Path, log: Path) -> Path:
    """An executable that records its arguments in *log*, one call a line."""
    path.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    path.chmod(0o755)
    return path


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

COMMENT_WORKFLOW = "examples/ci/fwgen-comment.yml"
BOT = "github-actions[bot]"
MARKER = "<!-- fwgen-review -->"
# A stand-in for `gh api`: the pull request and its comments in a JSON file; --jq through
# the real jq (gh's own --jq prints strings raw, as jq -r does); every write in a log.
GH = r"""#!/usr/bin/env python3
import json, subprocess, sys
state_path, log_path = sys.argv[0] + ".json", sys.argv[0] + ".log"
state = json.load(open(state_path))
args = sys.argv[1:]
assert args.pop(0) == "api"
method, jq, body, path = "GET", None, None, None
while args:
    arg = args.pop(0)
    if arg == "-X": method = args.pop(0)
    elif arg == "--jq": jq = args.pop(0)
    elif arg == "-F": body = open(args.pop(0).split("=@", 1)[1]).read()
    elif arg == "--paginate": pass
    else: path = arg
parts = path.split("/")
with open(log_path, "a") as log: log.write(f"{method} {path}\n")
if parts[3] == "pulls":
    answer = {"number": int(parts[4]), "head": {"sha": state["head"]}}
elif method == "GET":
    answer = state["comments"]
elif method == "PATCH":
    [c for c in state["comments"] if c["id"] == int(parts[5])][0]["body"] = body
    answer = {}
else:
    state["comments"].append({"id": 100 + len(state["comments"]), "user": {"login": "github-actions[bot]"}, "body": body})
    answer = {}
json.dump(state, open(state_path, "w"))
out = json.dumps(answer)
if jq:
    out = subprocess.run(["jq", "-r", jq], input=out, capture_output=True, text=True, check=True).stdout
sys.stdout.write(out)
"""


def workflow_steps(path: str, job: str) -> dict[str, dict[str, Any]]:
    workflow = yaml.safe_load(Path(path).read_text())
    return {s.get("name") or s["uses"]: s for s in workflow["jobs"][job]["steps"]}


def steps() -> dict[str, dict[str, Any]]:
    return workflow_steps(WORKFLOW, "fwgen")


def test_ci_installs_fwgen_into_a_virtualenv_from_its_repository() -> None:
    found = steps()
    assert found["actions/checkout@v4"]["with"]["submodules"] is True
    install = found["Install fwgen into a virtualenv"]["run"]
    assert 'python3 -m venv "$RUNNER_TEMP/fwgen"' in install
    assert '"$RUNNER_TEMP/fwgen/bin/pip" install --quiet ./vendor/fwgen' in install
    runs = [str(s.get("run", "")) for s in found.values()]
    assert not [r for r in runs if re.search(r"pip install +fwgen(\s|$)|break-system", r)]
    assert "unrelated" in Path(WORKFLOW).read_text()  # the comment says why


def test_ci_is_safe_for_pull_requests_from_forks() -> None:
    """The pull request's workflow has a read-only token and posts nothing; the comment
    job runs from the default branch on workflow_run and checks out nothing."""
    pr_workflow = yaml.safe_load(Path(WORKFLOW).read_text())
    triggers = pr_workflow[True]  # YAML 1.1 reads the key `on` as true
    assert set(triggers) == {"pull_request", "push"}
    assert pr_workflow["permissions"] == {"contents": "read"}
    assert pr_workflow["jobs"]["fwgen"]["permissions"] == {
        "contents": "read",
        "security-events": "write",
    }
    runs = " ".join(str(s.get("run", "")) for s in steps().values())
    assert "gh " not in runs and "GH_TOKEN" not in Path(WORKFLOW).read_text()
    upload = steps()["Keep the review for the comment job"]
    assert upload["uses"] == "actions/upload-artifact@v4" and upload["with"]["path"] == "review/"

    comment = yaml.safe_load(Path(COMMENT_WORKFLOW).read_text())
    assert comment[True] == {"workflow_run": {"workflows": ["firewall"], "types": ["completed"]}}
    assert comment["permissions"] == {}
    job = comment["jobs"]["comment"]
    assert job["if"] == "github.event.workflow_run.event == 'pull_request'"
    uses = [s.get("uses", "") for s in job["steps"]]
    assert not [u for u in uses if u.startswith("actions/checkout")]
    sarif = workflow_steps(COMMENT_WORKFLOW, "comment")["Upload the findings to code scanning"]
    assert sarif["uses"] == "github/codeql-action/upload-sarif@v3"
    assert sarif["with"]["sarif_file"] == "review/fwgen.sarif"


def git(repo: Path, *args: str) -> None:
    done = subprocess.run(
        ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.org", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_CONFIG_GLOBAL": os.devnull},
    )
    assert done.returncode == 0, done.stderr


def test_ci_steps_review_every_host_and_keep_one_comment(tmp_path: Path) -> None:
    """The workflows' run-steps, run with bash as GitHub runs them, in a git repository
    holding the example site; `gh` a stand-in for GitHub's API."""
    need("" if shutil.which("git") else "git not installed")
    need("" if shutil.which("jq") else "jq not installed (apt-get install jq)")
    repo = tmp_path / "repo"
    shutil.copytree("examples/site", repo / "site")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(GH)
    gh.chmod(0o755)
    state = Path(f"{gh}.json")
    state.write_text(json.dumps({"head": "abc123", "comments": []}))
    output = tmp_path / "github-output"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{PATH}",
        "MANIFEST": "site/fwgen.yaml",
        "BASE_REF": "main",
        "PR": "7",
        "GH_TOKEN": "unused",
        "REPO": "site/firewall",
        "HEAD_SHA": "abc123",
        "GITHUB_OUTPUT": str(output),
        "GIT_CONFIG_GLOBAL": os.devnull,
    }

    def step(name: str, workflow: str = WORKFLOW, job: str = "fwgen") -> int:
        # GitHub runs a `run:` script with `bash --noprofile --norc -eo pipefail`.
        script = workflow_steps(workflow, job)[name]["run"]
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
        )
        return done.returncode

    def comment() -> int:
        return step(
            "Post the comment, or update the one posted before", COMMENT_WORKFLOW, "comment"
        )

    def comments() -> list[dict[str, Any]]:
        return list(json.loads(state.read_text())["comments"])

    changes = "What this pull request changes"
    git(repo, "init", "-q", "-b", "main")
    # built inside the work tree, so the files are named by their paths in it
    assert subprocess.run(["fwgen", "build", "site/fwgen.yaml"], cwd=repo, env=env).returncode == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "site")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")

    # Nothing changed: every step passes; no comment is posted (none to update).
    checks = ("Generated rules are current", "Findings", "Findings for code scanning")
    assert [step(s) for s in (*checks, changes)] == [0, 0, 0, 0]
    sarif = json.loads((repo / "review" / "fwgen.sarif").read_text())
    assert sarif["version"] == "2.1.0"
    assert (repo / "review" / "pr").read_text() == "7\n"
    assert comment() == 0 and comments() == []
    assert output.read_text() == "pr=7\n"

    # A pull request that opens a port on web1: one comment, under the host's name.
    profile = repo / "site" / "profiles" / "web1.yaml"
    original = profile.read_text()
    profile.write_text(original + "  - service: imaps\n")
    assert step(changes) == 0 and comment() == 0
    (posted,) = comments()
    assert posted["body"].startswith(MARKER + "\n")
    assert "#### web1 (`site/profiles/web1.yaml`)" in posted["body"]
    assert "imaps 993/tcp" in posted["body"] and "web2" not in posted["body"]
    assert step("Generated rules are current") == 1  # stale until `fwgen build`

    # The next push changes web2 too: the same comment, edited in place.
    web2 = repo / "site" / "profiles" / "web2.yaml"
    web2_text = web2.read_text()
    web2.write_text(web2_text + "  - service: pop3s\n")
    assert step(changes) == 0 and comment() == 0
    (edited,) = comments()
    assert edited["id"] == posted["id"]
    assert "#### web2 (`site/profiles/web2.yaml`)" in edited["body"] and "pop3s" in edited["body"]
    assert "PATCH repos/site/firewall/issues/comments/100" in Path(f"{gh}.log").read_text()

    # Reverted: the comment says so, still one.
    profile.write_text(original)
    web2.write_text(web2_text)
    assert step(changes) == 0 and comment() == 0
    (reverted,) = comments()
    assert "No change in what any host admits." in reverted["body"]

    # A run for a commit that is no longer the pull request's head posts nothing.
    profile.write_text(original + "  - service: imaps\n")
    assert step(changes) == 0
    env["HEAD_SHA"] = "older"
    assert comment() == 0 and comments() == [reverted]
    env["HEAD_SHA"] = "abc123"

    # A forged number in the artifact is refused.
    (repo / "review" / "pr").write_text("7; rm -rf /\n")
    assert comment() == 1 and comments() == [reverted]

    # A pull request that opens telnet or MySQL to the world fails the findings.
    for opened in WORLD_OPEN.values():
        profile.write_text(original + opened)
        assert step("Findings") == 1

    # A new host on a new profile: shown whole (fwgen explain).
    profile.write_text(original)
    (repo / "site" / "profiles" / "db1.yaml").write_text("description: db1\nextends: database\n")
    manifest = repo / "site" / "fwgen.yaml"
    manifest.write_text(
        manifest.read_text()
        + "  db1:\n    profile: profiles/db1.yaml\n    set:\n      admins: [10.1.0.0/16]\n"
        "      app: [10.2.0.0/16]\n      private: [eth1]\n"
        "    targets:\n      nftables: generated/db1.nft\n"
    )
    assert step(changes) == 0
    body = (repo / "review" / "diff.md").read_text()
    assert "#### db1 (`site/profiles/db1.yaml`)" in body and "private: eth1" in body  # its set:

    # A broken profile fails every step with fwgen's exit 2.
    profile.write_text(original + "  - service: imapz\n")
    assert [step(s) for s in (*checks, changes)] == [2, 2, 2, 2]
