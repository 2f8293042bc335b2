"""Guards of start-up that do not depend on the clock: what one ``fwgen`` process builds.

A small render is mostly start-up (see README "Performance"), so a regression there is a
module, a command or a model built for nothing. Each test runs the command in a fresh
interpreter, as a user does, and counts what it built.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fwgen.profile import portdb

# Runs ``fwgen ARGS...`` in this interpreter, then prints what it built as JSON.
PROBE = """
import gc, json, sys
start = [generation["collections"] for generation in gc.get_stats()]
import fwgen.cli  # first, as in the ``fwgen`` script: ``from fwgen.cli.app import main``
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
collections = [g["collections"] - n for g, n in zip(gc.get_stats(), start)]
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
from fwgen.profile import portdb

made = sum(e._service is not None for e in portdb.builtin_entries()[0]) if code == 0 else None
summary = {"code": code, "commands": commands, "models": built, "frozen": frozen, "made": made}
summary["collections"] = collections
print(json.dumps(summary))
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


def test_a_render_builds_validators_only_for_what_the_user_wrote(
    render: dict[str, object],
) -> None:
    """A render builds pydantic validators for the profile it reads, and for nothing else:
    not for the built-in port entries (validated when they were compiled, and a render
    that reads no site port file validates none), not for the Policy fwgen makes itself
    (`fwgen.policy.frozen`)."""
    assert render["models"] == [
        "fwgen.profile.models.InboundRule",
        "fwgen.profile.models.Limit",
        "fwgen.profile.models.OutboundRule",
        "fwgen.profile.models.Profile",
        "fwgen.profile.models.RuleSpec",
        "fwgen.profile.options.Options",
    ]


def test_a_render_makes_only_the_port_entries_it_looks_up(render: dict[str, object]) -> None:
    """Of the hundreds of built-in entries, a render makes the few its profile names and
    the known backdoors every rule is checked against, not all of them."""
    backdoors = [e for e in portdb.builtin_entries()[0] if e.exposure == "never"]
    assert len(portdb.builtin_entries()[0]) > 300
    assert isinstance(render["made"], int)
    assert len(backdoors) <= render["made"] <= len(backdoors) + 12


def test_a_render_looks_for_reference_cycles_a_few_times_at_most(
    render: dict[str, object],
) -> None:
    """Each look walks the objects made since the last (hundreds of thousands, by the end
    of the imports): with the interpreter's default a render looked about 80 times, 7 of
    them over everything the earlier looks had kept."""
    collections = render["collections"]
    assert isinstance(collections, list)
    assert collections[0] <= 5
    assert collections[1:] == [0, 0]


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


def test_no_pydantic_plugin_runs_inside_fwgen(tmp_path: Path) -> None:
    """An installed package may declare a pydantic plugin (an entry point), which pydantic
    imports and runs on every validation: fwgen turns them off, so nothing installed beside
    it sees a profile (or runs as root with apply), and no process searches every package's
    metadata for them. The same package's plugin does run in a plain pydantic process."""
    marker = tmp_path / "ran"
    site = tmp_path / "site"
    info = site / "spy_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: spy-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pydantic]\nspy = spy_plugin:plugin\n")
    (site / "spy_plugin.py").write_text(
        f"open({str(marker)!r}, 'a').write('imported')\nplugin = object()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("PYDANTIC_DISABLE_PLUGINS", None)
    fwgen = [sys.executable, "-c", "from fwgen.cli.app import main; main()"]
    done = subprocess.run(
        [*fwgen, "render", "webserver", "-t", "nftables"], env=env, capture_output=True, cwd="/"
    )
    assert done.returncode == 0, done.stderr
    assert not marker.exists()
    plain = "import pydantic\nclass M(pydantic.BaseModel):\n    a: int\nM(a=1)"
    subprocess.run([sys.executable, "-c", plain], env=env, capture_output=True, cwd="/")
    assert marker.read_text() == "imported"  # the plugin is seen where fwgen does not stop it
