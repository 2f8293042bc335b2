"""nftables rulesets in a real kernel: loading, coexistence, and what passes."""

from __future__ import annotations

import pytest

from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render
from tests.kernel.lab import Lab

pytestmark = pytest.mark.kernel


def webserver(lab: Lab) -> str:
    trusted = lab.clients["trusted"]
    policy = resolve_profile("webserver", {"admins": [trusted.ipv4, trusted.ipv6]})
    return render(policy, "nftables")["fwgen.nft"]


def test_loads_twice_and_leaves_foreign_tables_alone(lab: Lab) -> None:
    lab.nft(
        "table ip docker {\n chain forwarding { type filter hook forward priority 0; policy accept; }\n}\n"
    )
    text = webserver(lab)
    lab.nft(text)
    lab.nft(text)
    tables = lab.run(lab.server, "nft", "list", "tables")
    assert tables.split("\n") == ["table ip docker", "table inet fwgen", ""]
    assert "policy accept" in lab.run(lab.server, "nft", "list", "table", "ip", "docker")


def load(lab: Lab, target: str, policy_profile: str = "webserver") -> None:
    trusted = lab.clients["trusted"]
    policy = resolve_profile(policy_profile, {"admins": [trusted.ipv4, trusted.ipv6]})
    lab.apply(target, render(policy, target))


@pytest.mark.parametrize("target", ["nftables", "iptables", "ufw"])
def test_webserver_allows_exactly_its_services(lab: Lab, target: str) -> None:
    load(lab, target)
    specs = ["tcp:22", "tcp:80", "tcp:443", "udp:443", "tcp:3306", "udp:53"]
    lab.listen(specs)
    seen = lab.matrix(specs)
    expected = {}
    for client in ("trusted", "outside"):
        for family in ("ipv4", "ipv6"):
            for spec in specs:
                is_open = spec in ("tcp:80", "tcp:443", "udp:443") or (
                    spec == "tcp:22" and client == "trusted"
                )
                expected[(client, family, spec)] = "open" if is_open else "blocked"
    assert seen == expected


def test_flush_ruleset_takes_over_everything(lab: Lab) -> None:
    from fwgen.targets import RenderOptions

    lab.nft("table ip other {\n}\n")
    policy = resolve_profile("webserver")
    lab.nft(render(policy, "nftables", RenderOptions(flush_ruleset=True))["fwgen.nft"])
    assert lab.run(lab.server, "nft", "list", "tables").split("\n") == ["table inet fwgen", ""]


def test_iptables_flush_ruleset_takes_over_nat_mangle_and_raw(lab: Lab) -> None:
    """iptables-restore replaces the filter table only; --flush-ruleset empties the
    other tables too, as `flush ruleset` does for nftables."""
    from fwgen.targets import RenderOptions

    tables = {"nat": "POSTROUTING", "mangle": "PREROUTING", "raw": "PREROUTING"}

    def added(tool: str, table: str) -> list[str]:
        listed = lab.run(lab.server, tool, "-t", table, "-S")
        return [line for line in listed.splitlines() if line.startswith(("-A", "-N"))]

    for tool in ("iptables", "ip6tables"):
        for table, chain in tables.items():
            lab.run(lab.server, tool, "-t", table, "-N", "OTHER")
            lab.run(lab.server, tool, "-t", table, "-A", chain, "-j", "OTHER")
    policy = resolve_profile("webserver")
    lab.apply("iptables", render(policy, "iptables"))
    for tool in ("iptables", "ip6tables"):
        for table in tables:
            assert len(added(tool, table)) == 2, (tool, table)  # another program's: kept
    lab.apply("iptables", render(policy, "iptables", RenderOptions(flush_ruleset=True)))
    for tool in ("iptables", "ip6tables"):
        for table in tables:
            assert added(tool, table) == [], (tool, table)
