from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fwgen.errors import FwgenError, FwgenErrors
from fwgen.policy.ir import Rule
from fwgen.policy.resolve import merge_ranges, resolve_profile


def inbound(policy_rules: tuple[Rule, ...], name: str) -> list[Rule]:
    return [r for r in policy_rules if r.direction == "in" and r.name == name]


def test_family_follows_the_sources(write_profile: Callable[..., Path]) -> None:
    path = write_profile(
        """\
        description: x
        networks:
          v4only: [192.0.2.0/24]
          both: [192.0.2.0/24, "2001:db8::/32"]
        inbound:
          - {service: ssh, from: v4only}
          - {service: http, from: both}
          - {service: https}
        """
    )
    policy = resolve_profile(str(path))
    assert [r.families for r in inbound(policy.rules, "ssh")] == [("ipv4",)]
    assert [r.families for r in inbound(policy.rules, "http")] == [("ipv4", "ipv6")]
    assert [r.families for r in inbound(policy.rules, "https")] == [("ipv4", "ipv6")]
    assert inbound(policy.rules, "https")[0].remote is None


def test_networks_are_collapsed_deduplicated_and_nested(write_profile: Callable[..., Path]) -> None:
    path = write_profile(
        """\
        description: x
        networks:
          office: [10.0.0.0/25, 10.0.0.128/25, 10.0.0.7, "2001:db8::/64"]
          admins: [office, 192.0.2.9]
        inbound:
          - {service: ssh, from: admins}
        """
    )
    policy = resolve_profile(str(path))
    admins = policy.address_set("admins")
    assert admins.ipv4 == ("10.0.0.0/24", "192.0.2.9")
    assert admins.ipv6 == ("2001:db8::/64",)


def test_set_overrides_replace_a_network(write_profile: Callable[..., Path]) -> None:
    policy = resolve_profile("webserver", {"admins": ["192.0.2.0/24", "2001:db8:5::/48"]})
    admins = policy.address_set("admins")
    assert (admins.ipv4, admins.ipv6) == (("192.0.2.0/24",), ("2001:db8:5::/48",))
    assert admins.origin == "--set admins"


def test_set_of_an_unknown_network_suggests_the_right_one() -> None:
    with pytest.raises(
        FwgenError, match=r"--set admin: unknown network 'admin' \(did you mean 'admins'\?\)"
    ):
        resolve_profile("webserver", {"admin": ["192.0.2.1"]})


