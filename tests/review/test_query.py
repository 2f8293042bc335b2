"""`fwgen query`'s decisions against profiles written here: each verdict, deciding rule
and line is typed by hand from the profile text, never computed by the code under test."""

from __future__ import annotations

from pathlib import Path

import pytest

from fwgen.policy.ir import Policy
from fwgen.policy.resolve import resolve_profile
from fwgen.review.packet import parse_packet
from fwgen.review.query import decide, query
from fwgen.targets import TARGETS

SITE = """\
description: every way a packet is decided
extends: base
networks:
  lan: [10.0.0.0/8, "fd00::/8"]
  abuse: [192.0.2.0/25, "2001:db8:bad::/48"]
interfaces:
  private: [eth1, "wg*"]
  idle: []
inbound:
  - {service: https, connlimit: 20}
  - {service: ssh, from: lan, limit: 3/minute}
  - {port: 22/tcp, name: ssh-backend, interface: private}
  - {port: 8080/tcp, name: local-web, host: [10.0.0.1]}
  - {service: smtp, interface: idle}
  - {service: mdns}
  - from: abuse
    action: deny
  - {port: 23/tcp, action: reject, name: telnet}
  - {port: 69/udp, action: reject, name: tftp}
  - {from: 203.0.113.66, action: reject, name: noisy}
  - {port: 2222/tcp, name: alt, limit: 3/minute}
  - {port: 2222/tcp, name: alt-lan, from: lan}
outbound:
  - {service: dns}
  - {to: 198.51.100.0/24, action: deny}
options:
  refuse: reject
  refuse_from: lan
  limit_prefix_v6: 48
"""
# The lines of SITE (the file is written as site.yaml, base is profiles/base.yaml)
HTTPS, SSH, BACKEND, LOCAL_WEB, SMTP, MDNS, DENY, TELNET, TFTP, NOISY = (
    10,
    11,
    12,
    13,
    14,
    15,
    16,
    18,
    19,
    20,
)
ALT, ALT_LAN, DNS, DENY_OUT = 21, 22, 24, 25


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    folder = tmp_path_factory.mktemp("site")
    (folder / "site.yaml").write_text(SITE)
    return resolve_profile(str(folder / "site.yaml"))


def answer(policy: Policy, text: str, lacks: tuple[str, ...] = ()) -> list[str]:
    """Each family's decision as one line: ``accepted by https (site.yaml:9)``."""
    packet = parse_packet(text)
    out = []
    for family in packet.families:
        found = decide(policy, packet, family, frozenset(lacks))
        folder = str(Path(found.origin).parent) + "/"
        out.append(found.summary().replace(folder, "") if found.origin else found.summary())
    return out


