"""Run one documentation page's examples, root's included, inside a sandbox.

``python -m tests.docs.host_run PAGE SCRATCH NETNS`` is started by
tests/kernel/test_docs_host_examples.py inside private mount and PID namespaces (a tmpfs
on /run, a private copy of /etc): a user's example runs as it is; root's runs inside
the network namespace NETNS, the only place its rules go. An `apply` is answered `yes`
at its prompt, as at a console, unless the page's next example is `apply
--confirm-pending`: then it waits in the background and that example confirms it. It
prints one JSON object per example: where, the exit code, the output, what is wrong.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.docs.examples import REPO, Example, page_examples

PIPED = {"ss -tulpnH": "web1.ss"}


def expected_codes(example: Example) -> tuple[int, ...]:
    if any(line.startswith("error:") for line in example.output):
        return (2,)
    return (0,) if example.root else (0, 1)


def shows(output: list[str], shown: list[str]) -> str:
    lines = iter(line.rstrip() for line in output)
    for expected in shown:
        if expected.strip() in ("", "...") or any(line == expected for line in lines):
            continue
        return expected
    return ""


def command(example: Example, netns: str) -> list[str]:
    fwgen = [sys.executable, "-m", "fwgen", *example.argv]
    return ["ip", "netns", "exec", netns, *fwgen] if example.root else fwgen


def stdin_of(example: Example, folder: Path) -> str:
    source = " ".join(example.piped_from)
    if source:
        return (folder / PIPED[source]).read_text(encoding="utf-8")
    if example.stdin:
        return (folder / example.stdin).read_text(encoding="utf-8")
    return "yes\n" if example.argv[:1] == ["apply"] else ""


def report(example: Example, code: int, output: str) -> None:
    problem = ""
    if code not in expected_codes(example):
        problem = f"exit {code}, expected {expected_codes(example)}"
    elif missing := shows(output.splitlines(), example.output):
        problem = f"does not print {missing!r}"
    print(json.dumps({"where": example.where, "code": code, "output": output, "problem": problem}))


def main(page: Path, folder: Path, netns: str) -> None:
    examples = page_examples(page)
    waiting: tuple[Example, subprocess.Popen[str], list[str]] | None = None
    for number, example in enumerate(examples):
        following = examples[number + 1].argv if number + 1 < len(examples) else []
        if example.argv[:1] == ["apply"] and following == ["apply", "--confirm-pending"]:
            waiting = (example, *prompted(command(example, netns), folder))
            continue
        result = subprocess.run(
            command(example, netns),
            cwd=folder,
            input=stdin_of(example, folder),
            stdout=subprocess.PIPE,
            # one stream, in the order printed, unless stdout goes to a file
            stderr=subprocess.PIPE if example.stdout else subprocess.STDOUT,
            text=True,
            timeout=300,
        )
        if example.stdout:
            (folder / example.stdout).write_text(result.stdout, encoding="utf-8")
        report(example, result.returncode, result.stdout + (result.stderr or ""))
        if waiting:
            earlier, process, before = waiting
            rest, _ = process.communicate(timeout=120)
            report(earlier, process.returncode, "".join(before) + rest)
            waiting = None


def prompted(argv: list[str], folder: Path) -> tuple[subprocess.Popen[str], list[str]]:
    """An apply started in the background, once it shows its prompt; what it printed."""
    process = subprocess.Popen(
        argv,
        cwd=folder,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if "Type 'yes'" in line:
            break
    return process, lines


if __name__ == "__main__":
    main(REPO / sys.argv[1], Path(sys.argv[2]), sys.argv[3])
