"""Every target's output for the tricky profiles (tests/tricky.py) loads: nft checks it,
ipset and iptables-restore take it in a private network namespace, the PowerShell
parses and names each rule once; and each reads back as exactly the Policy.

What loading cannot show is checked too: no two rules share an iptables hashlimit
bucket, and no two ufw commands are the same rule to ufw or carry the same tag."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from fwgen.policy.ir import Policy
from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render
from tests.conftest import iptables_load_test, nft_check
from tests.roundtrip import (
    canonical,
    expected,
    parse_iptables,
    parse_nftables,
    parse_ufw,
    parse_windows,
)
from tests.targets.test_ufw import UFW_LINE, commands
from tests.targets.test_windows import parse_errors, rule_names
from tests.tricky import TRICKY


@pytest.fixture(params=sorted(TRICKY))
def policy(request: pytest.FixtureRequest, write_profile: Callable[..., Path]) -> Policy:
    return resolve_profile(str(write_profile(json.dumps(TRICKY[request.param]()))))


def test_nftables_loads(policy: Policy) -> None:
    text = render(policy, "nftables")["fwgen.nft"]
    result = nft_check(text)
    assert result.returncode == 0, result.stderr
    assert canonical(parse_nftables(text)) == canonical(expected(policy))


def test_iptables_and_ipsets_load(policy: Policy) -> None:
    files = render(policy, "iptables")
    result = iptables_load_test(files)
    assert result.returncode == 0, result.stderr
    kernel = {**files, "ipsets": result.stdout}  # the sets as the kernel holds them
    assert canonical(parse_iptables(kernel)) == canonical(expected(policy))


def test_iptables_rules_share_no_hashlimit_bucket(policy: Policy) -> None:
    """A limited rule has a bucket of its own per source and per /16, and a second of
    each for its LOG line if logged."""
    files = render(policy, "iptables")
    for name, family in (("rules.v4", "ipv4"), ("rules.v6", "ipv6")):
        buckets = set(re.findall(r"--hashlimit-name (\S+)", files[name]))
        assert all(len(b) <= 15 for b in buckets)
        limited = [r for r in policy.rules if r.limit and family in r.families]
        assert len(buckets) == sum(4 if r.log else 2 for r in limited)


def test_ufw_has_one_command_per_ufw_rule_and_one_tag_per_command(policy: Policy) -> None:
    """ufw replaces a rule by one that differs only in allow/limit, log or comment."""
    script = render(policy, "ufw")["fwgen-ufw.sh"]
    seen: set[str] = set()
    tags: set[str] = set()
    for line in commands(script):
        assert UFW_LINE.match(line), line
        spec, tag = re.fullmatch(r"ufw (.*) comment 'fwgen: \S+ \[(\w+)\]'", line).groups()  # type: ignore[union-attr]
        same_to_ufw = re.sub(r"^(?:allow|limit)((?: in| out)(?: on \S+)?)?(?: log)? ", r"\1 ", spec)
        assert same_to_ufw not in seen and tag not in tags, line
        seen.add(same_to_ufw)
        tags.add(tag)
    assert canonical(parse_ufw(script)) == canonical(expected(policy))


def test_windows_parses_and_names_each_rule_once(policy: Policy) -> None:
    script = render(policy, "windows")["fwgen.ps1"]
    assert parse_errors(script) == []
    names = rule_names(script)
    assert len(set(names)) == len(names) >= sum(1 for r in policy.rules if r.families)
    assert canonical(parse_windows(script)) == canonical(expected(policy))
