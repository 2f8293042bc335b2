"""The packet grammar of `fwgen query`: what each text means, and the column of each
mistake. Every expectation is written by hand."""

from __future__ import annotations

import pytest

from fwgen.review.packet import Endpoint, PacketError, parse_packet


def v4(text: str) -> tuple[int, int, int]:
    a, b, c, d = (int(x) for x in text.split("."))
    value = a << 24 | b << 16 | c << 8 | d
    return 4, value, value


def test_inbound_tcp_from_an_address_to_a_port() -> None:
    packet = parse_packet("tcp 203.0.113.5 -> 443")
    assert packet.direction == "in" and packet.proto == "tcp"
    assert packet.remote == Endpoint(v4("203.0.113.5"), "203.0.113.5")
    assert packet.local == Endpoint(port=443)
    assert packet.port == 443 and packet.families == ("ipv4",)
    assert packet.state == "new" and packet.interface is None


def test_ipv6_in_brackets_with_ports_on_both_sides() -> None:
    packet = parse_packet("udp [2001:db8::5]:5353 -> 5353")
    assert packet.families == ("ipv6",)
    assert packet.remote.port == 5353 and packet.remote.text == "2001:db8::5"
    assert packet.remote.address == (6, 0x20010DB8 << 96 | 5, 0x20010DB8 << 96 | 5)
    assert packet.local.port == 5353


def test_outbound_names_the_peer_on_the_right() -> None:
    packet = parse_packet("out tcp -> 198.51.100.7:25")
    assert packet.direction == "out"
    assert packet.remote == Endpoint(v4("198.51.100.7"), "198.51.100.7", 25)
    assert packet.local == Endpoint()
    assert packet.port == 25


def test_an_endpoint_alone_is_the_peer_in_either_direction() -> None:
    assert parse_packet("out tcp 198.51.100.7:25").remote.port == 25
    assert parse_packet("esp 192.0.2.9").remote.text == "192.0.2.9"


def test_icmp_type_and_from_clause() -> None:
    packet = parse_packet("icmp echo-request from 10.1.2.3")
    assert packet.icmp_type == "echo-request" and packet.families == ("ipv4",)
    assert packet.remote.text == "10.1.2.3" and packet.hop_limit is None


def test_neighbour_discovery_and_mld_get_their_hop_limits_unless_told() -> None:
    assert parse_packet("icmpv6 nd-neighbor-solicit from fe80::1").hop_limit == 255
    assert parse_packet("icmpv6 mld-listener-query from fe80::1").hop_limit == 1
    told = parse_packet("icmpv6 nd-neighbor-solicit from fe80::1 hop-limit 64")
    assert told.hop_limit == 64


def test_clauses_interface_state_and_a_local_address() -> None:
    packet = parse_packet("in tcp 10.0.0.9 -> 10.0.0.1:22 on eth1 established")
    assert packet.interface == "eth1" and packet.state == "established"
    assert packet.local == Endpoint(v4("10.0.0.1"), "10.0.0.1", 22)


def test_arrow_may_touch_its_neighbours_and_tabs_separate() -> None:
    packet = parse_packet("tcp\t203.0.113.5->443")
    assert packet.remote.text == "203.0.113.5" and packet.port == 443
    assert packet.text == "tcp\t203.0.113.5->443"


def test_no_address_means_both_families_and_icmp_fixes_one() -> None:
    assert parse_packet("tcp -> 22").families == ("ipv4", "ipv6")
    assert parse_packet("gre").families == ("ipv4", "ipv6")
    assert parse_packet("icmpv6 echo-request").families == ("ipv6",)


