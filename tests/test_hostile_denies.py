"""Hostile inputs for deny and reject rules, blocklists, refusals and connection caps:
each refused with one located line and exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_hostile import Setup, _files, _run, profile, with_args


def on(target: str, text: str, *extra: str, **others: str | bytes) -> Setup:
    """p.yaml with *text* (and files beside it), rendered for *target* with *extra*."""

    def setup(tmp: Path) -> list[str]:
        _files(tmp, {"p.yaml": text, **others})
        return ["render", str(tmp / "p.yaml"), "-t", target, *extra]

    return setup


BLOCK = (
    "description: x\nextends: base\nnetworks:\n  abuse: [{file: bl.txt}]\n"
    "inbound:\n  - {service: https}\n  - {from: abuse, action: deny}\n"
)
BASE = "description: x\nextends: base\n"

REFUSED: dict[str, tuple[Setup, str]] = {
    "a blocklist with a 0.0.0.0/0 line": (
        profile(BLOCK, **{"bl.txt": "198.51.100.7\n0.0.0.0/0\n"}),
        "p.yaml:7: deny: network 'abuse' (p.yaml:4) holds every IPv4 address (0.0.0.0/0): "
        "this deny rule would block everyone",
    ),
    "a blocklist with a ::/0 line": (
        profile(BLOCK, **{"bl.txt": "::/0\n2001:db8::1\n"}),
        "holds every IPv6 address (::/0)",
    ),
    "a blocklist that adds up to every IPv4 address": (
        profile(BLOCK, **{"bl.txt": "0.0.0.0/1\n128.0.0.0/1\n2001:db8::1\n"}),
        "holds every IPv4 address (0.0.0.0/0): this deny rule would block everyone",
    ),
    "a blocklist larger than a list may be": (
        profile(BLOCK, **{"bl.txt": b"# padding\n" * (3_400_000)}),
        "bl.txt",
    ),
    "a binary blocklist": (
        profile(BLOCK, **{"bl.txt": b"\x7fELF\x00\x01\x02\xff\xfe"}),
        "bl.txt",
    ),
    "a blocklist entry with host bits": (
        profile(BLOCK, **{"bl.txt": "198.51.100.0/24\n10.1.2.3/8\n"}),
        "bl.txt:2",
    ),
    "a blocklist entry with a shell command": (
        profile(BLOCK, **{"bl.txt": "198.51.100.0/24; rm -rf /\n"}),
        "bl.txt:1",
    ),
    "a deny of every protocol from any": (
        profile(BASE + "inbound:\n  - {action: deny}\n"),
        "p.yaml:4: inbound[0]: a deny rule without a service, port or ICMP type blocks every "
        "protocol from any address",
    ),
    "an unknown action": (
        profile(BASE + "inbound:\n  - {service: ssh, action: drop}\n"),
        "p.yaml:4: inbound[0].action",
    ),
    "a limit on a deny rule": (
        profile(BASE + "inbound:\n  - {service: ssh, action: deny, limit: 5/minute}\n"),
        "a deny rule admits nothing, so `limit` has no meaning there",
    ),
    "a connlimit of 0": (
        profile(BASE + "inbound:\n  - {service: ssh, connlimit: 0}\n"),
        "p.yaml:4: inbound[0].connlimit: connlimit must be 1 to 65535",
    ),
    "a connlimit written as text": (
        profile(BASE + "inbound:\n  - {service: ssh, connlimit: '5; drop'}\n"),
        "p.yaml:4: inbound[0].connlimit",
    ),
    "a connlimit on ICMP": (
        profile(BASE + "inbound:\n  - {icmp: [echo-request], connlimit: 3}\n"),
        "connlimit caps TCP connections",
    ),
    "a connlimit on a UDP service": (
        profile(BASE + "inbound:\n  - {port: 5353/udp, name: m, connlimit: 3}\n"),
        "p.yaml:4: inbound[0].connlimit: connlimit caps TCP connections, and this rule opens "
        "no TCP port",
    ),
    "refuse with an unknown answer": (
        profile(BASE + "options:\n  refuse: rst\n"),
        "p.yaml:4: options.refuse",
    ),
    "refuse_from without refuse: reject": (
        profile(BASE + "options:\n  refuse_from: 10.0.0.0/8\n"),
        "p.yaml:4: options.refuse_from: refuse_from needs refuse: reject",
    ),
    "refuse_from any": (
        profile(BASE + "options:\n  refuse: reject\n  refuse_from: any\n"),
        "leave refuse_from out to reject every source",
    ),
    "refuse_from an unknown network": (
        profile(BASE + "options:\n  refuse: reject\n  refuse_from: lan\n"),
        "unknown network 'lan'",
    ),
    "refuse_from with a quote": (
        profile(BASE + "options:\n  refuse: reject\n  refuse_from: 'lan\"; flush ruleset'\n"),
        "options.refuse_from",
    ),
    "a deny beside containers": (
        profile(
            BASE + "options:\n  containers: docker\n"
            "inbound:\n  - {service: ssh, action: deny, from: 10.0.0.0/8}\n"
        ),
        "deny and reject rules cannot be combined with containers: docker yet",
    ),
    "ufw --sets-only": (
        on("ufw", BLOCK, "--sets-only", **{"bl.txt": "198.51.100.7\n"}),
        "ufw: --sets-only cannot be expressed",
    ),
    "a blocklist too large for ufw": (
        on(
            "ufw",
            BLOCK,
            **{"bl.txt": "\n".join(f"10.0.{i // 200}.{i % 200}" for i in range(0, 2400, 2))},
        ),
        "fwgen stops at 1000: use nftables or iptables (ipset)",
    ),
    "--sets-only without a blocklist": (
        with_args(profile(BASE + "inbound:\n  - {service: ssh}\n"), "--sets-only"),
        "nftables: --sets-only: this profile has no network that only deny or reject rules use",
    ),
    "a reject on Windows under --strict": (
        on(
            "windows",
            BASE + "inbound:\n  - {service: ssh, action: reject, from: 10.0.0.0/8}\n",
            "--strict",
        ),
        "Windows Firewall blocks in silence",
    ),
    "a connlimit on Windows under --strict": (
        on(
            "windows",
            BASE + "options:\n  ping: false\ninbound:\n  - {service: ssh, connlimit: 3}\n",
            "--strict",
        ),
        "cannot cap connections per source",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_with_one_located_line(case: str, tmp_path: Path) -> None:
    setup, expected = REFUSED[case]
    code, out, err = _run(tmp_path, setup)
    assert code == 2, (out, err)
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert expected in err, err
    assert "Traceback" not in err
