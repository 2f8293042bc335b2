"""The command line as a user meets it: -o makes its folders and `-o -` is stdout, repeated
--set merges, messages that say what is wrong, --format json on every command that
prints, and --help that reads like the README."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app
from tests.conftest import INTERFACES_TO_SET, NETWORKS_TO_SET

runner = CliRunner()
REAL_ADMINS = ["--set", "admins=10.1.0.0/16"]
SS = "tests/data/audit/ss-tulpnH.txt"


# -------------------------------------------------------------- -o


def test_render_o_makes_missing_folders(tmp_path: Path) -> None:
    deep = tmp_path / "etc" / "nftables.d" / "fwgen.nft"
    result = runner.invoke(
        app, ["render", "webserver", "-t", "nftables", *REAL_ADMINS, "-o", str(deep)]
    )
    assert result.exit_code == 0, result.output
    assert deep.read_text().startswith("#!/usr/sbin/nft -f")
    folder = tmp_path / "a" / "b" / "web1"
    result = runner.invoke(
        app, ["render", "webserver", "-t", "iptables", *REAL_ADMINS, "-o", str(folder)]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["ipsets", "rules.v4", "rules.v6"]


def test_discover_o_makes_missing_folders(tmp_path: Path) -> None:
    draft = tmp_path / "drafts" / "web1" / "draft.yaml"
    result = runner.invoke(app, ["discover", "--listening", SS, "-o", str(draft)])
    assert result.exit_code == 0, result.output
    assert draft.read_text().startswith("# Drafted by `fwgen discover`")


def test_a_file_on_the_way_is_one_line_and_nothing_is_made(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x\n")
    out = tmp_path / "file" / "sub" / "x.nft"
    result = runner.invoke(
        app, ["render", "webserver", "-t", "nftables", *REAL_ADMINS, "-o", str(out)]
    )
    assert result.exit_code == 2
    assert result.stderr == f"error: {out}: cannot write output: a folder on the way is a file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize("target", ["nftables", "iptables"])
def test_o_dash_is_standard_output(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["render", "webserver", "-t", target, *REAL_ADMINS]
    to_dash = runner.invoke(app, [*args, "-o", "-"])
    assert to_dash.exit_code == 0, to_dash.output
    assert to_dash.stdout == runner.invoke(app, args).stdout
    assert list(tmp_path.iterdir()) == []  # no file named '-'
    checked = runner.invoke(app, [*args, "-o", "-", "--check"])
    assert checked.exit_code == 2
    assert checked.stderr == "error: --check compares with files; -o - is standard output\n"


def test_discover_o_dash_is_standard_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ss = str(Path(SS).resolve())
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["discover", "--listening", ss, "-o", "-"])
    assert result.exit_code == 0
    assert result.stdout == runner.invoke(app, ["discover", "--listening", ss]).stdout
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------- --set


def test_repeated_set_for_one_network_merges() -> None:
    result = runner.invoke(
        app,
        [
            "render",
            "webserver",
            "-t",
            "nftables",
            "--set",
            "admins=10.1.0.0/16",
            "--set",
            "admins=10.9.0.0/16,2001:db8:5::/48",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "elements = { 10.1.0.0/16, 10.9.0.0/16 }" in result.stdout
    assert "elements = { 2001:db8:5::/48 }" in result.stdout
    assert "198.51.100.0/24" not in result.stdout  # the profile's own addresses are replaced


# -------------------------------------------------------------- messages


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            "inbound:\n  - {service: ssh, to: [10.0.0.0/8]}\n",
            "inbound[0].to: unknown key 'to': `to` belongs to outbound rules; inbound rules take `from`",
        ),
        (
            "outbound:\n  - {service: ssh, from: [10.0.0.0/8]}\n",
            "outbound[0].from: unknown key 'from': `from` belongs to inbound rules; outbound rules take `to`",
        ),
        (
            "inbound:\n  - {service: ssh, ping: true}\n",
            "inbound[0].ping: unknown key 'ping': `ping` belongs under `options:`",
        ),
        (
            "options:\n  inbound: []\n",
            "options.inbound: unknown key 'inbound': `inbound` belongs at the top of a profile",
        ),
        (
            "inbound:\n  - {service: ssh, limit: {rate: 3, unit: minute, from: x}}\n",
            "inbound[0].limit.from: unknown key 'from'",  # never "(did you mean 'from'?)"
        ),
        (
            "inbound:\n  - {service: ssh, frm: [10.0.0.0/8]}\n",
            "inbound[0].frm: unknown key 'frm' (did you mean 'from'?)",
        ),
    ],
)
def test_a_key_in_the_wrong_place_says_where_it_belongs(
    write_profile: Callable[..., Path], rule: str, message: str
) -> None:
    path = write_profile("description: x\n" + rule)
    result = runner.invoke(app, ["render", str(path), "-t", "nftables"])
    assert result.exit_code == 2
    assert result.stderr == f"error: host.yaml:3: {message}\n"


def test_audit_says_give_only_one_of_when_both_are_given() -> None:
    both = runner.invoke(
        app,
        ["audit", "webserver", "--scan", "tests/data/audit/nmap-open.xml", "--listening", SS],
    )
    assert both.exit_code == 2
    assert both.stderr == "error: give only one of --scan FILE or --listening FILE\n"
    neither = runner.invoke(app, ["audit", "webserver"])
    assert neither.exit_code == 2
    assert neither.stderr == "error: give one of --scan FILE or --listening FILE\n"


# -------------------------------------------------------------- --format json


def test_profiles_json() -> None:
    result = runner.invoke(app, ["profiles", "--format", "json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [p["name"] for p in data] == list(NETWORKS_TO_SET)  # hand-written, in order
    web = data[-2]
    assert web == {
        "name": "webserver",
        "description": "Public web server (HTTP/HTTPS) with SSH for administrators",
        "file": "profiles/webserver.yaml",
        "extends": ["base"],
        "networks_to_set": ["admins"],
        "interfaces_to_set": [],
    }
    assert {p["name"]: p["networks_to_set"] for p in data} == NETWORKS_TO_SET
    assert {p["name"]: p["interfaces_to_set"] for p in data if p["interfaces_to_set"]} == (
        INTERFACES_TO_SET
    )
    assert all(p["extends"] == ["base"] for p in data if p["name"] != "base")
    assert all(p["description"] for p in data)


def test_profiles_json_lists_empty_networks_as_to_set(tmp_path: Path) -> None:
    """An empty network is as much a placeholder as documentation addresses."""
    from fwgen.policy.placeholders import placeholder_networks
    from fwgen.policy.resolve import resolve_profile

    path = tmp_path / "host.yaml"
    path.write_text(
        "description: x\nextends: base\nnetworks: {lan: [], office: [10.1.0.0/16]}\n"
        "inbound: [{service: ssh, from: lan}, {service: https, from: office}]\n"
    )
    assert placeholder_networks(resolve_profile(str(path))) == ["lan"]


def test_targets_json() -> None:
    result = runner.invoke(app, ["targets", "--format", "json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [t["name"] for t in data] == ["nftables", "iptables", "ufw", "windows", "firewalld"]
    iptables = data[1]
    assert {"rules.v4", "rules.v6"} <= set(iptables["files"])
    assert set(iptables) == {"name", "title", "files", "capabilities"}
    assert "rate limits" in iptables["capabilities"]


def test_build_json(tmp_path: Path) -> None:
    (tmp_path / "fwgen.yaml").write_text(
        "hosts:\n  web1:\n    profile: webserver\n"
        "    targets: {nftables: out/web1.nft, iptables: out/web1/}\n"
    )
    manifest = str(tmp_path / "fwgen.yaml")
    first = runner.invoke(app, ["build", manifest, "--format", "json"])
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert {(f["target"], Path(f["path"]).name, f["status"]) for f in data["files"]} == {
        ("nftables", "web1.nft", "written"),
        ("iptables", "ipsets", "written"),  # the rate limits' trackers
        ("iptables", "rules.v4", "written"),
        ("iptables", "rules.v6", "written"),
    }
    assert {f["host"] for f in data["files"]} == {"web1"}
    assert data["warnings"][0]["host"] == "web1" and data["warnings"][0]["target"] is None
    assert "documentation addresses" in data["warnings"][0]["message"]
    (tmp_path / "out" / "web1.nft").write_text("old\n")
    check = runner.invoke(app, ["build", manifest, "--check", "--format", "json"])
    assert check.exit_code == 1
    statuses = {Path(f["path"]).name: f["status"] for f in json.loads(check.stdout)["files"]}
    assert statuses == {
        "web1.nft": "stale",
        "ipsets": "current",
        "rules.v4": "current",
        "rules.v6": "current",
    }


def test_discover_json() -> None:
    result = runner.invoke(app, ["discover", "--listening", SS, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"listeners", "profile"}
    assert any(x["proto"] == "tcp" and x["port"] == 80 for x in data["listeners"])
    assert data["profile"]["extends"] == "base"
    assert {"port": "443/tcp", "name": "python-443-tcp"} in data["profile"]["inbound"]
    text = runner.invoke(app, ["discover", "--listening", SS]).stdout
    assert "  - port: 443/tcp\n    name: python-443-tcp  #" in text  # the same draft as YAML


# -------------------------------------------------------------- --help

COMMANDS = [
    "render",
    "check",
    "explain",
    "diff",
    "query",
    "build",
    "audit",
    "discover",
    "ports",
    "profiles",
    "schema",
    "targets",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_readable_metavars(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = result.stdout
    assert not re.search(r"<[a-z]+(\[[a-z]+\])?>|\{[a-z_]+\}", text), text
    assert re.search(r"Example: .*fwgen ", text), text


def test_render_help_names_its_arguments_like_the_readme() -> None:
    text = runner.invoke(app, ["render", "--help"], terminal_width=200, prog_name="fwgen").stdout
    assert "Usage: fwgen render [OPTIONS] PROFILE" in text
    assert "-t, --target TARGET" in text
    assert "-o, --output FILE" in text
    assert "--set NAME=CIDR[,CIDR...]" in text
    assert "--ports FILE" in text
    assert "--family ipv4|ipv6" in text


def test_render_o_a_new_file_name_for_several_files_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "rules.v4"
    for check in ([], ["--check"]):
        result = runner.invoke(
            app, ["render", "webserver", "-t", "iptables", *REAL_ADMINS, "-o", str(out), *check]
        )
        assert result.exit_code == 2
        assert result.stderr == (
            f"error: {out}: -o names a file, but this target writes 3 files (ipsets, rules.v4, rules.v6) "
            "into a folder: give a folder (a new one is named without a dot), or --family to "
            "write one family's file\n"
        )
        assert list(tmp_path.iterdir()) == []
    # one family's file is a file; an existing folder may have a dot in its name
    args = ["render", "webserver", "-t", "iptables", *REAL_ADMINS, "-o", str(out)]
    assert runner.invoke(app, [*args, "--family", "ipv4"]).exit_code == 0
    assert "*filter" in out.read_text()
    (tmp_path / "web1.example").mkdir()
    args[-1] = str(tmp_path / "web1.example")
    assert runner.invoke(app, args).exit_code == 0
    assert sorted(p.name for p in (tmp_path / "web1.example").iterdir()) == [
        "ipsets",
        "rules.v4",
        "rules.v6",
    ]


def test_render_help_lists_every_target_and_its_example_renders_without_warning() -> None:
    from fwgen.targets import TARGETS

    help_text = " ".join(runner.invoke(app, ["render", "--help"]).stdout.split())
    assert all(f"{name}," in help_text or f"{name} (see" in help_text for name in TARGETS)
    example = re.search(r"Example: fwgen (render [^\n]*?)(?= Arguments:)", help_text)
    assert example is not None
    result = runner.invoke(app, example[1].split())
    assert result.exit_code == 0 and result.stderr == ""


def test_the_apply_example_uses_no_documentation_range() -> None:
    help_text = runner.invoke(app, ["apply", "--help"]).stdout
    assert "--set admins=" in help_text and "192.0.2." not in help_text


def test_debug_after_the_command_shows_the_traceback() -> None:
    result = runner.invoke(app, ["render", "no-such-profile", "-t", "nftables", "--debug"])
    assert result.exit_code != 2 and "No such option" not in result.output
    assert "unknown profile" in str(result.exception)
    # without it, the same mistake is one line
    result = runner.invoke(app, ["render", "no-such-profile", "-t", "nftables"])
    assert result.exit_code == 2 and result.stderr.startswith("error: unknown profile")
    # after `--`, it is an argument like any other
    result = runner.invoke(app, ["render", "-t", "nftables", "--", "--debug"])
    assert result.exit_code == 2 and "unknown profile '--debug'" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["render", "webserver", "-t", "nftables", "-t", "iptables"],
        ["render", "webserver", "--target=nftables", "-tiptables"],
        ["check", "webserver", "--format", "json", "--format", "text"],
    ],
)
def test_an_option_given_twice_is_refused_in_one_line(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "given 2 times; give it once" in result.stderr
