from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from fwgen.render import render
from fwgen.resolve import resolve_profile
from fwgen.targets import RenderOptions
from tests.conftest import BUILTIN, EVERY_FEATURE, nft_check


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
    assert "profile 'webserver'" in lines[1] and "fwgen 0.1.0" in lines[1]
    assert f"# Policy sha256: {policy.digest()}" in lines
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
