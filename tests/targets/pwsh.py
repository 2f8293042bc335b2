"""The generated PowerShell read back into the steps it takes, and a model of Windows
Firewall that takes them.

PowerShell cannot run here. `read_script` parses the script with tree-sitter-powershell
and accepts exactly one shape (anything else is an AssertionError naming what differs):

    $ErrorActionPreference = 'Stop'
    $ThisGeneration = 'fwgen-<12 hex digits>-*'
    $Present = @{}
    Get-NetFirewallRule -Group 'fwgen' ... | ForEach-Object { $Present[$_.Name] = $true }
    try {
        if (-not $Present.ContainsKey('N')) { New-NetFirewallRule -Name 'N' ... -ErrorAction Stop | Out-Null }
        Set-NetFirewallProfile -All -Enabled True -DefaultInboundAction Block ... -ErrorAction Stop
    } catch {
        Get-NetFirewallRule -Group 'fwgen' ... | Where-Object { <added by this run> } |
            Remove-NetFirewallRule -ErrorAction Stop
        throw
    }
    Get-NetFirewallRule -Group 'fwgen' ... | Where-Object { <other generations> } |
        Remove-NetFirewallRule -ErrorAction Stop
    Get-NetFirewallRule ... | Where-Object { <not fwgen, not Core Networking> } |
        Disable-NetFirewallRule -ErrorAction Stop            # exclusive mode only

`run` then plays those steps on a `Firewall` with what each cmdlet is documented to do
(rule names compared ignoring case, as Windows does; ``-like`` on a pattern that only
ends in ``*`` is a case-insensitive prefix match; ``throw`` in ``catch`` ends the script).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest

ts = pytest.importorskip("tree_sitter")
tsp = pytest.importorskip("tree_sitter_powershell")
PARSER = ts.Parser(ts.Language(tsp.language()))

GROUP = "fwgen"
CORE_NETWORKING = "@FirewallAPI.dll,-25000"
# The filters the script may use, as written (whitespace collapsed).
ADDED_BY_THIS_RUN = "{ $_.Name -like $ThisGeneration -and -not $Present.ContainsKey($_.Name) }"
OTHER_GENERATIONS = "{ $_.Name -notlike $ThisGeneration }"
EXCLUSIVE = re.compile(r"\{ \$_\.Group -ne '([^']*)' -and \$_\.Group -ne '([^']*)' \}")

Node = Any  # a tree_sitter.Node


@dataclass(frozen=True)
class Command:
    """One command of a pipeline: its name, its parameters (a switch maps to None, a value
    to its strings, unquoted) and the text of a script block argument."""

    name: str
    params: dict[str, list[str] | None]
    block: str = ""


@dataclass
class Script:
    generation: str  # the -like pattern, 'fwgen-<hex>-*'
    adds: list[Command]  # New-NetFirewallRule, each run only when its -Name is not present
    profile: Command  # Set-NetFirewallProfile, the last step inside try
    rollback: list[Command]  # the catch block's pipeline, before `throw`
    cleanup: list[Command]  # the pipeline after try/catch
    exclusive: list[Command] | None = None

    def names(self) -> list[str]:
        return [one(c.params["Name"]) for c in self.adds]


def one(values: list[str] | None) -> str:
    assert values is not None and len(values) == 1, values
    return values[0]


def _text(node: Node) -> str:
    return str(node.text.decode())


def _squash(text: str) -> str:
    return " ".join(text.split())


def _named(node: Node) -> list[Node]:
    """The children that are statements or values, without comments and separators."""
    return [
        c
        for c in node.children
        if c.type not in ("comment", "command_argument_sep", "{", "}", "(", ")", "|")
    ]


def _strings(node: Node) -> list[str]:
    """The values of every string literal under *node*; all must be single-quoted."""
    out: list[str] = []

    def walk(n: Node) -> None:
        if n.type == "string_literal":
            text = _text(n)
            assert text.startswith("'") and text.endswith("'"), f"not single-quoted: {text}"
            out.append(text[1:-1].replace("''", "'"))
            return
        for c in n.children:
            walk(c)

    walk(node)
    return out


def _command(node: Node) -> Command:
    assert node.type == "command", node.type
    name = _text(node.children[0])
    params: dict[str, list[str] | None] = {}
    block = ""
    elements = node.children[1].children if len(node.children) > 1 else []
    key = None
    for element in elements:
        if element.type == "command_argument_sep":
            continue
        if element.type == "command_parameter":
            key = _text(element).lstrip("-")
            assert key not in params, f"{name}: -{key} twice"
            params[key] = None
            continue
        if _text(element).startswith("{"):
            block = _squash(_text(element))
            continue
        assert key is not None and params[key] is None, f"{name}: stray {_text(element)}"
        params[key] = (
            _strings(element) if element.type == "array_literal_expression" else [_text(element)]
        )
        key = None
    return Command(name, params, block)


def _pipeline(node: Node) -> list[Command]:
    assert node.type == "pipeline", f"expected a pipeline, found {node.type}: {_text(node)}"
    chain = node.children[0]
    assert chain.type == "pipeline_chain", _text(node)
    return [_command(c) for c in chain.children if c.type == "command"]


def _statements(block: Node) -> list[Node]:
    """The statements of a statement_block or the program."""
    lists = [c for c in block.children if c.type == "statement_list"]
    assert len(lists) <= 1
    return _named(lists[0]) if lists else []


def _assignment(node: Node) -> tuple[str, str]:
    assert node.type == "pipeline" and node.children[0].type == "assignment_expression", _text(node)
    left, _, right = node.children[0].children
    return _text(left), _text(right)


def _guarded_add(node: Node) -> Command:
    """`if (-not $Present.ContainsKey('N')) { New-NetFirewallRule -Name 'N' ... | Out-Null }`"""
    assert node.type == "if_statement", f"expected a guarded add, found: {_text(node)[:80]}"
    parts = _named(node)
    assert [p.type for p in parts] == ["if", "pipeline", "statement_block"], _text(node)[:80]
    condition = parts[1]
    guard = _strings(condition)
    quoted = "'" + one(guard).replace("'", "''") + "'"
    assert _squash(_text(condition)) == f"-not $Present.ContainsKey({quoted})", _text(condition)
    body = _statements(parts[2])
    assert len(body) == 1, _text(parts[2])
    commands = _pipeline(body[0])
    assert [c.name for c in commands] == ["New-NetFirewallRule", "Out-Null"], _text(body[0])
    add = commands[0]
    assert one(add.params["Name"]) == one(guard), "the guard names another rule than -Name"
    assert add.params["ErrorAction"] == ["Stop"], "a failed add must reach catch"
    return add


def read_script(script: str) -> Script:
    tree = PARSER.parse(script.encode())
    assert not tree.root_node.has_error, "the script does not parse"
    top = _statements(tree.root_node)
    assert 6 <= len(top) <= 7, f"{len(top)} statements, not 6 or 7"
    assert _assignment(top[0]) == ("$ErrorActionPreference", "'Stop'")
    generation = _strings(top[1])[0]
    assert _assignment(top[1]) == ("$ThisGeneration", f"'{generation}'")
    assert re.fullmatch(r"fwgen-[0-9a-f]{12}-\*", generation), generation
    assert _assignment(top[2]) == ("$Present", "@{}")
    present = _pipeline(top[3])
    assert [c.name for c in present] == ["Get-NetFirewallRule", "ForEach-Object"]
    assert present[0].params["Group"] == [GROUP]
    assert present[1].block == "{ $Present[$_.Name] = $true }"

    attempt = top[4]
    assert attempt.type == "try_statement", f"expected try, found: {_text(attempt)[:80]}"
    block, clauses = _named(attempt)[1:]
    body = _statements(block)
    adds = [_guarded_add(s) for s in body[:-1]]
    (profile,) = _pipeline(body[-1])
    assert profile.name == "Set-NetFirewallProfile", profile.name
    assert profile.params["ErrorAction"] == ["Stop"], "a failure here must reach catch"
    (clause,) = _named(clauses)
    assert [c.type for c in _named(clause)] == ["catch", "statement_block"], "catch takes all"
    handler = _statements(_named(clause)[1])
    assert len(handler) == 2 and _text(handler[1]) == "throw", _text(_named(clause)[1])
    rollback = _pipeline(handler[0])

    cleanup = _pipeline(top[5])
    exclusive = _pipeline(top[6]) if len(top) > 6 else None
    return Script(generation, adds, profile, rollback, cleanup, exclusive)


# ------------------------------------------------------------------ a model of Windows Firewall


class ScriptStopped(Exception):
    """The script ended with an error (``throw`` after ``catch``, or ``Stop``)."""


@dataclass
class Rule:
    group: str
    direction: str = "Inbound"
    action: str = "Allow"
    enabled: bool = True
    params: dict[str, list[str] | None] = field(default_factory=dict)


@dataclass
class Firewall:
    rules: dict[str, Rule] = field(default_factory=dict)  # by name as Windows stores it
    profile: dict[str, list[str] | None] | None = None
    log: list[str] = field(default_factory=list)  # what each run did, in order
    fail_add: int | None = None  # the n-th New-NetFirewallRule of the next run fails
    fail_profile: bool = False

    def find(self, name: str) -> str | None:
        return next((n for n in self.rules if n.casefold() == name.casefold()), None)

    def add(self, command: Command) -> None:
        name = one(command.params["Name"])
        assert self.find(name) is None, f"New-NetFirewallRule: a rule named {name} exists"
        self.rules[name] = Rule(group=one(command.params["Group"]), params=command.params)
        self.log.append(f"add {name}")

    def remove(self, name: str, how: str = "remove") -> None:
        if how == "disable":
            self.rules[name].enabled = False
        else:
            del self.rules[name]
        self.log.append(f"{how} {name}")

    def fwgen(self) -> set[str]:
        return {n for n, r in self.rules.items() if r.group == GROUP}


def _like(name: str, pattern: str) -> bool:
    assert pattern.endswith("*") and not re.search(r"[*?\[\]]", pattern[:-1]), pattern
    return name.casefold().startswith(pattern[:-1].casefold())


def _selected(fw: Firewall, get: Command) -> list[str]:
    """What `Get-NetFirewallRule` with these parameters returns."""
    allowed = {"Group", "ErrorAction", "Direction", "Action", "Enabled"}
    assert set(get.params) <= allowed, get.params
    out = []
    for name, rule in fw.rules.items():
        if "Group" in get.params and rule.group != one(get.params["Group"]):
            continue
        if "Direction" in get.params and rule.direction != one(get.params["Direction"]):
            continue
        if "Action" in get.params and rule.action != one(get.params["Action"]):
            continue
        if "Enabled" in get.params and rule.enabled != (one(get.params["Enabled"]) == "True"):
            continue
        out.append(name)
    return out


def _filtered(
    fw: Firewall, pipeline: list[Command], script: Script, present: set[str]
) -> list[str]:
    get, where = pipeline[0], pipeline[1]
    assert get.name == "Get-NetFirewallRule" and where.name == "Where-Object", pipeline
    names = _selected(fw, get)
    if where.block == ADDED_BY_THIS_RUN:
        return [n for n in names if _like(n, script.generation) and n.casefold() not in present]
    if where.block == OTHER_GENERATIONS:
        return [n for n in names if not _like(n, script.generation)]
    m = EXCLUSIVE.fullmatch(where.block)
    assert m, f"a filter the model does not know: {where.block}"
    return [n for n in names if fw.rules[n].group not in (m[1], m[2])]


def _apply(fw: Firewall, pipeline: list[Command], script: Script, present: set[str]) -> None:
    action = {"Remove-NetFirewallRule": "remove", "Disable-NetFirewallRule": "disable"}
    assert len(pipeline) == 3 and pipeline[2].name in action, pipeline
    assert pipeline[2].params == {"ErrorAction": ["Stop"]}, pipeline[2]
    for name in _filtered(fw, pipeline, script, present):
        fw.remove(name, action[pipeline[2].name])


def run(script: Script, fw: Firewall) -> None:
    """Play the script on *fw*; raises ScriptStopped where the script would stop."""
    present = {n.casefold() for n in fw.fwgen()}
    try:
        for n, add in enumerate(script.adds):
            if one(add.params["Name"]).casefold() in present:
                continue
            if fw.fail_add == n:
                raise ScriptStopped(f"New-NetFirewallRule {one(add.params['Name'])} failed")
            fw.add(add)
        if fw.fail_profile:
            raise ScriptStopped("Set-NetFirewallProfile failed")
        fw.profile = script.profile.params
        fw.log.append("profile")
    except ScriptStopped:
        _apply(fw, script.rollback, script, present)
        raise
    finally:
        fw.fail_add, fw.fail_profile = None, False
    _apply(fw, script.cleanup, script, present)
    if script.exclusive is not None:
        _apply(fw, script.exclusive, script, present)
