"""Hostile review findings on deny rules, blocklists, interfaces and the firewalld target,
each a test that fails while the finding stands."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.cli.hits import rendered_rules
from fwgen.host.guard import from_ssh, lockouts
from fwgen.host.shadow import parse
from fwgen.policy.resolve import resolve_profile
from tests.test_hostile import _files, _run

runner = CliRunner()
MARK = "fwgen shadow v1 prefix-v4=32 prefix-v6=64 size=16384 profile=webserver"

# The admins' SSH is admitted from 10.20.0.0/26; the blocklist (every protocol, denied
# before every allow rule) holds 10.0.0.0/8: every connection the SSH rule admits is
# dropped, the admins locked out. `fwgen check --strict` says so (FW021) and exits 1.
LOCKOUT = (
    "description: x\nextends: base\nnetworks:\n  abuse: [{file: bl.txt}]\n"
    "  admins: [10.20.0.0/26]\ninbound:\n  - {service: ssh, from: admins}\n"
    "  - {from: abuse, action: deny}\n"
)


@pytest.mark.parametrize(
    "extra",
    [
        ("-t", "nftables"),
        ("-t", "nftables", "--sets-only"),
        ("-t", "iptables"),
        ("-t", "iptables", "--sets-only"),
    ],
    ids=" ".join,
)
def test_strict_render_refuses_a_blocklist_that_locks_the_admins_out(
    extra: tuple[str, ...], tmp_path: Path
) -> None:
    _files(tmp_path, {"p.yaml": LOCKOUT, "bl.txt": "10.0.0.0/8\n"})
    code, out, err = _run(
        tmp_path,
        lambda tmp: ["render", str(tmp / "p.yaml"), *extra, "--strict", "-o", str(tmp / "out")],
    )
    assert code == 2, (out, err)
    assert out == "" and not (tmp_path / "out").exists()
    assert err == (
        "error: p.yaml:7: FW021: ssh: every connection it admits is blocked first by the deny "
        "rule deny (p.yaml:8); remove one of them (--strict)\n"
    )


@pytest.mark.parametrize("extra", [(), ("--sets-only",)], ids=["rules", "sets-only"])
def test_without_strict_the_lockout_is_a_warning(extra: tuple[str, ...], tmp_path: Path) -> None:
    _files(tmp_path, {"p.yaml": LOCKOUT, "bl.txt": "10.0.0.0/8\n"})
    code, out, err = _run(
        tmp_path, lambda tmp: ["render", str(tmp / "p.yaml"), "-t", "nftables", *extra]
    )
    assert code == 0, err
    assert "10.0.0.0/8" in out
    assert err.startswith("warning: p.yaml:7: FW021: ssh: every connection"), err


def test_strict_build_refuses_the_lockout_and_writes_nothing(tmp_path: Path) -> None:
    manifest = "hosts:\n  h1:\n    profile: p.yaml\n    targets: {nftables: out/h1.nft}\n"
    _files(tmp_path, {"p.yaml": LOCKOUT, "bl.txt": "10.0.0.0/8\n", "fwgen.yaml": manifest})
    code, _out, err = _run(tmp_path, lambda tmp: ["build", str(tmp / "fwgen.yaml"), "--strict"])
    assert code == 2, err
    assert "FW021: ssh: every connection it admits is blocked first" in err
    assert not (tmp_path / "out").exists()
    code, _out, err = _run(tmp_path, lambda tmp: ["build", str(tmp / "fwgen.yaml")])
    assert code == 0 and "FW021" in err, err
    assert (tmp_path / "out" / "h1.nft").is_file()


@pytest.mark.parametrize(
    ("rules", "dead"),
    [
        # a deny on another interface leaves the allow its way in everywhere else
        (
            "  - {service: ssh, from: admins}\n  - {from: abuse, action: deny, interface: eth9}\n",
            False,
        ),
        # ...and on the allow's only interface it takes all of it (a glob too)
        (
            "  - {service: ssh, from: admins, interface: eth1}\n"
            "  - {from: abuse, action: deny, interface: 'eth*'}\n",
            True,
        ),
        # a deny on an empty interface group matches nothing
        (
            "  - {service: ssh, from: admins}\n  - {from: abuse, action: deny, interface: dmz}\n",
            False,
        ),
        # accepted, with a reason: the profile says so
        (
            "  - {service: ssh, from: admins, accept: {FW021: until the audit ends}}\n"
            "  - {from: abuse, action: deny}\n",
            False,
        ),
    ],
    ids=["other-interface", "same-interface", "empty-group", "accepted"],
)
def test_strict_refuses_only_a_deny_that_really_takes_every_connection(
    rules: str, dead: bool, tmp_path: Path
) -> None:
    text = LOCKOUT.split("inbound:")[0] + "interfaces:\n  dmz: []\ninbound:\n" + rules
    _files(tmp_path, {"p.yaml": text, "bl.txt": "10.0.0.0/8\n"})
    code, _out, err = _run(
        tmp_path, lambda tmp: ["render", str(tmp / "p.yaml"), "-t", "nftables", "--strict"]
    )
    assert (code, "FW021" in err) == ((2, True) if dead else (0, False)), err


def test_apply_refuses_a_blocklist_that_holds_the_admins_connection(
    no_firewall: Path, tmp_path: Path
) -> None:
    """Not every admin address is blocked (no FW021), but the one the admin is connected
    from is: the guard refuses to load, whatever --strict says."""
    _files(tmp_path, {"p.yaml": LOCKOUT, "bl.txt": "192.0.2.0/24\n10.20.0.5\n"})
    env = {"SSH_CONNECTION": "10.20.0.5 50000 10.20.0.1 22"}
    result = runner.invoke(app, ["apply", str(tmp_path / "p.yaml"), "-t", "nftables"], env=env)
    assert result.exit_code == 2, result.output
    assert (
        "the new rules would cut off a new connection from 10.20.0.5 to port 22/tcp "
        "(SSH_CONNECTION): the deny rule 'deny'" in result.stderr
    ), result.stderr
    assert result.stderr.endswith("error: nothing was loaded; --force loads anyway\n")
    assert not (no_firewall / "pending").exists()
    policy = resolve_profile(str(tmp_path / "p.yaml"))
    assert lockouts(policy, [from_ssh("10.20.0.6 50000 10.20.0.1 22")]) == []  # a neighbour


DEEP = '{"nftables":' + "[" * 100000 + "]" * 100000 + "}"


@pytest.mark.parametrize("command", ["hits", "shadow report"])
def test_a_deeply_nested_counters_file_is_one_line_and_exit_2(command: str, tmp_path: Path) -> None:
    _files(tmp_path, {"p.yaml": "description: x\nextends: base\n", "in.json": DEEP})
    code, _out, err = _run(
        tmp_path,
        lambda tmp: [
            *command.split(),
            str(tmp / "p.yaml"),
            "-t",
            "nftables",
            "--input",
            str(tmp / "in.json"),
        ],
    )
    assert code == 2, (code, err[-300:])
    assert err.startswith("error: ") and err.count("\n") == 1, err[-300:]


def test_a_set_or_counter_name_with_a_line_end_is_not_the_shadows() -> None:
    """`$` matches before a final newline: a name "in_full_v4\\n" would put a line of the
    kernel's (or an --input file's) choosing into the report's notes."""
    items = [
        {"table": {"family": "inet", "name": "fwgen_shadow", "handle": 7}},
        {"rule": {"table": "fwgen_shadow", "chain": "input", "comment": MARK, "expr": []}},
        {"counter": {"name": "in_full_v4\n", "packets": "x"}},
        {"set": {"name": "in_last_v4\n", "table": "fwgen_shadow", "elem": [1, 2]}},
    ]
    table = parse(json.dumps({"nftables": items}), 0.0)
    assert table is not None
    assert table.recorded.ignored == [] and table.recorded.sightings == []


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _huge(path: Path) -> None:
    with open(path, "wb") as file:  # sparse: nothing written, nothing to read
        file.truncate((256 << 20) + 1)


INPUTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "fifo": (_fifo, "path is a FIFO, not a file"),
    "symlink to a fifo": (
        lambda p: (_fifo(p.with_suffix(".fifo")), p.symlink_to(p.with_suffix(".fifo"))),
        "path is a FIFO, not a file",
    ),
    "symlink to /dev/zero": (lambda p: p.symlink_to("/dev/zero"), "a character device"),
    "symlink loop": (lambda p: p.symlink_to(p.name), "a symlink loop"),
    "directory": (lambda p: p.mkdir(), "path is a directory, not a file"),
    "NUL": (lambda p: p.write_bytes(b'{"nftables": []}\0'), "file is binary, not text"),
    "line separator": (
        lambda p: p.write_text('{"nftables": [\u2028]}', encoding="utf-8"),
        "U+2028 (LINE SEPARATOR) is not allowed",
    ),
    "over 256 MiB": (_huge, "file is larger than 256 MiB"),
    "not UTF-8": (lambda p: p.write_bytes(b'{"nftables": ["\xff"]}'), "is not UTF-8 text"),
}


@pytest.mark.parametrize("case", sorted(INPUTS))
@pytest.mark.parametrize(
    "command", ["hits -t nftables", "hits -t iptables", "shadow report -t nftables"]
)
def test_a_hostile_input_file_is_one_line_and_exit_2(
    command: str, case: str, tmp_path: Path
) -> None:
    make, expected = INPUTS[case]
    make(tmp_path / "in")
    name, *rest = command.split()
    start = time.perf_counter()
    code, out, err = _run(
        tmp_path,
        lambda tmp: [
            *([name, "report"] if name == "shadow" else [name]),
            "webserver",
            *rest[1 if name == "shadow" else 0 :],
            "--input",
            str(tmp / "in"),
        ],
    )
    assert time.perf_counter() - start < 10
    assert (code, out) == (2, ""), (code, out, err)
    assert err.startswith(f"error: {tmp_path / 'in'}") and err.count("\n") == 1, err
    assert expected in err, err


