"""Windows cannot be loaded here, so the generated script is parsed back into
rules and compared with the Policy: nothing added, lost, widened or narrowed."""

from __future__ import annotations

import pytest

from fwgen.render import render
from fwgen.resolve import resolve_profile
from tests.conftest import BUILTIN, EVERY_FEATURE
from tests.roundtrip import canonical, expected, parse_windows


@pytest.mark.parametrize("profile", [*BUILTIN, EVERY_FEATURE])
def test_script_means_exactly_the_policy(profile: str) -> None:
    policy = resolve_profile(profile)
    parsed = parse_windows(render(policy, "windows")["fwgen.ps1"])
    assert parsed  # a profile with no rules would make this test vacuous
    assert canonical(parsed) == canonical(expected(policy))


def test_the_parser_notices_a_widened_rule() -> None:
    policy = resolve_profile("webserver")
    script = render(policy, "windows")["fwgen.ps1"]
    widened = script.replace(" -RemoteAddress '198.51.100.0/24','2001:db8:100::/48'", "")
    assert widened != script
    assert canonical(parse_windows(widened)) != canonical(expected(policy))
