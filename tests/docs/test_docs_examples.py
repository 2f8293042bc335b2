"""Every `fwgen ...` example of the documentation runs, or (root's, on a host) parses.

A user's example runs against the built-in profiles and the site example in a scratch
folder, page by page in the order written, and must show what the page shows after it.
Root's examples (apply, shadow, hits: they need a host's kernel) are parsed here by the
real command line, so an option that does not exist or a value it refuses fails, and
run for real in tests/kernel/test_docs_host_examples.py; only commands that need a host
may be written as root's. The README's quickstart runs whole
in tests/kernel/test_readme_quickstart.py.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup
from typer.main import get_command
from typer.testing import CliRunner

from fwgen.cli.app import app
from tests.docs.examples import REPO, Example, documentation, page_examples

PAGES = documentation()
EXAMPLES = {page: page_examples(page) for page in PAGES}
CLI = get_command(app)
# What a page's examples find in their scratch folder, beside the built-in profiles:
# the site example as `site/` in a git repository whose main branch is `origin/main`,
# real scans of a web server (nmap from outside, `ss -tulpnH` on it) as web1.xml and
# web1.ss, and what tests/data/docs holds (the blocklist page's profile and list).
FIXTURES = {
    "web1.xml": REPO / "tests/data/audit/nmap-webserver-outside.xml",
    "web1.ss": REPO / "tests/data/audit/ss-tulpnH.txt",
}
PIPED = {"ss -tulpnH": "web1.ss"}  # what a command piped into fwgen stands for


def needs_host(argv: list[str]) -> bool:
    """Whether the command reads or changes a host's live firewall."""
    command = argv[:2]
    if command[:1] in (["apply"], ["hits"]):
        return True
    return command[:1] == ["shadow"] and "--dry-run" not in argv


def scratch(folder: Path) -> Path:
    shutil.copytree(REPO / "tests/data/docs", folder, dirs_exist_ok=True)
    shutil.copytree(REPO / "examples/site", folder / "site")
    for name, source in FIXTURES.items():
        shutil.copyfile(source, folder / name)
    git = ["git", "-c", "user.name=docs", "-c", "user.email=docs@example.org", "-C", str(folder)]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "site"]):
        subprocess.run([*git, *step], check=True)
    subprocess.run([*git, "update-ref", "refs/remotes/origin/main", "HEAD"], check=True)
    return folder


def shows(output: list[str], shown: list[str]) -> str:
    """'' when every shown line is a line of *output*, in order; else the first missing."""
    lines = iter(line.rstrip() for line in output)
    for expected in shown:
        if expected.strip() in ("", "..."):
            continue
        if not any(line == expected for line in lines):
            return expected
    return ""


def run(example: Example, folder: Path) -> None:
    stdin = ""
    source = " ".join(example.piped_from)
    if source:
        assert source in PIPED, f"{example.where}: no stand-in for `{source} |`"
        stdin = (folder / PIPED[source]).read_text(encoding="utf-8")
    if example.stdin:
        stdin = (folder / example.stdin).read_text(encoding="utf-8")
    result = CliRunner().invoke(app, example.argv, input=stdin or None)
    assert not isinstance(result.exception, AssertionError | AttributeError | TypeError), (
        f"{example.where}: a traceback\n{result.output}"
    )
    refused = any(line.startswith("error:") for line in example.output)
    expected = (2,) if refused else (0, 1)
    assert result.exit_code in expected, (
        f"{example.where}: exit {result.exit_code}\n{result.output}"
    )
    if example.stdout:
        (folder / example.stdout).parent.mkdir(parents=True, exist_ok=True)
        (folder / example.stdout).write_text(result.stdout, encoding="utf-8")
    missing = shows(result.output.splitlines(), example.output)
    assert not missing, f"{example.where}: does not print\n  {missing}\nbut\n{result.output}"


def parse(example: Example) -> None:
    """Parse root's example as the command line would, running nothing."""
    words = list(example.argv)
    command: Any = CLI
    context: Any = None
    try:
        if words[:1] and words[0].startswith("-"):  # the group's own options: --version
            CLI.make_context("fwgen", words)
            pytest.fail(f"{example.where}: parsed, but it should have stopped")
        context = CLI.make_context("fwgen", [], resilient_parsing=True)
        while isinstance(command, TyperGroup):
            assert words, f"{example.where}: no command"
            name = words.pop(0)
            command = command.get_command(context, name)
            assert command is not None, f"{example.where}: no command {name!r}"
        command.make_context(command.name, words, parent=context)
    except typer.Exit:
        return
    except AssertionError:
        raise
    except Exception as error:  # the command line's own refusal: a usage error
        format_message = getattr(error, "format_message", None)
        message = format_message() if format_message else str(error)
        pytest.fail(f"{example.where}: {type(error).__name__}: {message}")


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(REPO).as_posix() for p in PAGES])
def test_examples_of_the_page_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = EXAMPLES[page]
    monkeypatch.chdir(scratch(tmp_path))
    for example in examples:
        if example.root:
            parse(example)
        else:
            run(example, tmp_path)


def test_only_host_commands_are_written_as_roots() -> None:
    """A read-only example written as root's would escape being run: none is."""
    for example in (e for examples in EXAMPLES.values() for e in examples):
        assert example.root == needs_host(example.argv), (
            f"{example.where}: write it as {'root' if needs_host(example.argv) else 'a user'}"
            " (`# ` or `$ `)"
        )


def test_the_docs_have_examples_of_every_command() -> None:
    """Counted: each command has examples, and most examples run."""
    every = [e for examples in EXAMPLES.values() for e in examples]
    counts = Counter(e.argv[0] for e in every if e.argv)
    assert isinstance(CLI, TyperGroup)
    commands = sorted(CLI.commands)
    assert len(commands) >= 14 and [c for c in commands if not counts[c]] == []
    ran = sum(not e.root for e in every)
    assert ran >= 60 and ran > 3 * (len(every) - ran), (ran, len(every))


def test_every_command_has_its_page() -> None:
    assert isinstance(CLI, TyperGroup)
    pages = {p.stem for p in (REPO / "docs/commands").glob("*.md")}
    assert len(CLI.commands) >= 14 and sorted(set(CLI.commands) - pages) == []


def test_the_readme_examples_parse() -> None:
    examples = page_examples(REPO / "README.md")
    assert len(examples) >= 5
    for example in examples:
        parse(example)
