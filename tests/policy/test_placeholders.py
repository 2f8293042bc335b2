"""A rule whose only sources are documentation ranges (RFC 5737, RFC 3849), or an empty
network, admits no one: applied on a remote host as it is, such a ruleset locks the admin
out. `render` warns (naming the network and the --set that fixes it); `check` reports it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render

runner = CliRunner()

WEBSERVER_WARNING = (
    "warning: network 'admins' (profiles/webserver.yaml:8): ssh admits only its documentation "
    "addresses (198.51.100.0/24, 2001:db8:100::/48), placeholders that match no real host; "
    "give the real ones with --set admins=CIDR[,CIDR...] (in a manifest, `set:`)\n"
)


@pytest.mark.parametrize("target", ["nftables", "iptables", "ufw", "windows"])
def test_render_webserver_warns_about_the_placeholder_admins(target: str) -> None:
    result = runner.invoke(app, ["render", "webserver", "-t", target])
    assert result.exit_code == 0, result.output
    assert WEBSERVER_WARNING in result.stderr
    assert "placeholder" not in result.stdout  # a warning on stderr, the output unchanged


def test_real_admins_silence_it_and_strict_does_not_count_it() -> None:
    real = runner.invoke(
        app, ["render", "webserver", "-t", "nftables", "--set", "admins=10.1.0.0/16"]
    )
    assert real.exit_code == 0 and real.stderr == ""
    strict = runner.invoke(app, ["render", "webserver", "-t", "nftables", "--strict"])
    assert strict.exit_code == 0 and WEBSERVER_WARNING in strict.stderr


def test_check_reports_it_as_a_warning() -> None:
    result = runner.invoke(app, ["check", "webserver"])
    assert result.exit_code == 0
    assert (
        "profiles/webserver.yaml:14: warning FW012 [ssh]: ssh admits only documentation "
        "addresses (198.51.100.0/24, 2001:db8:100::/48, from network 'admins'), placeholders "
        "that match no real host; set the real ones (--set admins=CIDR[,CIDR...]) before "
        "applying this ruleset\n"
    ) in result.stdout
    assert runner.invoke(app, ["check", "webserver", "--strict"]).exit_code == 1
    real = runner.invoke(app, ["check", "webserver", "--strict", "--set", "admins=10.1.0.0/16"])
    assert real.exit_code == 0 and "FW012" not in real.stdout
    sarif = json.loads(runner.invoke(app, ["check", "webserver", "--format", "sarif"]).stdout)
    rules = {r["id"] for r in sarif["runs"][0]["tool"]["driver"]["rules"]}
    assert "FW012" in rules


@pytest.mark.parametrize(
    ("sources", "warned"),
    [
        ("[192.0.2.0/24]", True),
        ("[198.51.100.7, 203.0.113.0/25]", True),
        ('["2001:db8:1::/48"]', True),
        ('[192.0.2.0/24, "2001:db8::/32"]', True),
        ("[192.0.2.0/24, 10.0.0.0/8]", False),  # one real network: the rule admits someone
        ('[198.18.0.0/15, "2001:db8::/32"]', False),  # benchmark range: real addresses
        ("[192.0.3.0/24]", False),
        ("any", False),
    ],
)
def test_only_documentation_sources_warn(
    write_profile: Callable[..., Path], sources: str, warned: bool
) -> None:
    path = write_profile(
        f"description: x\nnetworks:\n  ops: {sources}\ninbound:\n  - {{service: ssh, from: ops}}\n"
        if sources != "any"
        else "description: x\ninbound:\n  - {service: ssh}\n"
    )
    rendered = runner.invoke(app, ["render", str(path), "-t", "nftables"])
    assert rendered.exit_code == 0
    assert ("documentation addresses" in rendered.stderr) == warned, rendered.stderr
    checked = runner.invoke(app, ["check", str(path)])
    assert ("FW012" in checked.stdout) == warned, checked.stdout


def test_an_empty_network_warns_in_render(write_profile: Callable[..., Path]) -> None:
    path = write_profile(
        "description: x\nnetworks:\n  lan: []\ninbound:\n  - {service: ssh}\n"
        "  - {service: mysql, from: lan}\nextends: base\n"
    )
    result = runner.invoke(app, ["render", str(path), "-t", "nftables"])
    assert result.exit_code == 0
    assert result.stderr == (
        "warning: network 'lan' (host.yaml:3) is empty, so mysql matches nothing; give its "
        "addresses with --set lan=CIDR[,CIDR...] (in a manifest, `set:`)\n"
    )
    assert "FW008" in runner.invoke(app, ["check", str(path)]).stdout  # check's own code


def test_addresses_written_in_the_rule_are_fixed_in_the_profile(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile(
        "description: x\ninbound:\n  - {service: ssh, from: [192.0.2.0/24, 203.0.113.9]}\n"
        "extends: base\n"
    )
    result = runner.invoke(app, ["render", str(path), "-t", "nftables"])
    assert result.stderr == (
        "warning: ssh (host.yaml:3) admits only documentation addresses (192.0.2.0/24, "
        "203.0.113.9), placeholders that match no real host; write the real ones in the "
        "profile\n"
    )


def test_the_library_render_is_unchanged() -> None:
    files = render(resolve_profile("webserver"), "nftables")
    assert "198.51.100.0/24" in files["fwgen.nft"] and "placeholder" not in files["fwgen.nft"]


def test_a_rule_of_one_family_names_only_the_addresses_it_uses(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile(
        'description: x\nnetworks:\n  ops: [192.0.2.0/24, "2001:470::/32"]\n'
        "inbound:\n  - {service: ssh, from: ops}\n  - {icmp: [echo-request], from: ops}\n"
        "extends: base\n"
    )
    result = runner.invoke(app, ["render", str(path), "-t", "nftables"])
    assert result.stderr == (
        "warning: network 'ops' (host.yaml:3): icmp admits only its documentation addresses "
        "(192.0.2.0/24), placeholders that match no real host; give the real ones with "
        "--set ops=CIDR[,CIDR...] (in a manifest, `set:`)\n"
    )


# -------------------------------------------------------------- --strict refuses a lock-out

EMPTY_ADMINS = (
    "error: network 'admins' (--set admins) is empty, so ssh matches nothing; give its "
    "addresses with --set admins=CIDR[,CIDR...] (in a manifest, `set:`) (--strict)\n"
)


@pytest.mark.parametrize("target", ["nftables", "iptables", "ufw", "windows"])
def test_render_strict_refuses_an_empty_network_in_one_line(target: str) -> None:
    # what `--set admins=$ADMINS` gives when $ADMINS is unset
    result = runner.invoke(
        app, ["render", "webserver", "-t", target, "--strict", "--set", "admins="]
    )
    assert result.exit_code == 2, result.output
    assert result.stderr == EMPTY_ADMINS and result.stdout == ""
    # without --strict: a warning, and the ruleset
    loose = runner.invoke(app, ["render", "webserver", "-t", target, "--set", "admins="])
    assert loose.exit_code == 0 and loose.stdout
    assert EMPTY_ADMINS.replace("error: ", "warning: ").replace(" (--strict)", "") in loose.stderr


CUT_OFF = {
    "no base": ("description: x\ninbound: [{service: ssh}]\n", ["FW016"]),
    "no replies": (
        "description: x\nextends: base\noptions: {established: false, loopback: false}\n",
        ["FW017", "FW018"],
    ),
}


@pytest.mark.parametrize("case", sorted(CUT_OFF))
def test_render_strict_refuses_what_cuts_the_host_off(
    write_profile: Callable[..., Path], case: str
) -> None:
    text, codes = CUT_OFF[case]
    path = write_profile(text)
    result = runner.invoke(app, ["render", str(path), "-t", "nftables", "--strict"])
    assert result.exit_code == 2, result.output
    errors = result.stderr.splitlines()
    assert [e.split(": ")[2] for e in errors] == codes, result.stderr
    assert all(e.startswith("error: host.yaml:1: FW0") and e.endswith("(--strict)") for e in errors)
    loose = runner.invoke(app, ["render", str(path), "-t", "nftables"])
    assert loose.exit_code == 0 and all(
        f"warning: host.yaml:1: {c}: " in loose.stderr for c in codes
    )


def test_build_strict_refuses_an_empty_network_and_writes_nothing(tmp_path: Path) -> None:
    manifest = tmp_path / "fwgen.yaml"
    manifest.write_text(
        "hosts:\n  web1:\n    profile: webserver\n    set:\n      admins: []\n"
        "    targets:\n      nftables: out/web1.nft\n"
    )
    result = runner.invoke(app, ["build", str(manifest), "--strict"])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "error: web1: network 'admins' (fwgen.yaml:5) is empty, so ssh matches nothing; give "
        "its addresses with --set admins=CIDR[,CIDR...] (in a manifest, `set:`) (--strict)\n"
        "error: --strict: nothing written\n"
    )
    assert not (tmp_path / "out").exists()
    (tmp_path / "base.yaml").write_text("description: x\ninbound: [{service: ssh}]\n")
    manifest.write_text(
        "hosts:\n  web1:\n    profile: base.yaml\n    targets:\n      nftables: out/web1.nft\n"
    )
    result = runner.invoke(app, ["build", str(manifest), "--strict"])
    assert result.exit_code == 2 and "error: web1: base.yaml:1: FW016: " in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["webserver", "--set", "admins="], "error: network 'admins' (--set admins) is empty"),
        (["{nobase}"], "error: host.yaml:1: FW016: IPv6 neighbour discovery is dropped"),
    ],
)
def test_apply_strict_refuses_before_touching_anything(
    write_profile: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    complaint: str,
) -> None:
    from fwgen.host import apply as applying

    def never(*_: object) -> int:
        raise AssertionError("apply went on to load the rules")

    monkeypatch.setattr(applying, "apply", never)
    nobase = str(write_profile(CUT_OFF["no base"][0]))
    argv = [a.format(nobase=nobase) for a in args]
    result = runner.invoke(app, ["apply", *argv, "-t", "nftables", "--strict", "--yes"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(complaint), result.stderr
