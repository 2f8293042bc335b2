"""The hostile corpus for interfaces and protocols: an interface name reaches every
ruleset (nft strings, iptables arguments, ufw's command line, PowerShell), so a name a
pull request or a --set controls is refused with one located line and exit 2 unless it
is a plain name every target writes as it is."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.targets import TARGETS
from tests.test_hostile import Setup, profile, with_args

runner = CliRunner()
ON = "description: x\nextends: base\ninterfaces:\n  private: []\ninbound:\n  - {service: ssh, interface: %s}\n"


def on(value: str) -> Setup:
    """A profile whose ssh rule is on *value* (YAML text)."""
    return profile(ON % value)


REFUSED: dict[str, tuple[Setup, str]] = {
    "a space": (on('"eth 1"'), "p.yaml:6: inbound[0].interface: invalid interface 'eth 1'"),
    "a double quote": (on("'eth1\" accept'"), "invalid interface 'eth1\" accept'"),
    "a single quote": (on('"eth1\' accept"'), "invalid interface"),
    "a shell substitution": (on('"$(reboot)"'), "invalid interface '$(reboot)'"),
    "a backtick": (on('"`id`"'), "invalid interface"),
    "a semicolon": (on('"eth1;reboot"'), "invalid interface 'eth1;reboot'"),
    "an iptables option": (on('"-j ACCEPT"'), "invalid interface '-j ACCEPT'"),
    "a leading dash": (on('"-eth1"'), "invalid interface '-eth1'"),
    "a newline": (on('"eth1\\n"'), "invalid interface 'eth1\\n'"),
    "a tab": (on('"eth1\\t"'), "invalid interface 'eth1\\t'"),
    "16 characters": (on("abcdefghijklmnop"), "invalid interface 'abcdefghijklmnop'"),
    "a long glob": (on('"abcdefghijklmno*"'), "invalid interface 'abcdefghijklmno*'"),
    "a Unicode letter": (on('"éth0"'), "invalid interface 'éth0'"),
    "a no-break space": (on('"eth\u00a00"'), "U+00A0 (NO-BREAK SPACE) is not allowed"),
    "a zero-width space": (on('"eth\u200b0"'), "U+200B (ZERO WIDTH SPACE) is not allowed"),
    "a line separator": (on('"eth\u20280"'), "U+2028 (LINE SEPARATOR) is not allowed"),
    "an escaped no-break space": (on('"eth\\u00a00"'), "invalid interface"),
    "an escaped zero-width space": (on('"eth\\u200b0"'), "invalid interface"),
    "an escaped line separator": (on('"eth\\u20280"'), "invalid interface"),
    "a fullwidth digit": (on('"eth\uff10"'), "invalid interface"),
    "a glob inside": (on('"et*h"'), "invalid interface 'et*h'"),
    "a glob of everything": (on('"*"'), "invalid interface '*'"),
    "iptables' glob of everything": (on('"+"'), "invalid interface '+'"),
    "a slash": (on('"eth0/1"'), "invalid interface 'eth0/1'"),
    "an alias": (on('"eth0:1"'), "invalid interface 'eth0:1'"),
    "a number": (on("5"), "invalid interface 5"),
    "a mapping": (on("{name: eth0}"), "invalid interface"),
    "an empty list": (on("[]"), "an empty list matches nothing"),
    "a bad name in a group": (
        profile("description: x\ninterfaces:\n  private: ['eth0 eth1']\n"),
        "p.yaml:3: interfaces.private[0]: invalid interface 'eth0 eth1'",
    ),
    "a bad group name": (
        profile("description: x\ninterfaces:\n  1private: [eth1]\n"),
        "invalid interface group name '1private'",
    ),
    "a group that is also a network": (
        profile(
            "description: x\nnetworks:\n  private: [10.0.0.0/8]\ninterfaces:\n  private: [eth1]\n"
        ),
        "p.yaml:5: interfaces.private: 'private' is both a network (p.yaml:3) and an interface group",
    ),
    "--set with a space": (
        with_args(on("private"), "--set", "private=eth 1"),
        "--set private: invalid interface 'eth 1'",
    ),
    "--set with a quote": (
        with_args(on("private"), "--set", 'private=eth1"'),
        "--set private: invalid interface 'eth1\"'",
    ),
    "--set with 16 characters": (
        with_args(on("private"), "--set", "private=abcdefghijklmnop"),
        "--set private: invalid interface 'abcdefghijklmnop'",
    ),
    "--set with Unicode": (
        with_args(on("private"), "--set", "private=wlan\u0660"),
        "--set private: invalid interface",
    ),
    "--set that empties the group": (
        with_args(on("private"), "--set", "private=", "--strict"),
        "interface group 'private' (--set private) is empty, so ssh admits no one",
    ),
    "a protocol with ports": (
        profile("description: x\ninbound:\n  - {protocol: tcp, name: t}\n"),
        "p.yaml:3: inbound[0].protocol: invalid protocol 'tcp'; `protocol:` takes esp, ah and gre",
    ),
    "a protocol with a command": (
        profile("description: x\ninbound:\n  - {protocol: 'esp; reboot', name: t}\n"),
        "invalid protocol 'esp; reboot'",
    ),
    "a port of a protocol without ports": (
        profile("description: x\ninbound:\n  - {port: 50/esp, name: t}\n"),
        "invalid port '50/esp'",
    ),
    "a protocol beside a service": (
        profile("description: x\ninbound:\n  - {protocol: gre, service: ssh}\n"),
        "a rule needs exactly one of: service, port, protocol, icmp/icmpv6",
    ),
    "SCTP on Windows": (
        lambda tmp: [
            *profile("description: x\ninbound:\n  - {port: 3868/sctp, name: diameter}\n")(tmp)[:2],
            "-t",
            "windows",
        ],
        "windows: diameter (p.yaml:3) opens SCTP, which Windows Firewall cannot express (its "
        "ports are for TCP and UDP only)",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_with_one_located_line(case: str, tmp_path: Path) -> None:
    setup, expected = REFUSED[case]
    result = runner.invoke(app, setup(tmp_path))
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    err = result.stderr
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert expected in err, err
    assert "Traceback" not in err


PLAIN = (
    "description: x\ninterfaces:\n  private: [bond0.20, veth+]\ninbound:\n"
    "  - {service: ssh, interface: [private, wg_a-1, ens3f0np0]}\n"
    "  - {protocol: [esp, gre], name: tunnels, interface: private}\n"
)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_plain_names_render_as_written_on_every_target(target: str, tmp_path: Path) -> None:
    """Names in the characters every target writes unquoted: each reaches the output as
    the target spells it (iptables and ufw end a glob in +, nftables and Windows in *)."""
    (tmp_path / "p.yaml").write_text(PLAIN)
    result = runner.invoke(app, ["render", str(tmp_path / "p.yaml"), "-t", target])
    assert result.exit_code == 0, result.stderr
    glob = "veth+" if target in ("iptables", "ufw") else "veth*"
    for name in ("bond0.20", glob, "wg_a-1", "ens3f0np0"):
        assert name in result.stdout, name
    assert ("veth*" in result.stdout) == (target not in ("iptables", "ufw"))


MANIFEST = """\
hosts:
  db1:
    profile: database
    set:
      private: %s
      app: [10.0.0.0/24]
      admins: [10.1.0.0/24]
    targets:
      nftables: out/db1.nft
"""


@pytest.mark.parametrize(
    ("value", "strict", "expected"),
    [
        ('["eth1; reboot"]', False, "fwgen.yaml:5: hosts.db1.set.private[0]: invalid interface"),
        ('["éth1"]', False, "fwgen.yaml:5: hosts.db1.set.private[0]: invalid interface 'éth1'"),
        ("[]", True, "db1: interface group 'private' (fwgen.yaml:5) is empty, so mysql, "),
    ],
)
def test_a_manifest_sets_no_hostile_or_empty_interfaces(
    value: str, strict: bool, expected: str, tmp_path: Path
) -> None:
    (tmp_path / "fwgen.yaml").write_text(MANIFEST % value)
    argv = ["build", str(tmp_path / "fwgen.yaml"), *(["--strict"] if strict else [])]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.stdout
    assert expected in result.stderr.splitlines()[0], result.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written