def _hits(target: str, *inputs: Path) -> list[str]:
    return ["hits", "webserver", "-t", target, *(f"--input={p}" for p in inputs)]


def test_hits_takes_one_nftables_input_and_each_iptables_family_once(tmp_path: Path) -> None:
    """A second nftables file was ignored without a word; the same iptables-save output
    given twice counted every connection twice."""
    rendered = rendered_rules(resolve_profile("webserver"), "iptables")
    saved = "\n".join(f"[2:120] {line}" for line in rendered["ipv4"].splitlines())
    _files(tmp_path, {"a.json": '{"nftables": []}', "v4": saved, "v4-again": saved})
    code, _, err = _run(
        tmp_path,
        lambda tmp: _hits("nftables", tmp / "a.json", tmp / "a.json"),
    )
    assert (code, err) == (
        2,
        "error: --input given 2 times: nftables takes one file (`nft -j list table inet fwgen`)\n",
    )
    code, out, err = _run(
        tmp_path,
        lambda tmp: ["hits", "webserver", "-t", "iptables", "--input", str(tmp / "v4")],
    )
    assert code == 0 and "http (profiles/webserver.yaml:11, inbound): 2 new connections" in out
    code, _, err = _run(
        tmp_path,
        lambda tmp: _hits("iptables", tmp / "v4", tmp / "v4-again"),
    )
    assert (code, err) == (
        2,
        "error: two of the outputs hold the ipv4 rules; give one of `iptables-save -c` and "
        "one of `ip6tables-save -c`\n",
    )


@pytest.mark.parametrize("comment", ["ssh: Secure Shell\u2028-A INPUT", "\u001b[2Jssh"])
def test_escaped_separators_in_the_kernels_json_reach_no_output(
    comment: str, tmp_path: Path
) -> None:
    """JSON escapes a separator or a terminal control as \\uXXXX, which the guarded reader
    lets through (it is ASCII); decoded, it must reach neither a label nor the report."""
    rule = {
        "rule": {
            "family": "inet",
            "table": "fwgen",
            "chain": "input",
            "comment": comment,
            "expr": [{"counter": {"packets": 1, "bytes": 60}}, {"accept": None}],
        }
    }
    table = {"table": {"family": "inet", "name": "fwgen"}}
    _files(tmp_path, {"in.json": json.dumps({"nftables": [table, rule]})})
    code, out, err = _run(
        tmp_path,
        lambda tmp: ["hits", "webserver", "-t", "nftables", "--input", str(tmp / "in.json")],
    )
    assert code == 0, err
    assert out.isascii() and "\u001b" not in out and out.count("\n") == len(out.splitlines())
    assert "not in the live ruleset" in out
