"""Guards of start-up that do not depend on the clock: what one ``fwgen`` process builds.

A small render is mostly start-up (see README "Performance"), so a regression there is a
module, a command or a model built for nothing. Each test runs the command in a fresh
interpreter, as a user does, and counts what it built.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Runs ``fwgen ARGS...`` in this interpreter, then prints what it built as JSON.
PROBE = """
import gc, json, sys
import pydantic, typer.main

commands = []
build = typer.main.get_command_from_info


def counted(*args, **kwargs):
    command = build(*args, **kwargs)
    commands.append(command.name)
    return command


typer.main.get_command_from_info = counted
sys.argv = ["fwgen", *sys.argv[1:]]
from fwgen.cli.app import main

try:
    main()
except SystemExit as exit:
    code = exit.code
frozen = gc.get_freeze_count()
gc.unfreeze()


def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


built = sorted(
    f"{cls.__module__}.{cls.__qualname__}"
    for cls in set(subclasses(pydantic.BaseModel))
    if cls.__module__.startswith("fwgen.") and cls.__pydantic_complete__
)
print(json.dumps({"code": code, "commands": commands, "models": built, "frozen": frozen}))
"""


def probe(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True, cwd="/"
    )
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def render() -> dict[str, object]:
    return probe("render", "webserver", "-t", "nftables")


def test_a_render_builds_only_its_own_command(render: dict[str, object]) -> None:
    assert render["code"] == 0
    assert render["commands"] == ["render"]


def test_a_render_builds_no_model_of_the_port_database(render: dict[str, object]) -> None:
    """The built-in entries were validated when they were compiled: a render that reads
    no site port file builds no validator for them, and validates none of them."""
    built = render["models"]
    assert isinstance(built, list)
    assert not [m for m in built if m.startswith("fwgen.profile.portdb.")]
    assert "fwgen.policy.ir.Policy" in built  # what a render does build is seen


def test_the_process_leaves_its_objects_to_the_exit(render: dict[str, object]) -> None:
    """No last walk over every object for cycles on the way out (``gc.freeze``)."""
    assert isinstance(render["frozen"], int)
    assert render["frozen"] > 10_000


@pytest.mark.parametrize(
    ("args", "commands"),
    [
        (["--debug", "-q", "targets"], ["targets"]),
        (["--version"], None),
        (["shadow", "stop", "--help"], ["start", "report", "stop"]),
        (["--help"], None),
        (["rendr"], None),
    ],
)
def test_help_and_unknown_names_build_every_command(
    args: list[str], commands: list[str] | None
) -> None:
    result = probe(*args)
    if commands is None:  # the whole list, to show it or to suggest a name from it
        assert len(result["commands"]) > 10  # type: ignore[arg-type]
        assert "render" in result["commands"]  # type: ignore[operator]
    else:
        assert result["commands"] == commands
