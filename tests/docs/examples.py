"""The `fwgen ...` command examples of the documentation, found the way a reader sees them.

Fenced blocks whose language is empty, `console`, `sh`, `shell` or `bash` hold commands:

- in a `console` block, `$ ` starts a command a user runs and `# ` one that root runs
  on a host; the lines that follow a command, up to the next prompt, are its output
  (`...` stands for lines left out);
- in the other blocks every line is a command, except comments (`#`); `sudo ` makes
  it root's.

A command line may chain commands (`|`, `&&`, `;`) and redirect (`>`, `<`): every
part that starts with `fwgen` is an example. A user's example runs (read-only, in a
scratch folder that holds the site example and the fixtures); root's examples need a
host (apply, shadow, hits): tests/docs parses them with the real command line, and
tests/kernel/test_docs_host_examples.py runs them in a throw-away network namespace.
A test checks that only host commands are written as root's.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHELL_BLOCKS = {"", "console", "sh", "shell", "bash"}
FENCE = re.compile(r"^(`{3,})\s*([\w+-]*)")
OPERATORS = {"|", "&&", "||", ";"}


@dataclass
class Example:
    page: str  # repository path of the Markdown file
    line: int  # line of the command in it
    argv: list[str]  # the words after `fwgen`
    root: bool  # written as root's: parsed, not run
    stdin: str = ""  # a file redirected in with `<`
    stdout: str = ""  # a file redirected out with `>`
    piped_from: list[str] = field(default_factory=list)  # the command piped in, if any
    output: list[str] = field(default_factory=list)  # the lines shown after it

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}: fwgen {shlex.join(self.argv)}"


def _words(command: str) -> list[str]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def _examples(page: str, line: int, command: str, root: bool) -> list[Example]:
    """The `fwgen` commands of one command line."""
    found: list[Example] = []
    segments: list[list[str]] = [[]]
    for word in _words(command):
        if word in OPERATORS:
            segments.append([word])
        else:
            segments[-1].append(word)
    previous: list[str] = []
    for segment in segments:
        piped = bool(segment) and segment[0] == "|"
        words = [w for w in segment if w not in OPERATORS]
        as_root = root or words[:1] == ["sudo"]
        words = words[1:] if words[:1] == ["sudo"] else words
        if words[:1] == ["fwgen"]:
            example = Example(page, line, [], as_root, piped_from=previous if piped else [])
            rest = words[1:]
            while rest:
                word = rest.pop(0)
                if word in (">", "<") and rest:
                    setattr(example, "stdout" if word == ">" else "stdin", rest.pop(0))
                else:
                    example.argv.append(word)
            found.append(example)
        previous = words
    return found


def page_examples(path: Path) -> list[Example]:
    page = path.relative_to(REPO).as_posix()
    lines = path.read_text(encoding="utf-8").split("\n")
    found: list[Example] = []
    fence = ""
    language = ""
    current: Example | None = None
    pending = ""
    for number, text in enumerate(lines, 1):
        opening = FENCE.match(text)
        if not fence:
            if opening:
                fence, language = opening[1], opening[2]
            continue
        if text.strip() == fence:
            fence = ""
            current = None
            continue
        if language not in SHELL_BLOCKS:
            continue
        if pending:
            text, pending = pending + " " + text.strip(), ""
        if text.rstrip().endswith("\\"):
            pending = text.rstrip()[:-1]
            continue
        if language == "console":
            prompt = text[:2]
            if prompt in ("$ ", "# "):
                examples = _examples(page, number, text[2:], prompt == "# ")
                found += examples
                current = examples[-1] if examples else None
            elif current is not None:
                current.output.append(text.rstrip())
            continue
        if text.lstrip().startswith("#") or not text.strip():
            continue
        found += _examples(page, number, text, False)
    return found


def documentation() -> list[Path]:
    return sorted((REPO / "docs").rglob("*.md"))
