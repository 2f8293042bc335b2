from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from fwgen.policy.resolve import resolve_profile
from fwgen.targets import RenderOptions
from fwgen.targets.render import render
from tests.conftest import BUILTIN, EVERY_FEATURE, nft_check
from tests.roundtrip import canonical, expected, parse_nftables
from tests.tricky import colliding_names


@pytest.mark.parametrize("profile", BUILTIN)
def test_builtin_profile_snapshot(profile: str, snapshot: SnapshotAssertion) -> None:
    files = render(resolve_profile(profile), "nftables")
    assert list(files) == ["fwgen.nft"]
    assert files["fwgen.nft"] == snapshot


@pytest.mark.parametrize("profile", BUILTIN)
def test_builtin_profile_passes_nft_check(profile: str) -> None:
    text = render(resolve_profile(profile), "nftables")["fwgen.nft"]
    result = nft_check(text)
    assert result.returncode == 0, result.stderr


def test_every_feature_passes_nft_check() -> None:
    path = EVERY_FEATURE
    text = render(resolve_profile(str(path)), "nftables")["fwgen.nft"]
    result = nft_check(text)
    assert result.returncode == 0, result.stderr
    assert "policy accept" in text.split("chain forward")[1]
    assert "chain output" in text and "hook output priority filter; policy drop;" in text
    assert "# matches nothing: network 'empty'" in text
    assert 'log prefix "fwgen input drop: "' in text


def test_forward_ignore_leaves_forwarding_alone(write_profile: Callable[..., Path]) -> None:
    path = write_profile("description: docker host\nextends: base\noptions: {forward: ignore}\n")
    text = render(resolve_profile(str(path)), "nftables")["fwgen.nft"]
    assert "chain forward" not in text
    assert "hook input priority filter; policy drop;" in text


def test_owns_its_table_unless_asked_to_flush() -> None:
    policy = resolve_profile("webserver")
    own = render(policy, "nftables")["fwgen.nft"]
    assert "\ntable inet fwgen\ndelete table inet fwgen\n" in own
    assert "flush ruleset" not in own
    flushed = render(policy, "nftables", RenderOptions(flush_ruleset=True))["fwgen.nft"]
    assert "\nflush ruleset\n" in flushed
    assert "delete table" not in flushed


def test_header_names_version_profile_and_digest_without_timestamps() -> None:
    policy = resolve_profile("webserver")
    text = render(policy, "nftables")["fwgen.nft"]
    lines = text.splitlines()
    assert lines[0] == "#!/usr/sbin/nft -f"
    assert "profile 'webserver'" in lines[1] and "fwgen 0.5.0" in lines[1]
    assert any(line.startswith(f"# Inputs sha256: {policy.digest()} (") for line in lines)
    assert any(line.startswith(f"# Admits sha256: {policy.admits_digest()} (") for line in lines)
    assert policy.digest() != resolve_profile("webserver", {"admins": ["192.0.2.1"]}).digest()


def test_hostile_text_cannot_escape_nft_strings_or_comments(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile(
        """\
        description: 'x" ; flush ruleset ; # \\'
        inbound:
          - {port: 80/tcp, name: web, comment: 'a" accept; flush ruleset; comment "b'}
        """
    )
    text = render(resolve_profile(str(path)), "nftables")["fwgen.nft"]
    assert nft_check(text).returncode == 0
    assert 'comment "web: a? accept; flush ruleset; comment ?b"' in text
    assert [
        line
        for line in text.splitlines()
        if "flush ruleset" in line and not line.lstrip().startswith("#") and "comment" not in line
    ] == []


def test_meter_names_avoid_address_set_names(write_profile: Callable[..., Path]) -> None:
    """Networks named limit_ssh, limit_ssh_2 and limit_ping beside limited rules named
    ssh (twice) and ping: the per-source meters take other names, and nft loads the file."""
    policy = resolve_profile(str(write_profile(json.dumps(colliding_names()))))
    text = render(policy, "nftables")["fwgen.nft"]
    names = re.findall(r"^\tset (\S+) \{$", text, re.M)
    assert len(names) == len(set(names))
    assert {"limit_ssh_v4", "limit_ssh_2_v4", "limit_ping_v4"} <= set(names)
    meters = re.findall(r" update @(\S+) ", text)
    assert len(meters) == 28 and not set(meters) & set(re.findall(r" saddr @(\S+) ", text))
    result = nft_check(text)
    assert result.returncode == 0, result.stderr
    assert canonical(parse_nftables(text)) == canonical(expected(policy))
