"""What a client host keeps under default deny: DHCP with `address: dhcp`, and the
multicast groups of the local-link services it accepts. The kernel tests in
tests/kernel/test_client_host.py send the packets; these pin the rules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fwgen.policy.ir import Policy
from fwgen.policy.resolve import resolve_profile
from fwgen.profile.portdb import catalogue
from fwgen.review.check import check_policy

Row = tuple[str, str, str, str, tuple[str, ...], tuple[str, ...] | None, str]


def rows(policy: Policy, *names: str) -> set[Row]:
    """(direction, name, proto, ports, families, remote addresses, origin) of some rules."""
    return {
        (
            r.direction,
            r.name,
            r.proto,
            ",".join(str(p) for p in r.ports),
            r.families,
            None if r.remote is None else tuple(policy.remote_addresses(r) or ()),
            r.origin,
        )
        for r in policy.rules
        if r.name in names
    }


def codes(policy: Policy) -> list[str]:
    return [f.code for f in check_policy(policy, catalogue())]


DHCP = ("dhcp-client", "dhcpv6-client", "dhcp", "dhcpv6")


def test_address_dhcp_with_outbound_deny_lets_requests_out_and_replies_in(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile(
        """\
        description: x
        outbound:
          - {service: dns}
        options:
          address: dhcp
        """
    )
    policy = resolve_profile(str(path))
    here = f"{path.name}:5"
    assert rows(policy, *DHCP) == {
        ("in", "dhcp-client", "udp", "68", ("ipv4",), None, here),
        ("in", "dhcpv6-client", "udp", "546", ("ipv6",), ("fe80::/10",), here),
        ("out", "dhcp", "udp", "67", ("ipv4",), None, here),
        ("out", "dhcpv6", "udp", "547", ("ipv6",), ("ff02::1:2",), here),
    }
    assert "FW014" not in codes(policy)


def test_address_dhcp_with_outbound_accept_adds_only_the_replies(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile("description: x\noptions: {address: dhcp}\n")
    policy = resolve_profile(str(path))
    assert {(r[0], r[1]) for r in rows(policy, *DHCP)} == {
        ("in", "dhcp-client"),
        ("in", "dhcpv6-client"),
    }
    assert policy.defaults.outbound == "accept"


def test_workstation_takes_dhcp_and_a_static_child_does_not(
    write_profile: Callable[..., Path],
) -> None:
    workstation = resolve_profile("workstation")
    assert workstation.address == "dhcp"
    assert {r[1] for r in rows(workstation, *DHCP)} == {"dhcp-client", "dhcpv6-client"}
    path = write_profile(
        """\
        description: x
        extends: workstation
        outbound: [{service: dns}]
        options: {address: static}
        """
    )
    policy = resolve_profile(str(path))
    assert rows(policy, *DHCP) == set()
    assert "FW014" not in codes(policy)


def test_outbound_deny_without_an_address_option_warns_fw014(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile("description: x\noutbound: [{service: dns}]\n")
    findings = [f for f in check_policy(resolve_profile(str(path)), catalogue())]
    (finding,) = [f for f in findings if f.code == "FW014"]
    assert finding.level == "warning" and finding.location == f"{path.name}:1"
    assert "DHCP (67/udp) and DHCPv6 (547/udp) are not allowed out" in finding.message
    assert "`options: {address: dhcp}`" in finding.message
    assert "`address: static`" in finding.message


def test_fw014_names_only_what_is_missing_and_is_quiet_when_both_are_out(
    write_profile: Callable[..., Path],
) -> None:
    v4 = write_profile(
        "description: x\noutbound: [{service: dns}, {service: dhcp}]\n", name="v4.yaml"
    )
    (finding,) = [
        f for f in check_policy(resolve_profile(str(v4)), catalogue()) if f.code == "FW014"
    ]
    assert "but DHCPv6 (547/udp) is not allowed out" in finding.message
    both = write_profile(
        "description: x\noutbound: [{service: dns}, {service: [dhcp, dhcpv6]}]\n",
        name="both.yaml",
    )
    assert "FW014" not in codes(resolve_profile(str(both)))
    accept = write_profile("description: x\n", name="accept.yaml")
    assert "FW014" not in codes(resolve_profile(str(accept)))


def test_a_local_multicast_service_accepted_in_may_send_to_its_groups(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile(
        """\
        description: x
        inbound:
          - {service: mdns}
          - {service: llmnr}
          - {service: ssh}
        outbound: [{service: dns}]
        """
    )
    policy = resolve_profile(str(path))
    assert rows(policy, "mdns", "llmnr") - rows(policy, "dns") == {
        ("in", "mdns", "udp", "5353", ("ipv4", "ipv6"), None, f"{path.name}:3"),
        (
            "out",
            "mdns",
            "udp",
            "5353",
            ("ipv4", "ipv6"),
            ("224.0.0.251", "ff02::fb"),
            f"{path.name}:3",
        ),
        ("in", "llmnr", "tcp", "5355", ("ipv4", "ipv6"), None, f"{path.name}:4"),
        ("in", "llmnr", "udp", "5355", ("ipv4", "ipv6"), None, f"{path.name}:4"),
        # multicast is UDP: LLMNR's TCP port gets no outbound rule
        (
            "out",
            "llmnr",
            "udp",
            "5355",
            ("ipv4", "ipv6"),
            ("224.0.0.252", "ff02::1:3"),
            f"{path.name}:4",
        ),
    }
    assert not [r for r in policy.rules if r.direction == "out" and r.name == "ssh"]


def test_no_multicast_rule_with_outbound_accept_or_when_the_author_wrote_one(
    write_profile: Callable[..., Path],
) -> None:
    accept = write_profile("description: x\ninbound: [{service: mdns}]\n", name="accept.yaml")
    assert [r.direction for r in resolve_profile(str(accept)).rules if r.name == "mdns"] == ["in"]
    own = write_profile(
        """\
        description: x
        inbound: [{service: mdns}]
        outbound: [{service: mdns, to: [224.0.0.251]}]
        """,
        name="own.yaml",
    )
    policy = resolve_profile(str(own))
    assert rows(policy, "mdns") >= {
        ("out", "mdns", "udp", "5353", ("ipv4",), ("224.0.0.251",), f"{own.name}:3")
    }
    assert [r.origin for r in policy.rules if r.direction == "out" and r.name == "mdns"] == [
        f"{own.name}:3"
    ]


def test_the_address_option_is_left_out_of_the_digest(
    write_profile: Callable[..., Path],
) -> None:
    """`static` changes findings only; the ruleset, and so its digest, stay the same."""
    static = resolve_profile(str(write_profile("description: x\noptions: {address: static}\n")))
    assert static.address == "static"
    assert static.digest() == static.replace(address=None).digest()
    assert static.digest() != static.replace(log_drops=True).digest()