def test_literal_sources_become_a_set_named_after_the_rule(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile(
        """\
        description: x
        inbound:
          - {port: 8443/tcp, name: admin-ui, from: [10.0.0.0/8, 10.1.0.0/16]}
        """
    )
    policy = resolve_profile(str(path))
    (rule,) = inbound(policy.rules, "admin-ui")
    assert rule.remote == "admin_ui_from"
    assert policy.address_set("admin_ui_from").ipv4 == ("10.0.0.0/8",)
    assert rule.families == ("ipv4",)


def test_services_split_by_protocol_and_keep_their_origin(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile("description: x\ninbound:\n  - service: dns\n")
    policy = resolve_profile(str(path))
    dns = inbound(policy.rules, "dns")
    assert [(r.proto, [str(p) for p in r.ports]) for r in dns] == [("tcp", ["53"]), ("udp", ["53"])]
    assert {r.origin for r in dns} == {f"{path.name}:3"}


def test_duplicates_from_extends_are_merged(write_profile: Callable[..., Path]) -> None:
    write_profile("description: p\ninbound: [{service: http}, {service: www}]\n", "parent.yaml")
    child = write_profile(
        "description: c\nextends: parent\ninbound: [{service: http}]\n", "child.yaml"
    )
    policy = resolve_profile(str(child))
    assert len(inbound(policy.rules, "http")) == 1
    assert inbound(policy.rules, "http")[0].origin.endswith("parent.yaml:2")


def test_port_ranges_are_merged_and_sorted() -> None:
    assert [str(r) for r in merge_ranges([(90, 95), (80, 80), (81, 85), (94, 100)])] == [
        "80-85",
        "90-100",
    ]


def test_unknown_names_are_all_reported(write_profile: Callable[..., Path]) -> None:
    path = write_profile(
        """\
        description: x
        inbound:
          - service: htps
          - service: ssh
            from: admn
          - icmp: [echo-requets]
        """
    )
    with pytest.raises(FwgenErrors) as err:
        resolve_profile(str(path))
    assert str(err.value).splitlines() == [
        f"{path.name}:3: inbound[0].service: unknown service 'htps' (did you mean 'https'?)",
        f"{path.name}:5: inbound[1].from: unknown network 'admn'; define it under `networks:`",
        f"{path.name}:6: inbound[2].icmp: unknown icmp type 'echo-requets' (did you mean 'echo-request'?)",
    ]


def test_self_referencing_network_is_an_error(write_profile: Callable[..., Path]) -> None:
    path = write_profile(
        "description: x\nnetworks:\n  a: [b]\n  b: [a]\ninbound: [{service: ssh, from: a}]\n"
    )
    with pytest.raises(FwgenError, match="refers to itself"):
        resolve_profile(str(path))


def test_outbound_rules_make_outbound_default_deny_and_keep_ipv6_working(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile(
        "description: x\noutbound:\n  - {service: dns, to: [192.0.2.53]}\n  - service: https\n"
    )
    policy = resolve_profile(str(path))
    assert policy.defaults.outbound == "drop"
    out = {(r.name, r.proto) for r in policy.rules if r.direction == "out"}
    assert out == {("dns", "tcp"), ("dns", "udp"), ("https", "tcp"), ("ipv6-essentials", "icmpv6")}
    essentials = next(r for r in policy.rules if r.name == "ipv6-essentials")
    assert "nd-neighbor-solicit" in essentials.icmp_types


def test_an_empty_network_gives_a_rule_for_no_family(write_profile: Callable[..., Path]) -> None:
    path = write_profile(
        "description: x\nnetworks: {lan: []}\ninbound: [{service: mysql, from: lan}]\n"
    )
    (rule,) = inbound(resolve_profile(str(path)).rules, "mysql")
    assert rule.families == ()


def test_ping_option_adds_rate_limited_echo_for_both_families() -> None:
    rules = inbound(resolve_profile("webserver").rules, "ping")
    assert [(r.proto, r.icmp_types, str(r.limit)) for r in rules] == [
        ("icmp", ("echo-request",), "5/second"),
        ("icmpv6", ("echo-request",), "5/second"),
    ]
    assert inbound(resolve_profile("workstation").rules, "ping") == []


def test_a_limit_takes_a_burst_and_the_prefixes_are_options(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile(
        """\
        description: x
        inbound:
          - {service: ssh, limit: {rate: 10/minute, burst: 25}}
          - {service: http, limit: 10/minute}
        options: {limit_prefix_v6: 56, limit_prefix_v4: 24}
        """
    )
    policy = resolve_profile(str(path))
    ssh, http = inbound(policy.rules, "ssh")[0], inbound(policy.rules, "http")[0]
    assert (ssh.limit and ssh.limit.burst, http.limit and http.limit.burst) == (25, 10)
    assert str(ssh.limit) == "10/minute burst 25" and str(http.limit) == "10/minute"
    assert (policy.limit_prefix_v4, policy.limit_prefix_v6) == (24, 56)
    defaults = resolve_profile("webserver")
    assert (defaults.limit_prefix_v4, defaults.limit_prefix_v6) == (32, 64)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{rate: 10/minute, burst: 0}", "burst must be 1 to 10000"),
        ("{rate: 10/minute, burst: 10001}", "burst must be 1 to 10000"),
        ("{rate: 10/minute, unit: minute}", "invalid limit"),
        ("{burst: 5}", "invalid limit"),
        ("{rate: 10/fortnight, burst: 5}", "invalid limit '10/fortnight'"),
    ],
)
def test_bad_limits_say_how_to_write_them(
    write_profile: Callable[..., Path], text: str, message: str
) -> None:
    path = write_profile(f"description: x\ninbound:\n  - {{service: ssh, limit: {text}}}\n")
    with pytest.raises(FwgenError, match=message) as info:
        resolve_profile(str(path))
    assert "host.yaml:3" in str(info.value)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("limit_prefix_v6: 129", "1 to 128"),
        ("limit_prefix_v4: 0", "1 to 32"),
        ("limit_prefix_v6: true", "integer"),
    ],
)
def test_limit_prefixes_are_checked(
    write_profile: Callable[..., Path], option: str, message: str
) -> None:
    path = write_profile(f"description: x\noptions:\n  {option}\n")
    with pytest.raises(FwgenError, match=message):
        resolve_profile(str(path))


def test_base_accepts_mld_queries_from_link_local_addresses() -> None:
    policy = resolve_profile("base")
    mld = [r for r in policy.rules if "mld-listener-query" in r.icmp_types]
    assert len(mld) == 1 and mld[0].direction == "in" and mld[0].remote is not None
    assert policy.address_set(mld[0].remote).ipv6 == ("fe80::/10",)