def at(line: int) -> str:
    return f"site.yaml:{line}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tcp 8.8.8.8 -> 443", [f"accepted by https ({at(HTTPS)})"]),
        ("tcp 10.1.2.3 -> 22", [f"accepted by ssh ({at(SSH)})"]),
        ("tcp [fd00::5] -> 22", [f"accepted by ssh ({at(SSH)})"]),
        # not from lan: ssh-backend needs its interface, then the default drops
        ("tcp 8.8.8.8 -> 22", ["dropped by the default policy"]),
        ("tcp 8.8.8.8 -> 22 on eth1", [f"accepted by ssh-backend ({at(BACKEND)})"]),
        ("tcp 8.8.8.8 -> 22 on wg7", [f"accepted by ssh-backend ({at(BACKEND)})"]),
        ("tcp 8.8.8.8 -> 22 on eth2", ["dropped by the default policy"]),
        ("tcp 8.8.8.8 -> 10.0.0.1:8080", [f"accepted by local-web ({at(LOCAL_WEB)})"]),
        ("tcp 8.8.8.8 -> 10.0.0.2:8080", ["dropped by the default policy"]),
        ("tcp 8.8.8.8 -> 8080", ["dropped by the default policy"]),
        ("tcp 8.8.8.8 -> 25 on eth1", ["dropped by the default policy"]),  # idle group
        ("udp 8.8.8.8 -> 224.0.0.251:5353", [f"accepted by mdns ({at(MDNS)})"]),
        ("udp 8.8.8.8 -> 10.0.0.1:5353", ["dropped by the default policy"]),
        # denies come before every allow rule, https included
        ("tcp 192.0.2.7 -> 443", [f"dropped by deny ({at(DENY)})"]),
        ("tcp [2001:db8:bad::1] -> 443", [f"dropped by deny ({at(DENY)})"]),
        ("tcp 192.0.2.200 -> 443", [f"accepted by https ({at(HTTPS)})"]),
        ("tcp 8.8.8.8 -> 23", [f"rejected (TCP reset) by reject telnet ({at(TELNET)})"]),
        ("udp 8.8.8.8 -> 69", [f"rejected (ICMP port unreachable) by reject tftp ({at(TFTP)})"]),
        ("tcp 203.0.113.66 -> 443", [f"rejected (TCP reset) by reject noisy ({at(NOISY)})"]),
        (
            "udp 203.0.113.66 -> 443",
            [f"rejected (ICMP administratively prohibited) by reject noisy ({at(NOISY)})"],
        ),
        (
            "gre 203.0.113.66",
            [f"rejected (ICMP administratively prohibited) by reject noisy ({at(NOISY)})"],
        ),
        # a reject answers unicast only
        ("udp 8.8.8.8 -> 255.255.255.255:69", [f"dropped by reject tftp ({at(TFTP)})"]),
        # the default refuses lan's packets, drops everyone else's
        (
            "tcp 10.9.9.9 -> 3306",
            ["rejected (TCP reset) by the default policy (options.refuse: reject)"],
        ),
        (
            "udp 10.9.9.9 -> 53",
            ["rejected (ICMP port unreachable) by the default policy (options.refuse: reject)"],
        ),
        ("tcp 8.8.8.8 -> 3306", ["dropped by the default policy"]),
        ("tcp -> 3306", ["dropped by the default policy", "dropped by the default policy"]),
        # shortcuts
        (
            "tcp 8.8.8.8 -> 3306 established",
            ["accepted by the established shortcut (options.established)"],
        ),
        ("tcp 8.8.8.8 -> 3306 related", ["accepted by the related shortcut (options.established)"]),
        ("tcp 10.1.2.3 -> 22 invalid", ["dropped by the invalid shortcut (options.drop_invalid)"]),
        ("tcp 127.0.0.1 -> 3306", ["accepted by loopback (options.loopback)"]),
        ("tcp 10.0.0.5 -> 3306 on lo", ["accepted by loopback (options.loopback)"]),
        # ICMP: base's rules; a ping's later echo requests are counted by its limit
        ("icmp echo-request from 8.8.8.8 established", ["accepted by ping (base.yaml:38)"]),
        (
            "icmp echo-reply from 8.8.8.8 established",
            ["accepted by the established shortcut (options.established)"],
        ),
        ("icmp timestamp-request from 8.8.8.8", ["dropped by the default policy"]),
        ("icmpv6 nd-neighbor-solicit from fe80::1", ["accepted by icmpv6 (base.yaml:15)"]),
        (
            "icmpv6 nd-neighbor-solicit from fe80::1 hop-limit 254",
            ["dropped by the default policy"],
        ),
        ("icmpv6 mld-listener-query from fe80::1", ["accepted by mld-query (base.yaml:29)"]),
        ("icmpv6 mld-listener-query from 2001:db8::1", ["dropped by the default policy"]),
        # outbound: its deny, then the default (accept)
        ("out tcp -> 198.51.100.7:25", [f"dropped by deny ({at(DENY_OUT)})"]),
        # a list of outbound rules makes the outbound default drop
        ("out tcp -> 8.8.8.8:25", ["dropped by the default policy (outbound: drop)"]),
        ("out udp -> 8.8.8.8:53", [f"accepted by dns ({at(DNS)})"]),
    ],
)
def test_decisions(site: Policy, text: str, expected: list[str]) -> None:
    assert answer(site, text) == expected


def test_a_limited_rule_says_what_comes_beyond_its_rate(site: Policy) -> None:
    lan = decide(site, parse_packet("tcp 10.1.2.3 -> 2222"), "ipv4")
    assert (lan.verdict, lan.by, lan.origin.endswith(at(ALT))) == ("accepted", "alt", True)
    assert lan.notes == (
        "up to 3 new connections a minute per source address; beyond them, "
        f"accepted by alt-lan ({lan.origin[: -len(at(ALT))]}{at(ALT_LAN)})",
    )
    other = decide(site, parse_packet("tcp 8.8.8.8 -> 2222"), "ipv4")
    assert other.notes == (
        "up to 3 new connections a minute per source address; beyond them, "
        "dropped by the default policy",
    )
    # over IPv6, the limit counts sources by /48 (limit_prefix_v6); lan's are refused
    v6 = decide(site, parse_packet("tcp [fd00::5] -> 22"), "ipv6")
    assert v6.by == "ssh" and v6.notes == (
        "up to 3 new connections a minute per source /48; beyond them, "
        "rejected (TCP reset) by the default policy (options.refuse: reject)",
        "at most 20 answers a second; beyond them, dropped in silence",
        f"had it named interface eth1, wg* (private), accepted by ssh-backend ({at(BACKEND)})",
    )
    # established packets are not counted (nor matched) by a limit: the shortcut has them
    assert answer(site, "tcp 8.8.8.8 -> 2222 established") == [
        "accepted by the established shortcut (options.established)"
    ]


