from __future__ import annotations

import gc
import ipaddress
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.errors import FwgenError
from fwgen.policy.resolve import resolve_profile
from fwgen.profile.addresses import collapse, parse_network, read_list
from fwgen.targets.render import render, render_with_warnings

runner = CliRunner()

v4 = st.builds(
    lambda a, p: str(ipaddress.IPv4Network((a, p), strict=False)),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
v6 = st.builds(
    lambda a, p: str(ipaddress.IPv6Network((a, p), strict=False)),
    st.integers(0, 2**128 - 1),
    st.integers(0, 128),
).filter(lambda n: ipaddress.IPv6Network(n).network_address.ipv4_mapped is None)


def reference(items: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    def text(n: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
        return str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n)

    nets = [ipaddress.ip_network(i, strict=False) for i in items]
    return (
        tuple(map(text, ipaddress.collapse_addresses(n for n in nets if n.version == 4))),
        tuple(map(text, ipaddress.collapse_addresses(n for n in nets if n.version == 6))),
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(v4, v6), max_size=40))
def test_collapse_agrees_with_ipaddress(items: list[str]) -> None:
    assert collapse(parse_network(i) for i in items) == reference(items)


@pytest.mark.parametrize(
    "bad",
    ["10.0.0.256", "10.0.0.0/33", "2001:db8::/129", "1.2.3", "", "10.0.0.0/-1", "10.0.0.0/\u00b2"],
)
def test_bad_networks_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid address or CIDR"):
        parse_network(bad)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "203.0.113.77/24",
            "'203.0.113.77/24': host bits set; did you mean 203.0.113.0/24 or 203.0.113.77/32?",
        ),
        (
            "192.168.1.0/0",
            "'192.168.1.0/0': host bits set; did you mean 0.0.0.0/0 or 192.168.1.0/32?",
        ),
        (
            "2001:db8::1/32",
            "'2001:db8::1/32': host bits set; did you mean 2001:db8::/32 or 2001:db8::1/128?",
        ),
        ("10.0.0.0/255.0.0.0", "'10.0.0.0/255.0.0.0': netmask notation is not supported; write /N"),
        ("fe80::1%eth0", "'fe80::1%eth0': a zone id (%...) names an interface"),
        ("fe80::1%lo\n-A INPUT -j ACCEPT", "'fe80::1%lo?-A INPUT -j ACCEPT': a zone id"),
        ("::ffff:192.0.2.0/120", "'::ffff:192.0.2.0/120': IPv4-mapped IPv6 addresses never appear"),
    ],
)
def test_addresses_that_would_widen_or_mislead_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_network(text)
    assert str(err.value).startswith(message)


def test_file_lists_mix_with_literals_and_are_collapsed(
    write_profile: Callable[..., Path], tmp_path: Path
) -> None:
    (tmp_path / "feed.txt").write_text(
        "# a feed\n192.0.2.1\n192.0.2.0   # covered by the /24 below\n\n2001:db8::/64\n"
    )
    path = write_profile(
        "description: x\nnetworks:\n  feed: [{file: feed.txt}, 192.0.2.0/24, 198.51.100.7]\n"
        "inbound: [{service: ssh, from: feed}]\n"
    )
    feed = resolve_profile(str(path)).address_set("feed")
    assert feed.ipv4 == ("192.0.2.0/24", "198.51.100.7")
    assert feed.ipv6 == ("2001:db8::/64",)


def test_bad_entry_in_a_list_file_names_its_file_and_line(
    write_profile: Callable[..., Path], tmp_path: Path
) -> None:
    sub = tmp_path / "lists"
    sub.mkdir()
    (sub / "feed.txt").write_text("192.0.2.1\n# fine\n192.0.2.300\n")
    path = write_profile(
        "description: x\nnetworks:\n  feed: [{file: lists/feed.txt}]\ninbound: [{service: ssh, from: feed}]\n"
    )
    with pytest.raises(FwgenError) as err:
        resolve_profile(str(path))
    assert str(err.value) == "lists/feed.txt:3: invalid address or CIDR '192.0.2.300'"