def test_loopback_peer_arrives_on_lo_unless_an_interface_is_named() -> None:
    assert parse_packet("tcp 127.0.0.1 -> 3306").on("ipv4") == "lo"
    assert parse_packet("tcp [::1] -> 3306").on("ipv6") == "lo"
    assert parse_packet("tcp 127.0.0.1 -> 3306 on eth0").on("ipv4") == "eth0"
    assert parse_packet("tcp 10.0.0.1 -> 3306").on("ipv4") is None


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ("", 1, "empty packet"),
        ("tcpp 1.2.3.4 -> 22", 1, "did you mean 'tcp'"),
        ("tcp 1.2.3.4", 12, "name the destination port"),
        ("tcp 1.2.3.4 ->", 15, "'->' needs a value"),
        ("tcp 1.2.3.400 -> 22", 5, "invalid address"),
        ("tcp 1.2.3.4 -> 0", 16, "1-65535"),
        ("tcp 1.2.3.4 -> 65536", 16, "1-65535"),
        ("tcp 1.2.3.4:http -> 22", 13, "invalid port 'http'"),
        ("tcp 10.0.0.0/8 -> 22", 5, "is a network"),
        ("tcp 1.2.3.4 -> 22 on eth0 on eth1", 27, "on is said twice"),
        ("tcp 1.2.3.4 -> 22 new established", 23, "state is said twice"),
        ("tcp 1.2.3.4 -> [2001:db8::1]:22", 16, "IPv6 address and the other one is not"),
        ("icmp echo-request from ::1", 24, "write icmpv6"),
        ("icmp echo-reqest from 1.2.3.4", 6, "did you mean 'echo-request'"),
        ("icmp from 1.2.3.4", 18, "name the icmp type"),
        ("esp 1.2.3.4 -> 5", 16, "esp has no ports"),
        ("tcp 1.2.3.4 -> 22 bogus", 19, "unexpected 'bogus'"),
        ("tcp 1.2.3.4 -> 22 -> 23", 22, "a second receiver"),
        ("tcp [2001:db8::1 -> 22", 5, "[ADDRESS]:PORT"),
        ("tcp [1.2.3.4]:5 -> 22", 6, "not an IPv6 address"),
        ("tcp fe80::1%eth0 -> 22", 5, "zone id"),
        ("tcp ::ffff:1.2.3.4 -> 22", 5, "IPv4-mapped"),
        ("tcp 1.2.3.4 -> 22 on wg*", 22, "invalid interface"),
        ("tcp 1.2.3.4 -> 22 on abcdefghijklmnop", 22, "invalid interface"),
        ("icmpv6 nd-neighbor-solicit hop-limit 256", 38, "0-255"),
        ("in", 3, "name a protocol"),
    ],
)
def test_mistakes_name_their_column(text: str, column: int, words: str) -> None:
    with pytest.raises(PacketError) as caught:
        parse_packet(text)
    assert words in caught.value.message
    assert caught.value.column == column


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("tcp 1.2.3.4 -> 4\u0664\u0663", 17),  # Arabic-Indic digits
        ("tcp 1.2.3.4 -> \uff14\uff14\uff13", 16),  # fullwidth digits
        ("tcp 1.2.3.4\u2028-> 22", 12),  # line separator
        ("tcp\u00a01.2.3.4 -> 22", 4),  # no-break space
        ("tcp 1.2.3.4 -> 22\u202e", 18),  # right-to-left override
        ("tcp 1.2.3.4 -> 22\x00", 18),  # NUL
        ("tcp 1\u2024.2.3.4 -> 22", 6),  # one dot leader, a look-alike of "."
        ("tcp 1.2.3.4 -> 22\r", 18),
    ],
)
def test_unicode_and_control_characters_are_refused_where_they_are(text: str, column: int) -> None:
    with pytest.raises(PacketError) as caught:
        parse_packet(text)
    assert "plain ASCII" in caught.value.message
    assert caught.value.column == column


def test_a_huge_packet_is_refused_before_it_is_read() -> None:
    with pytest.raises(PacketError, match="at most 400 characters"):
        parse_packet("tcp 1.2.3.4 -> 22 " + "established " * 1000)
