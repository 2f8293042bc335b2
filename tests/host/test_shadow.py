"""Reading a shadow back from the kernel (`nft -j`), as untrusted input: elements with
unexpected contents, a foreign table named like the shadow's, a huge set."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fwgen.cli.common import load_policies, site_ports
from fwgen.errors import FwgenError
from fwgen.host.shadow import NotOurs, parse
from fwgen.host.shadowipt import parse as parse_iptables
from fwgen.review.shadowreport import as_json, as_text, report

NOW = 1_800_000_000.0
MARK = "fwgen shadow v1 prefix-v4=32 prefix-v6=64 size=16384 profile=webserver"
TIMEOUT = 3650 * 86400


def element(val: Any, packets: Any = 3, expires: Any = TIMEOUT - 60) -> dict[str, Any]:
    return {"elem": {"val": val, "expires": expires, "counter": {"packets": packets, "bytes": 180}}}


def shadow(elements: list[Any], mark: str = MARK, first: list[Any] | None = None) -> str:
    items: list[dict[str, Any]] = [
        {"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "inet", "name": "fwgen_shadow", "handle": 7}},
        {"counter": {"name": "in_full_v4", "table": "fwgen_shadow", "packets": 0, "bytes": 0}},
        {
            "set": {
                "name": "loaded",
                "table": "fwgen_shadow",
                "timeout": TIMEOUT,
                "elem": [{"elem": {"val": 0, "expires": TIMEOUT - 3600}}],
            }
        },
        {
            "set": {
                "name": "in_last_v4",
                "table": "fwgen_shadow",
                "timeout": TIMEOUT,
                "elem": elements,
            }
        },
        {
            "set": {
                "name": "in_first_v4",
                "table": "fwgen_shadow",
                "timeout": TIMEOUT,
                "elem": first or [],
            }
        },
        {"rule": {"table": "fwgen_shadow", "chain": "input", "comment": mark, "expr": []}},
    ]
    return json.dumps({"nftables": items})


def test_reads_counts_and_times() -> None:
    first = [{"elem": {"val": {"concat": ["198.51.100.7", "tcp", 3306]}, "expires": TIMEOUT - 600}}]
    table = parse(shadow([element({"concat": ["198.51.100.7", "tcp", 3306]})], first=first), NOW)
    assert table is not None and table.handle == 7
    (seen,) = table.recorded.sightings
    assert (seen.network, seen.proto, seen.port, seen.packets) == (
        "198.51.100.7/32",
        "tcp",
        3306,
        3,
    )
    assert (seen.first_seen, seen.last_seen) == (NOW - 600, NOW - 60)
    assert table.recorded.loaded_at == NOW - 3600


@pytest.mark.parametrize(
    "val",
    [
        "198.51.100.7",  # not a concatenation
        {"concat": ["198.51.100.7", "tcp"]},  # two fields
        {"concat": ["198.51.100.7\n", "tcp", 22]},  # a newline in the address
        {"concat": ["2001:db8::1", "tcp", 22]},  # IPv6 in the IPv4 set
        {"concat": ["198.51.100.7", "tcp", 70000]},  # no such port
        {"concat": ["198.51.100.7", "tcp", True]},  # a boolean for a port
        {"concat": ["198.51.100.7", "bogus;rm -rf /", 22]},  # no such protocol
        {"concat": [["198.51.100.7"], "tcp", 22]},
        {"concat": ["198.51.100.0/24", "tcp", 22]},  # a range where a prefix was made
    ],
)
def test_unexpected_elements_are_left_out_and_said(val: Any) -> None:
    table = parse(shadow([element(val), element({"concat": ["192.0.2.1", "udp", 53]})]), NOW)
    assert table is not None
    assert [s.network for s in table.recorded.sightings] == ["192.0.2.1/32"]
    assert table.recorded.ignored == ["set in_last_v4: 1 element with unexpected contents left out"]


@pytest.mark.parametrize("counter", [-1, "3", None, 1 << 70])
def test_unexpected_counters_are_left_out(counter: Any) -> None:
    table = parse(shadow([element({"concat": ["192.0.2.1", "udp", 53]}, packets=counter)]), NOW)
    assert table is not None and table.recorded.sightings == []
    assert table.recorded.ignored


def test_expiry_beyond_the_timeout_gives_no_time() -> None:
    table = parse(shadow([element({"concat": ["192.0.2.1", "udp", 53]}, expires=TIMEOUT * 2)]), NOW)
    assert table is not None and table.recorded.sightings[0].last_seen is None


@pytest.mark.parametrize(
    "mark",
    [
        "",
        "an admin's table",
        "fwgen shadow v1 prefix-v4=99 prefix-v6=64 size=1 profile=x",
        MARK[:-1] + "\n",
    ],
)
def test_a_foreign_table_named_like_the_shadow_is_refused(mark: str) -> None:
    with pytest.raises(NotOurs, match="not a shadow fwgen made"):
        parse(shadow([], mark=mark), NOW)


@pytest.mark.parametrize("text", ["", "[]", '{"nftables": 3}', "{" * 100000])
def test_output_that_is_not_nft_json(text: str) -> None:
    with pytest.raises(FwgenError, match="not nftables JSON"):
        parse(text, NOW)


def test_no_table_is_none() -> None:
    assert parse(json.dumps({"nftables": [{"metainfo": {}}]}), NOW) is None


def test_a_huge_set_is_read_and_grouped() -> None:
    """2^17 elements: one group per port, every source counted, the text stays short."""
    elements = [
        element(
            {
                "concat": [
                    f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
                    "tcp",
                    23 if i % 2 else 61999,
                ]
            },
            packets=1,
        )
        for i in range(1 << 17)
    ]
    table = parse(shadow(elements), NOW)
    assert table is not None and len(table.recorded.sightings) == 1 << 17
    cat = site_ports(None)
    (policy,) = load_policies(["webserver"], None, cat)
    groups = report(policy, table.recorded, cat)
    assert sorted((g.service, g.packets) for g in groups) == [
        ("port-61999-tcp", 1 << 16),
        ("telnet", 1 << 16),
    ]
    text = as_text(groups, table.recorded)
    assert len(text.splitlines()) < 60 and "+65520 more" in text
    assert len(as_json(groups, table.recorded)["groups"][0]["networks"]) == 1 << 16  # type: ignore[index]


def test_suggestions_carry_check_findings() -> None:
    table = parse(shadow([element({"concat": ["93.184.216.34", "tcp", 3306]})]), NOW)
    assert table is not None
    cat = site_ports(None)
    (policy,) = load_policies(["webserver"], None, cat)
    (mysql,) = report(policy, table.recorded, cat)
    assert mysql.lines == [
        "inbound:",
        "  - port: 3306/tcp",
        "    name: mysql",
        "    from: [93.184.216.34/32]",
    ]
    assert {f.code for f in mysql.findings} >= {"FW002", "FW004"}


# iptables: `iptables-save -c -t mangle` and `ipset save`, as untrusted as nft's JSON.
CHAIN = f"""\
*mangle
:FWGEN-SHADOW-IN - [0:0]
[0:0] -A FWGEN-SHADOW-IN -m conntrack ! --ctstate NEW -m comment --comment "{MARK}" -j RETURN
[3:180] -A FWGEN-SHADOW-IN -m comment --comment "fwgen shadow: the sets are full, not recorded" -j RETURN
COMMIT
"""
SETS = """\
add fwgen-shadow-loaded 0 timeout 2144083 comment "x"
add fwgen-shadow-count-in-v4 198.51.100.7,tcp:3306 packets 4 bytes 240
add fwgen-shadow-first-in-v4 198.51.100.7,tcp:3306 timeout 2147000
add fwgen-shadow-last-in-v4 198.51.100.7,tcp:3306 timeout 2147400
add fwgen-shadow-count-in-v4 198.51.100.7,icmp:8/0 packets 1 bytes 84
"""


def test_iptables_reads_counts_times_and_the_full_counter() -> None:
    table = parse_iptables({"ipv4": CHAIN, "ipv6": ""}, SETS, NOW)
    assert table is not None
    recorded = table.recorded
    assert recorded.loaded_at == NOW - 3400 and recorded.unrecorded == {("in", "ipv4"): 3}
    mysql, ping = recorded.sightings
    assert (mysql.network, mysql.port, mysql.packets) == ("198.51.100.7/32", 3306, 4)
    assert (mysql.first_seen, mysql.last_seen) == (NOW - 483, NOW - 83)
    assert (ping.proto, ping.port) == ("icmp", 0)


@pytest.mark.parametrize(
    "line",
    [
        "add fwgen-shadow-count-in-v4 198.51.100.7,tcp:99999 packets 1 bytes 1",
        "add fwgen-shadow-count-in-v4 2001:db8::1,tcp:22 packets 1 bytes 1",
        "add fwgen-shadow-count-in-v4 198.51.100.7,bogus:22 packets 1 bytes 1",
        "add fwgen-shadow-count-in-v4 198.51.100.7,tcp:22",
        'add fwgen-shadow-count-in-v4 198.51.100.7,tcp:22 packets 1 bytes 1 comment "x"',
        "add fwgen-shadow-count-in-v9 198.51.100.7,tcp:22 packets 1 bytes 1",
        "add fwgen-shadow-first-in-v4 198.51.100.7,tcp:22 timeout 99999999",
    ],
)
def test_iptables_unexpected_elements_are_left_out(line: str) -> None:
    table = parse_iptables({"ipv4": CHAIN, "ipv6": ""}, line + "\n", NOW)
    assert table is not None and table.recorded.sightings == []
    assert table.recorded.ignored == [
        "the shadow's ipsets: 1 elements with unexpected contents left out"
    ]


@pytest.mark.parametrize(
    "chain",
    [
        ":FWGEN-SHADOW-IN - [0:0]\n",
        ":FWGEN-SHADOW-IN - [0:0]\n[0:0] -A FWGEN-SHADOW-IN -j RETURN\n",
        CHAIN.replace(MARK, "an admin's chain"),
    ],
)
def test_iptables_a_foreign_chain_named_like_the_shadow_is_refused(chain: str) -> None:
    with pytest.raises(NotOurs, match="not a shadow fwgen made"):
        parse_iptables({"ipv4": chain, "ipv6": ""}, "", NOW)


def test_a_suggestion_pastes_into_a_profile_and_admits_what_was_seen(tmp_path: Any) -> None:
    elements = [
        element({"concat": ["93.184.216.34", "tcp", 3306]}),
        element({"concat": ["2001:db8:7::", "tcp", 3306]}),
        element({"concat": ["192.0.2.9", "tcp", 61999]}),
    ]
    items = json.loads(shadow(elements))
    v6 = {
        "set": {
            "name": "in_last_v6",
            "table": "fwgen_shadow",
            "timeout": TIMEOUT,
            "elem": [elements.pop(1)],
        }
    }
    items["nftables"].append(v6)
    table = parse(json.dumps(items), NOW)
    assert table is not None
    cat = site_ports(None)
    (policy,) = load_policies(["webserver"], None, cat)
    groups = report(policy, table.recorded, cat)
    profile = tmp_path / "pasted.yaml"
    pasted = [line for g in groups for line in g.lines if line != "inbound:"]
    profile.write_text(
        "description: pasted\nextends: webserver\ninbound:\n" + "\n".join(pasted) + "\n"
    )
    (after,) = load_policies([str(profile)], None, cat)
    rules = {r.name: r for r in after.rules}
    assert sorted(after.remote_addresses(rules["mysql"]) or []) == [
        "2001:db8:7::/64",
        "93.184.216.34",
    ]
    assert [str(p) for p in rules["mysql"].ports] == ["3306"]
    assert after.remote_addresses(rules["port-61999-tcp"]) == ["192.0.2.9"]


def test_a_protocol_without_ports_is_suggested_by_protocol() -> None:
    table = parse(shadow([element({"concat": ["93.184.216.34", "esp", 0]})]), NOW)
    assert table is not None
    cat = site_ports(None)
    (policy,) = load_policies(["webserver"], None, cat)
    (esp,) = report(policy, table.recorded, cat)
    assert (esp.service, esp.proto) == ("esp", "esp")
    assert esp.lines == ["inbound:", "  - protocol: esp", "    from: [93.184.216.34/32]"]
