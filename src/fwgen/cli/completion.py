"""Shell completion: what fwgen offers for the word under the cursor.

The shell's script (`fwgen.cli.completion_scripts`) gives the line up to the cursor; the
commands and options come from the CLI itself, and values from what each parameter is:
a profile (the built-in names, with their descriptions, and profile files), a target
(the registry's names the option's help mentions), ``--set`` (the networks and interface
groups of the profiles given earlier on the line), a format or a ``a|b`` metavar (its
choices), a file or a folder (left to the shell). Only ``--set`` reads a profile, so only
it loads the profile models.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fwgen.cli.common import GLOBAL_FLAGS, take_global_flags
from fwgen.errors import FwgenError, printable

VARIABLE = "_FWGEN_COMPLETE"
LINE = "_FWGEN_COMPLETE_LINE"
WORD = "_FWGEN_COMPLETE_WORD"  # bash: the current word as bash splits it (at '=' and ':')
PROFILE_METAVARS = {"PROFILE", "PROFILE...", "OLD", "NEW"}
FILES = {"FILE": "file", "MANIFEST": "yaml", "DIR": "dir"}


@dataclass(frozen=True)
class Candidate:
    kind: str  # plain, or yaml / file / dir: the shell completes paths itself
    value: str = ""
    help: str = ""

    def line(self) -> str:
        text = re.sub(r"\s+", " ", printable(self.help)).strip()
        return f"{self.kind}\t{self.value}\t{text[:100]}"


def split_line(line: str) -> tuple[list[str], str]:
    """The words before the cursor's word, and the cursor's word (empty after a space)."""
    try:
        words = shlex.split(line)
    except ValueError:  # an open quote: the last word is the one being typed
        lexer = shlex.shlex(line, posix=True)
        lexer.whitespace_split = True
        lexer.commenters = ""
        words = []
        try:
            words.extend(lexer)
        except ValueError:
            words.append(lexer.token)
        return words[1:-1], words[-1] if len(words) > 1 else ""
    if not line or line[-1].isspace():
        return words[1:], ""
    return words[1:-1], words[-1] if len(words) > 1 else ""


def _context(cli: Any, args: list[str]) -> Any:
    """The context of the innermost command that *args* name (parsed, never run)."""
    ctx = cli.make_context("fwgen", list(args), resilient_parsing=True)
    rest = [*ctx._protected_args, *ctx.args]
    while rest and hasattr(ctx.command, "resolve_command"):
        name, command, rest = ctx.command.resolve_command(ctx, rest)
        if command is None:
            break
        ctx = command.make_context(name, rest, parent=ctx, resilient_parsing=True)
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
    return ctx


def _option_waiting(args: list[str], param: Any) -> bool:
    """Whether *param* is an option whose value is the word being typed."""
    if param.param_type_name != "option" or param.is_flag or param.count:
        return False
    return bool(args) and args[-1] in param.opts


def _argument_open(ctx: Any, param: Any) -> bool:
    """Whether *param* is an argument that takes the next word."""
    if param.param_type_name != "argument":
        return False
    source = ctx.get_parameter_source(param.name)
    return bool(param.nargs == -1 or source is None or source.name != "COMMANDLINE")


def candidates(cli: Any, args: list[str], incomplete: str) -> tuple[list[Candidate], str]:
    """What completes *incomplete* after *args*, and the text kept before each value
    (``--format=`` when the option and its value are one word)."""
    args = take_global_flags(args)
    # an option still waiting for its value would make the parse give up on the line
    ctx = _context(cli, args[:-1] if args and args[-1].startswith("-") else args)
    kept = ""
    if incomplete.startswith("--") and "=" in incomplete:
        name, _, incomplete = incomplete.partition("=")
        args, kept = [*args, name], f"{name}="
    if "--" not in args and incomplete.startswith("-") and not kept:
        return _commands_and_options(ctx, incomplete), kept
    params = ctx.command.get_params(ctx)
    for param in params:
        if _option_waiting(args, param):
            return _values(ctx, param, incomplete), kept
    for param in params:
        if _argument_open(ctx, param):
            return _values(ctx, param, incomplete), kept
    return _commands_and_options(ctx, incomplete), kept


def _commands_and_options(ctx: Any, incomplete: str) -> list[Candidate]:
    found = [
        Candidate("plain", item.value, item.help or "")
        for item in ctx.command.shell_complete(ctx, incomplete)
    ]
    if incomplete.startswith("-") and ctx.parent is not None:  # taken anywhere on the line
        root = ctx.find_root().command
        found += [
            Candidate("plain", opt, param.help or "")
            for param in root.params
            for opt in param.opts
            if opt in GLOBAL_FLAGS and opt.startswith(incomplete)
        ]
    return found


def _values(ctx: Any, param: Any, incomplete: str) -> list[Candidate]:
    """The values *param* takes that start with *incomplete*."""
    metavar = param.metavar or ""
    if metavar in PROFILE_METAVARS:
        found = [*_builtin_profiles(), Candidate("yaml")]
    elif "--target" in param.opts:
        found = _targets(param.help or "")
    elif "--set" in param.opts:
        found = _networks(ctx)
    elif metavar in FILES:
        return [Candidate(FILES[metavar])]
    elif "|" in metavar:
        found = [Candidate("plain", choice) for choice in metavar.split("|")]
    elif metavar in ("FORMAT", "KIND", "SHELL"):
        found = [Candidate("plain", choice) for choice in help_choices(param.help or "")]
    else:
        return []
    return [c for c in found if c.kind != "plain" or c.value.startswith(incomplete)]


def help_choices(text: str) -> list[str]:
    """``"text, json or sarif."`` → the words offered: text, json, sarif."""
    text = re.sub(r"\([^)]*\)", "", text).strip().rstrip(".")
    parts = re.split(r",\s*|\s+or\s+", text)
    return [p.strip() for p in parts if re.fullmatch(r"[a-z][a-z0-9-]*", p.strip())]


def _builtin_profiles() -> Iterator[Candidate]:
    from fwgen.read.paths import profiles_dir
    from fwgen.read.yamlsource import parse, read_text

    for path in sorted(profiles_dir().glob("*.yaml")):
        try:
            data = parse(read_text(path, path.name), path.name).data
        except FwgenError:
            data = None
        description = data.get("description", "") if isinstance(data, dict) else ""
        yield Candidate("plain", path.stem, str(description))


def _targets(help_text: str) -> list[Candidate]:
    from fwgen.targets import TARGETS

    named = [t for t in TARGETS.values() if re.search(rf"\b{re.escape(t.name)}\b", help_text)]
    return [Candidate("plain", t.name, t.title) for t in named or TARGETS.values()]


def _networks(ctx: Any) -> list[Candidate]:
    """``NAME=`` for each network and interface group of the profiles given on the line."""
    from fwgen.profile.load import load_profile

    refs: list[str] = []
    for param in ctx.command.params:
        if (param.metavar or "") in PROFILE_METAVARS:
            value = ctx.params.get(param.name)
            refs += [value] if isinstance(value, str) else list(value or ())
    found: dict[str, Candidate] = {}
    for ref in refs:
        try:
            merged = load_profile(ref)
        except (FwgenError, OSError):
            continue
        for name, located in merged.networks.items():
            shown = ", ".join(located.value) or "empty"
            found.setdefault(name, Candidate("plain", f"{name}=", f"network: {shown}"))
        for name, located in merged.interfaces.items():
            shown = ", ".join(located.value) or "empty"
            found.setdefault(name, Candidate("plain", f"{name}=", f"interface group: {shown}"))
    return [found[name] for name in sorted(found)]


def for_bash(values: list[Candidate], kept: str, typed: str, word: str) -> list[Candidate]:
    """The values as bash replaces its current *word* of the *typed* one: bash ends a word
    at '=' and ':' (``--format=js`` is the words ``--format``, ``=``, ``js``)."""
    if not typed.endswith(word):
        return values
    before = typed[: len(typed) - len(word)]
    return [
        Candidate(c.kind, (kept + c.value)[len(before) :], c.help)
        if c.kind == "plain" and (kept + c.value).startswith(before)
        else c
        for c in values
        if c.kind != "plain" or (kept + c.value).startswith(before)
    ]


def complete_from_environment(cli: Any) -> int:
    """Answer the shell's script (see `fwgen.cli.completion_scripts`): one candidate a line."""
    shell = os.environ.get(VARIABLE, "")
    if shell not in ("bash", "zsh", "fish"):
        print(f"error: {VARIABLE}={printable(shell)!r}: use bash, zsh or fish", file=sys.stderr)
        return 2
    args, incomplete = split_line(os.environ.get(LINE, ""))
    values, kept = candidates(cli, args, incomplete)
    if shell == "bash":
        values = for_bash(values, kept, incomplete, os.environ.get(WORD, incomplete))
    lines = [c.line() for c in values if c.value.isprintable()]
    print("\n".join(dict.fromkeys(lines)))
    return 0
