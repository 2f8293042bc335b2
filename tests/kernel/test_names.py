"""What targets name, in a real kernel. The tricky profiles (tests/tricky.py): every
target's output loads, and loads again, as the next configuration run does. Address
sets whose names share a long prefix each admit their own clients. A rate limit changed
in place takes effect on reload, although the kernel keeps a hashlimit bucket by name."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render
from tests.kernel.lab import Lab
from tests.tricky import RACK_A, RACK_B, RULE_48, TRICKY, addresses

pytestmark = pytest.mark.kernel


LOADS = [
    (target, profile)
    for target in ("nftables", "iptables", "ufw")
    for profile in sorted(TRICKY)
    if (target, profile) != ("ufw", "long-names")  # 270 ufw commands, twice: two minutes
]


@pytest.mark.parametrize(("target", "profile"), LOADS)
def test_loads_and_loads_again(
    lab: Lab, target: str, profile: str, write_profile: Callable[..., Path]
) -> None:
    files = render(resolve_profile(str(write_profile(json.dumps(TRICKY[profile]())))), target)
    lab.apply(target, files)
    if target == "ufw":  # the second run changes nothing
        again = lab.ufw(files["fwgen-ufw.sh"])
        for change in ("Rule added", "Rule deleted", "Rules updated", "Rule updated"):
            assert change not in again
    else:
        lab.apply(target, files)
    if "ipsets" in files:  # the sets the file creates, and none of their temporaries
        created = {
            line.split()[1] for line in files["ipsets"].splitlines() if line[:7] == "create "
        }
        listed = set(lab.run(lab.server, "ipset", "list", "-n").split())
        assert listed == {name for name in created if not name.endswith("-n")}


def test_sets_sharing_a_long_prefix_admit_their_own_clients(
    lab: Lab, write_profile: Callable[..., Path]
) -> None:
    """Two networks whose 31-character names differ in the last, and two literal lists
    of one 48-character rule name, each over the ipset threshold: each port opens to
    its own client only, under nftables and under iptables with ipsets."""
    trusted, outside = lab.clients["trusted"], lab.clients["outside"]

    def of(client: Any, i: int) -> list[str]:  # i > 2: the fillers stay off the lab's links
        return [client.ipv4, client.ipv6, *addresses(i, 16)]

    profile = {
        "description": "shared prefixes",
        "extends": "base",
        "networks": {RACK_A: of(trusted, 11), RACK_B: of(outside, 12)},
        "inbound": [
            {"service": "ssh", "from": RACK_A},
            {"service": "http", "from": RACK_B},
            {"port": "8080/tcp", "name": RULE_48, "from": of(outside, 13)},
            {"port": "8081/tcp", "name": RULE_48, "from": of(trusted, 14)},
        ],
    }
    policy = resolve_profile(str(write_profile(json.dumps(profile))))
    assert len(policy.sets) == 5  # and base's mld_query_from
    specs = ["tcp:22", "tcp:80", "tcp:8080", "tcp:8081"]
    lab.listen(specs)
    mine = {"trusted": {"tcp:22", "tcp:8081"}, "outside": {"tcp:80", "tcp:8080"}}
    want = {
        (client, family, spec): "open" if spec in mine[client] else "blocked"
        for client in mine
        for family in ("ipv4", "ipv6")
        for spec in specs
    }
    for target in ("nftables", "iptables"):
        files = render(policy, target)
        # four sets, two families, each with its -n twin (and ping's rate-limit trackers)
        assert target == "nftables" or files["ipsets"].count("\ncreate fwgen-") == 4 * 2 * 2
        lab.apply(target, files)
        assert lab.matrix(specs) == want, target
        if target == "nftables":
            lab.run(lab.server, "nft", "delete", "table", "inet", "fwgen")


@pytest.mark.parametrize("target", ["nftables", "iptables"])
def test_a_changed_rate_limit_takes_effect_on_reload(
    lab: Lab, target: str, write_profile: Callable[..., Path]
) -> None:
    """xt_hashlimit reuses a bucket of the same name, settings and all, while any rule
    names it; iptables-restore checks the new rules before the old ones go."""

    def files(rate: str) -> dict[str, str]:
        profile = {"description": "d", "inbound": [{"service": "ssh", "limit": rate}]}
        return render(resolve_profile(str(write_profile(json.dumps(profile)))), target)

    lab.apply(target, files("2/minute"))
    lab.listen(["tcp:22"])
    assert lab.burst("trusted", "ipv4", 22, 3) == [True, True, False]
    lab.apply(target, files("100/second"))
    assert lab.burst("trusted", "ipv4", 22, 5) == [True] * 5
