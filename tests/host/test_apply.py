"""`fwgen apply` without a kernel: the guard, the refusals, and the confirm/rollback logic
over a fake firewall. Nothing here may reach a real firewall command: `no_firewall`
makes every one of them fail the test (the kernel proof is tests/kernel/test_apply.py)."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.errors import FwgenError
from fwgen.host import apply as applying
from fwgen.host.guard import admitting_rule, connections, from_keep, from_ssh, lockouts
from fwgen.host.state import Refused, update_meta
from fwgen.policy.resolve import resolve_profile
from tests.applyfakes import Fake, request, steps

runner_cli = CliRunner()
ADMINS = {"admins": ["192.0.2.0/24", "2001:db8:5::/48"]}
pytestmark = pytest.mark.usefixtures("no_firewall")


# the guard ---------------------------------------------------------------------------


def test_ssh_connection_and_keep_are_parsed() -> None:
    ssh = from_ssh("192.0.2.7 51234 192.0.2.1 2222")
    assert (str(ssh.client), ssh.port, str(ssh.server)) == ("192.0.2.7", 2222, "192.0.2.1")
    assert str(from_ssh("::ffff:192.0.2.7 1 ::ffff:192.0.2.1 22").client) == "192.0.2.7"
    assert str(from_ssh("fe80::1%eth0 1 fe80::2%eth0 22").client) == "fe80::1"
    assert (str(from_keep("192.0.2.9").client), from_keep("192.0.2.9").port) == ("192.0.2.9", 22)
    assert from_keep("192.0.2.9:2200").port == 2200
    assert from_keep("[2001:db8::9]:443").port == 443
    assert from_keep("2001:db8::9").client == ipaddress.ip_address("2001:db8::9")


@pytest.mark.parametrize(
    "bad", ["not-an-address", "192.0.2.1:0", "192.0.2.1:99999", "[2001:db8::1]x", "1.2.3.4:ssh"]
)
def test_bad_keep_is_a_user_error(bad: str) -> None:
    with pytest.raises(FwgenError, match="--keep"):
        from_keep(bad)


def test_bad_ssh_connection_is_a_user_error() -> None:
    with pytest.raises(FwgenError, match="SSH_CONNECTION"):
        from_ssh("192.0.2.7 51234")


def test_guard_admits_by_port_source_and_family() -> None:
    policy = resolve_profile("webserver", ADMINS)
    inside = from_ssh("192.0.2.7 1 192.0.2.1 22")
    rule = admitting_rule(policy, inside)
    assert rule is not None and rule.name == "ssh"
    assert admitting_rule(policy, from_ssh("2001:db8:5::7 1 2001:db8::1 22")) is not None
    assert admitting_rule(policy, from_ssh("198.51.100.7 1 192.0.2.1 22")) is None
    # the port matters: https is open to all, a port nothing opens is not
    assert admitting_rule(policy, from_keep("198.51.100.7:443")) is not None
    assert admitting_rule(policy, from_keep("192.0.2.7:2222")) is None
    # an IPv4-only admins network does not admit an IPv6 client
    v4only = resolve_profile("webserver", {"admins": ["192.0.2.0/24"]})
    assert admitting_rule(v4only, from_ssh("2001:db8:5::7 1 2001:db8::1 22")) is None


def test_guard_message_names_the_rule_and_the_fix() -> None:
    policy = resolve_profile("webserver", ADMINS)
    found = connections({"SSH_CONNECTION": "198.51.100.7 1 192.0.2.1 22"}, ["203.0.113.5:2222"])
    messages = lockouts(policy, found)
    assert messages == [
        "the new rules would cut off a new connection from 198.51.100.7 to port 22/tcp "
        "(SSH_CONNECTION); needed: 198.51.100.7 in network 'admins', which rule 'ssh' "
        "(profiles/webserver.yaml:14) admits to port 22/tcp (e.g. --set admins=...,198.51.100.7)",
        "the new rules would cut off a new connection from 203.0.113.5 to port 2222/tcp "
        "(--keep 203.0.113.5:2222); needed: an inbound rule for 2222/tcp from 203.0.113.5",
    ]


def test_guard_message_for_an_address_written_in_the_rule(tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("description: x\ninbound:\n  - service: ssh\n    from: 192.0.2.0/24\n")
    found = lockouts(resolve_profile(str(profile)), [from_keep("198.51.100.7")])
    assert found == [
        "the new rules would cut off a new connection from 198.51.100.7 to port 22/tcp "
        f"(--keep 198.51.100.7); needed: 198.51.100.7 in the `from:` of rule 'ssh' ({profile.name}:3)"
    ]


NO_SHORTCUT = """description: x
options: {{established: false}}
inbound:
  - service: ssh
    from: 192.0.2.0/24
{limit}outbound: {outbound}
"""


@pytest.mark.parametrize(
    ("limit", "outbound", "message"),
    [
        ("    limit: 5/minute\n", "accept", "rule 'ssh' (p.yaml:4) has a limit, which admits new"),
        ("", "[{service: dns}]", "its replies (from port 22/tcp) are not let out"),
        # replies out, but only to other clients or other ports: still cut off
        ("", "[{port: 443/tcp, name: web, to: 192.0.2.0/24}]", "are not let out"),
        ("", "[{port: 1024-65535/tcp, name: r, to: 198.51.100.0/24}]", "are not let out"),
        ("", "accept", ""),
        ("", "[{port: 1024-65535/tcp, name: r, to: 192.0.2.0/24}]", ""),
        ("", "[{port: 50000/tcp, name: r}]", ""),  # the client's own port (SSH_CONNECTION)
    ],
)
def test_without_established_the_guard_needs_every_packet_admitted(
    tmp_path: Path, limit: str, outbound: str, message: str
) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(NO_SHORTCUT.format(limit=limit, outbound=outbound))
    policy = resolve_profile(str(profile))
    found = lockouts(policy, [from_ssh("192.0.2.7 50000 192.0.2.1 22")])
    assert [message in m for m in found] == ([True] if message else [])
    if not message:  # a --keep connection's client port is unknown: any ephemeral port
        kept = lockouts(policy, [from_keep("192.0.2.7")])
        assert (kept == []) == ("50000" not in outbound)


# the command's refusals (exit 2, nothing touched) ------------------------------------


def apply_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner_cli.invoke(app, ["apply", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_windows_prints_the_script_and_the_command_to_run_it() -> None:
    code, out, err = apply_cli("webserver", "--target", "windows", "--set", "admins=10.1.0.0/16")
    assert code == 2
    assert "New-NetFirewallRule" in out
    assert "powershell -NoProfile -ExecutionPolicy Bypass -File .\\fwgen.ps1" in err


def test_refuses_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code, _, err = apply_cli("webserver", "-t", "nftables", "--set", "admins=10.1.0.0/16")
    assert (code, err) == (2, "error: fwgen apply loads rules into the kernel: run it as root\n")


def test_refuses_a_lockout_and_touches_nothing(no_firewall: Path) -> None:
    env = {"SSH_CONNECTION": "198.51.100.7 50000 192.0.2.1 22"}
    code, _, err = apply_cli("webserver", "-t", "iptables", "--set", "admins=10.1.0.0/16", env=env)
    assert code == 2
    assert "would cut off a new connection from 198.51.100.7 to port 22/tcp" in err
    assert err.endswith("error: nothing was loaded; --force loads anyway\n")
    assert not (no_firewall / "pending").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "nftables"], "give a PROFILE and --target"),
        (["webserver"], "give a PROFILE and --target"),
        (["webserver", "-t", "nftables", "--confirm", "0"], "--confirm 0.0: give a number"),
        (["webserver", "-t", "nftables", "--keep", "nowhere"], "--keep nowhere:"),
        (["--confirm-pending"], "no apply is pending"),
        (["--rollback-pending"], "no apply is pending"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    code, _, err = apply_cli(*args)
    assert code == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err


# confirm and roll back, over a fake firewall -----------------------------------------


@pytest.mark.parametrize(
    ("answers", "code", "done"),
    [
        (["yes\n"], 0, ["validate", "save", "load"]),
        ([None, None, "yes\n"], 0, ["validate", "save", "load"]),
        (["no\n"], 1, ["validate", "save", "load", "restore"]),
        (["", None], 1, ["validate", "save", "load", "restore"]),  # end of input, then the deadline
    ],
)
def test_answers(
    fake: type[Fake], no_firewall: Path, answers: list[str | None], code: int, done: list[str]
) -> None:
    said: list[str] = []
    given = iter(answers)
    confirm = 0.5 if answers[0] == "" else 5.0
    assert applying.apply(request(confirm), said.append, lambda _: next(given, None)) == code
    assert steps(no_firewall) == done
    assert not (no_firewall / "pending").exists()
    outcome = json.loads((no_firewall / "last/meta.json").read_text())["outcome"]
    assert outcome == ("confirmed" if code == 0 else "rolled back")


def test_yes_over_ssh_waits_for_a_new_connection_from_the_admin(
    fake: type[Fake], no_firewall: Path
) -> None:
    said: list[str] = []
    given = iter(["yes\n"])
    over_ssh = applying.Request(
        target="fake",
        files={"f": "x\n"},
        profile="p",
        confirm=1.0,
        connections=(from_ssh("192.0.2.7 50000 192.0.2.1 22"),),
    )
    assert applying.apply(over_ssh, said.append, lambda _: next(given, None)) == 1
    assert (
        "no new connection from 192.0.2.7 since the load: open one, then answer 'yes' again" in said
    )
    assert steps(no_firewall) == ["validate", "save", "load", "restore"]


def test_yes_keeps_without_asking_and_a_failed_load_restores(
    fake: type[Fake], no_firewall: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(_: float) -> str:
        raise AssertionError("asked")

    assert applying.apply(request(None), print, never) == 0
    assert steps(no_firewall) == ["validate", "save", "load"]
    monkeypatch.setattr(Fake, "fail_load", True)
    assert applying.apply(request(None), print, never) == 1
    assert steps(no_firewall)[3:] == ["validate", "save", "load", "restore"]


def test_one_pending_apply_at_a_time_and_a_late_confirmation_is_refused(
    fake: type[Fake], no_firewall: Path
) -> None:
    def second(_: float) -> str | None:
        with pytest.raises(Refused, match="another apply is pending"):
            applying.apply(request(), print, second)
        # the watcher's view: not due yet, so nothing is done
        token = applying.pending_token(no_firewall)
        assert token is not None
        assert applying.finish(no_firewall, token, applying.ROLLBACK, when_due=True) == ""
        assert applying.watch(no_firewall, "someone else") == "finished elsewhere"
        assert applying.settle_pending(applying.CONFIRMED, print) == 0
        return None

    assert applying.apply(request(), print, second) == 0
    assert steps(no_firewall) == ["validate", "save", "load"]


def test_the_watcher_rolls_back_at_the_deadline(fake: type[Fake], no_firewall: Path) -> None:
    def watcher(_: float) -> str | None:
        token = applying.pending_token(no_firewall)
        assert token is not None
        update_meta(no_firewall / "pending", deadline=0)
        assert applying.watch(no_firewall, token) == "rolled back"
        return None

    assert applying.apply(request(), print, watcher) == 1
    assert steps(no_firewall) == ["validate", "save", "load", "restore"]


def test_refuses_iptables_coexist_mode_which_it_would_flatten() -> None:
    code, out, err = apply_cli(
        "docker-host", "-t", "iptables", "--set", "admins=10.1.0.0/16",
        "--set", "web_clients=10.2.0.0/16", "--yes",
    )  # fmt: skip
    assert code == 2 and out == ""
    assert err == (
        "error: fwgen apply cannot load iptables in coexist mode (containers: or coexist:) yet: "
        "it would replace the chains of Docker and others; render with -o DIR and run "
        "DIR/fwgen-iptables.sh, or use --target nftables\n"
    )