def test_a_dropped_packet_names_the_rules_that_would_admit_what_it_leaves_out(
    site: Policy,
) -> None:
    def notes(text: str) -> list[str]:
        packet = parse_packet(text)
        return [n for f in packet.families for n in decide(site, packet, f).notes]

    assert notes("tcp -> 8080") == [
        f"had it named the destination 10.0.0.1, accepted by local-web ({at(LOCAL_WEB)})"
    ]
    # outbound, the multicast groups are the peer (to:), over each family
    assert (
        notes("out udp -> 5353")
        == [f"had it named a destination in 224.0.0.251, ff02::fb, accepted by mdns ({at(MDNS)})"]
        * 2
    )
    # a source that no network holds, on no named interface: ssh from lan, ssh-backend
    assert notes("tcp [2001:db8::1] -> 22") == [
        f"had it named interface eth1, wg* (private), accepted by ssh-backend ({at(BACKEND)})"
    ]
    assert notes("tcp -> 22")[:2] == [
        f"had it named interface eth1, wg* (private), accepted by ssh-backend ({at(BACKEND)})",
        f"had it named a source in lan, accepted by ssh ({at(SSH)})",
    ]
    # what it names decides: nothing to hint
    assert notes("tcp 8.8.8.8 -> 10.0.0.2:8080") == []


def test_a_connection_cap_rejects_beyond_it(site: Policy) -> None:
    found = decide(site, parse_packet("tcp 8.8.8.8 -> 443"), "ipv4")
    assert found.notes == (
        "up to 20 connections at once per source address; beyond them, rejected (TCP reset)",
    )


def test_targets_decide_without_what_they_lack(site: Policy) -> None:
    lacking = {t.name: t.lacks for t in TARGETS.values() if t.lacks}
    assert lacking == {
        "windows": ("limit", "connlimit", "reject"),
        "firewalld": ("limit", "connlimit"),
    }
    telnet = query(site, parse_packet("tcp 8.8.8.8 -> 23"), lacking)
    assert [d.verdict for d in telnet.decisions] == ["rejected"]
    assert sorted(telnet.targets) == ["windows"]
    assert [d.verdict for d in telnet.targets["windows"]] == ["dropped"]
    ssh = query(site, parse_packet("tcp 10.1.2.3 -> 22"), lacking)
    assert sorted(ssh.targets) == ["firewalld", "windows"]
    assert ssh.targets["windows"][0].notes == (
        "not rate limited: the 3/minute limit is not applied",
    )
    # what every target expresses alike is not repeated per target
    assert query(site, parse_packet("tcp 192.0.2.7 -> 443"), lacking).targets == {}


def test_windows_limits_and_caps_are_documented_where_the_registry_says_so() -> None:
    """A target lacks a feature exactly where its capabilities say it renders without it."""
    for target in TARGETS.values():
        caps = target.capabilities
        assert ("limit" in target.lacks) == caps["rate limits"].startswith("no")
        assert ("connlimit" in target.lacks) == caps["connlimit"].startswith("no")
        assert ("reject" in target.lacks) == ("silent block" in caps["deny/reject"])


def test_builtin_webserver() -> None:
    policy = resolve_profile("webserver", {"admins": ["10.20.0.0/26"]})
    assert answer(policy, "tcp 203.0.113.5 -> 443") == ["accepted by https (webserver.yaml:12)"]
    assert answer(policy, "udp 203.0.113.5 -> 443") == ["accepted by http3 (webserver.yaml:13)"]
    assert answer(policy, "tcp 10.20.0.9 -> 22") == ["accepted by ssh (webserver.yaml:14)"]
    assert answer(policy, "tcp 10.20.0.99 -> 22") == ["dropped by the default policy"]
    assert answer(policy, "tcp -> 3306") == ["dropped by the default policy"] * 2
