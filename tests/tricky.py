"""Profiles that stress the names targets give things: the longest names a profile
allows, names that share a long prefix, names that collide once a target adds its own
prefix or suffix, many rules, and rules that differ only in `log` or `limit`.

Each is a dict (YAML is a superset of JSON, so `json.dumps` writes the profile)."""

from __future__ import annotations

from typing import Any

IPSET_FROM = 17  # one more than fwgen's ipset threshold: these lists become ipsets

RACK_A = "datacenter_frankfurt_rack_one_a"  # two network names sharing a 30-character prefix
RACK_B = "datacenter_frankfurt_rack_one_b"
LONGEST = "n" + "2345678901" * 3 + "2"  # 32 characters, the most a network name may have
FITS = "fits_as_it_is_twenty"  # 20 characters: the longest that needs no shortening
TOO_LONG = "needs_shortening_21ch"  # 21
RULE_48 = "admin-console-for-the-frankfurt-datacenter-racks"  # the most a rule name may have


def addresses(i: int, count: int = IPSET_FROM) -> list[str]:
    """*count* IPv4 and *count* IPv6 networks, none adjacent (so none merge), distinct per *i*."""
    return [f"10.{i}.{2 * j}.0/24" for j in range(count)] + [
        f"2001:db8:{i:x}:{2 * j:x}::/64" for j in range(count)
    ]


def long_names() -> dict[str, Any]:
    networks = {name: addresses(i + 1) for i, name in enumerate([RACK_A, RACK_B, LONGEST])}
    networks[FITS] = addresses(4)
    networks[TOO_LONG] = addresses(5)
    return {
        "description": "long and shared-prefix names",
        "extends": "base",
        "networks": networks,
        "inbound": [
            {"service": "ssh", "from": RACK_A, "limit": "3/minute", "log": True},
            {"service": "http", "from": RACK_B},
            {"service": "https", "from": LONGEST},
            {"port": "8020/tcp", "name": "twenty", "from": FITS},
            {"port": "8021/tcp", "name": "twenty-one", "from": TOO_LONG},
            # Two rules of one name with literal lists: sets RULE_48_from and RULE_48_from_2.
            {"port": "9000/tcp", "name": RULE_48, "from": addresses(6), "limit": "1/second"},
            {"port": "9001/tcp", "name": RULE_48, "from": addresses(7), "log": True},
        ],
        "outbound": [
            {"service": "dns", "to": RACK_A},
            {"port": "9002/tcp", "name": RULE_48, "to": addresses(8), "limit": "2/second"},
        ],
    }


def colliding_names() -> dict[str, Any]:
    """Networks named like what targets derive from rule names (nft meters are
    ``limit_RULE``), and rules that differ only in what some targets cannot show."""
    return {
        "description": "names that collide once targets derive their own",
        "extends": "base",  # ping: a limited rule named ping
        "networks": {
            "limit_ssh": ["192.0.2.0/24", "2001:db8:1::/48"],
            "limit_ssh_2": ["198.51.100.0/24", "2001:db8:2::/48"],
            "limit_ping": ["203.0.113.0/24", "2001:db8:3::/48"],
            "limit_web": ["192.0.2.7", "2001:db8:1::7"],
            "fw_web": ["192.0.2.8"],
        },
        "inbound": [
            {"service": "ssh", "limit": "3/minute"},
            {"service": "ssh", "from": "limit_ssh", "limit": "10/minute"},
            {"service": "ssh", "from": "limit_ssh_2"},
            {"port": "8443/tcp", "name": "web", "from": "limit_ping"},
            {"port": "8080/tcp", "name": "web", "from": "limit_web", "limit": "5/second"},
            {"port": "8080/tcp", "name": "web", "from": "fw_web"},
            # Twins: the same but for log, for limit, for both, for the name's case.
            {"port": "8081/tcp", "name": "web"},
            {"port": "8081/tcp", "name": "web", "log": True},
            {"port": "8081/tcp", "name": "web", "limit": "1/second"},
            {"port": "8081/tcp", "name": "web", "limit": "2/second"},
            {"port": "8081/tcp", "name": "web", "limit": "2/second", "log": True},
            {"port": "8082/tcp", "name": "Web"},
            {"port": "8082/tcp", "name": "web"},
            # A service and a literal port of the same name and port.
            {"service": "http"},
            {"port": "80/tcp", "name": "http"},
        ],
    }


def many_rules(count: int = 40) -> dict[str, Any]:
    """Many limited, logged rules whose names agree in their first 20 characters."""
    inbound: list[dict[str, Any]] = []
    for i in range(count):
        rule: dict[str, Any] = {
            "port": f"{10000 + i}/tcp",
            "name": f"frontend_service_instance_{i:03d}",
            "limit": f"{i + 1}/minute",
            "log": i % 2 == 0,
        }
        if i % 3 == 0:
            rule["from"] = [f"192.0.2.{i}", f"2001:db8::{i:x}"]
        inbound.append(rule)
    return {
        "description": "many limited and logged rules",
        "extends": "base",
        "inbound": inbound,
    }


TRICKY = {
    "long-names": long_names,
    "colliding-names": colliding_names,
    "many-rules": many_rules,
}