def test_missing_list_file_is_a_user_error(
    write_profile: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_profile(
        "description: x\nnetworks:\n  feed: [{file: nope.txt}]\ninbound: [{service: ssh, from: feed}]\n"
    )
    result = runner.invoke(app, ["render", str(path), "-t", "nftables"])
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"error: {path.name}:3: networks.feed[0]: address list file not found: nope.txt\n"
    )


def big_profile(tmp_path: Path, count: int) -> Path:
    (tmp_path / "feed.txt").write_text(
        "".join(f"10.{i >> 8 & 255}.{i & 255}.{(i % 2) * 2}\n" for i in range(count))
    )
    path = tmp_path / "big.yaml"
    path.write_text(
        "description: big\nnetworks:\n  feed: [{file: feed.txt}]\ninbound: [{service: ssh, from: feed}]\n"
    )
    return path


def test_nftables_rule_count_does_not_grow_with_the_list(tmp_path: Path) -> None:
    small = render(resolve_profile(str(big_profile(tmp_path, 10))), "nftables")["fwgen.nft"]
    large = render(resolve_profile(str(big_profile(tmp_path, 5000))), "nftables")["fwgen.nft"]

    def rules(text: str) -> int:
        return sum(
            1
            for line in text.split("chain input")[1].splitlines()
            if line.strip().endswith(("accept", "drop")) or "accept comment" in line
        )

    assert rules(small) == rules(large)
    assert large.count("10.") > 4000


def test_iptables_uses_an_ipset_for_large_lists(tmp_path: Path) -> None:
    files = render(resolve_profile(str(big_profile(tmp_path, 5000))), "iptables")
    assert "ipsets" in files
    assert files["ipsets"].count("\nadd fwgen-feed-v4-n ") == 5000
    assert (
        "create fwgen-feed-v4 hash:net family inet hashsize 1024 maxelem 2097152 -exist"
        in files["ipsets"]
    )
    ssh = [line for line in files["rules.v4"].splitlines() if "--dport 22" in line]
    assert (
        ssh == [line for line in ssh if "-m set --match-set fwgen-feed-v4 src" in line]
        and len(ssh) == 1
    )
    small = render(resolve_profile("webserver"), "iptables")
    # a handful of addresses stay plain rules: the only ipsets are the rate limits' trackers
    assert not re.search(r"^create fwgen-", small["ipsets"], re.M)


def test_ufw_warns_above_100_and_refuses_above_1000_addresses(tmp_path: Path) -> None:
    _, warnings = render_with_warnings(resolve_profile(str(big_profile(tmp_path, 200))), "ufw")
    assert any("has 200 addresses" in w for w in warnings)
    result = runner.invoke(app, ["render", str(big_profile(tmp_path, 1500)), "-t", "ufw"])
    assert result.exit_code == 2
    assert "has 1500 addresses" in result.stderr and "stops at 1000" in result.stderr


def test_windows_splits_long_address_lists(tmp_path: Path) -> None:
    script = render(resolve_profile(str(big_profile(tmp_path, 2500))), "windows")["fwgen.ps1"]
    ssh = [
        line
        for line in script.splitlines()
        if re.search(r"\{ New-NetFirewallRule -Name 'fwgen-[0-9a-f]{12}-ssh-", line)
    ]
    assert len(ssh) == 3
    assert [line.count("'10.") for line in ssh] == [1000, 1000, 500]
    assert len({line.split("'")[1] for line in ssh}) == 3  # distinct stable names


def test_reading_a_list_leaves_the_cycle_collector_as_it_was(tmp_path: Path) -> None:
    bad = tmp_path / "feed.txt"
    bad.write_text("192.0.2.1\nnot-an-address\n")
    assert gc.isenabled()
    with pytest.raises(FwgenError, match=r"feed\.txt:2"):
        read_list(bad, "feed.txt")
    assert gc.isenabled()
    gc.disable()
    try:
        assert collapse([parse_network("::1")]) == ((), ("::1",))
        assert not gc.isenabled()
    finally:
        gc.enable()
