from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.policy.ir import PortRange
from fwgen.policy.resolve import resolve_profile
from fwgen.targets.iptables import port_groups
from fwgen.targets.render import render, render_with_warnings
from tests.conftest import BUILTIN, EVERY_FEATURE, iptables_load_test, restore_test
from tests.roundtrip import canonical, expected, parse_iptables
from tests.tricky import long_names

FAMILIES = {"rules.v4": "ipv4", "rules.v6": "ipv6"}


@pytest.mark.parametrize("profile", BUILTIN)
def test_builtin_profile_snapshot(profile: str, snapshot: SnapshotAssertion) -> None:
    policy = resolve_profile(profile)
    files = render(policy, "iptables")
    loader = ["fwgen-iptables.sh"] if profile == "docker-host" else []  # coexist mode
    trackers = ["ipsets"] if any(rule.limit for rule in policy.rules) else []  # rate limits
    assert list(files) == [*trackers, "rules.v4", "rules.v6", *loader]
    assert files == snapshot


@pytest.mark.parametrize("profile", BUILTIN)
def test_builtin_profile_passes_restore_test(profile: str) -> None:
    result = iptables_load_test(render(resolve_profile(profile), "iptables"))
    assert result.returncode == 0, result.stderr


def test_ipv6_file_is_default_deny_even_for_an_ipv4_only_profile(
    write_profile: Callable[..., Path],
) -> None:
    path = write_profile("description: v4\ninbound: [{service: ssh, from: [192.0.2.0/24]}]\n")
    v6 = render(resolve_profile(str(path)), "iptables")["rules.v6"]
    assert ":INPUT DROP [0:0]" in v6 and ":FORWARD DROP [0:0]" in v6
    assert "--dport 22" not in v6


def test_multiport_splits_beyond_15_slots() -> None:
    ports = (
        *tuple(PortRange(start=p, end=p) for p in range(1000, 1020)),
        PortRange(start=2000, end=2010),
    )
    groups = port_groups(ports)
    assert [len(g) for g in groups] == [15, 6]
    assert groups[1][-1] == "2000:2010"
    slots = [sum(2 if ":" in p else 1 for p in g) for g in groups]
    assert max(slots) <= 15


def test_every_feature_passes_restore_test() -> None:
    path = EVERY_FEATURE
    files = render(resolve_profile(str(path)), "iptables")
    result = iptables_load_test(files)
    assert result.returncode == 0, result.stderr
    v4 = files["rules.v4"]
    assert ":OUTPUT DROP [0:0]" in v4
    many = [line for line in v4.splitlines() if '--comment "many"' in line]
    assert len(many) == 2  # 15 slots, then the rest
    assert "--dports 1000:1001,1003," in many[0] and "--dport 1029 " in many[1]
    assert "# matches nothing: network 'empty'" in v4
    assert "-d 224.0.0.251 -p udp -m udp --dport 5353" in v4
    assert "-j LOG --log-prefix" in v4


def test_forward_ignore_is_approximated_with_a_warning(write_profile: Callable[..., Path]) -> None:
    path = write_profile("description: d\noptions: {forward: ignore}\n")
    files, warnings = render_with_warnings(resolve_profile(str(path)), "iptables")
    assert len(warnings) == 1 and "forward: ignore" in warnings[0]
    assert "# APPROXIMATED: forward: ignore" in files["rules.v4"]
    assert ":FORWARD ACCEPT [0:0]" in files["rules.v4"]


def test_cli_prints_both_files_or_one_family(tmp_path: Path) -> None:
    runner = CliRunner()
    both = runner.invoke(app, ["render", "webserver", "-t", "iptables"])
    assert both.exit_code == 0
    assert both.stdout.startswith("# ==> ipsets <==\n")  # the rate limits' trackers
    assert "\n# ==> rules.v4 <==\n" in both.stdout
    assert "\n# ==> rules.v6 <==\n" in both.stdout
    v6 = runner.invoke(app, ["render", "webserver", "-t", "iptables", "--family", "ipv6"])
    assert v6.exit_code == 0 and "==>" not in v6.stdout and "2001:db8:100::/48" in v6.stdout
    result = runner.invoke(
        app, ["render", "webserver", "-t", "iptables", "-o", str(tmp_path / "out")]
    )
    assert result.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "ipsets",
        "rules.v4",
        "rules.v6",
    ]


def test_hostile_comment_stays_inside_its_quotes(write_profile: Callable[..., Path]) -> None:
    path = write_profile(
        "description: x\ninbound:\n  - {port: 80/tcp, name: web, comment: 'a\" -j ACCEPT\\nCOMMIT'}\n"
    )
    files = render(resolve_profile(str(path)), "iptables")
    assert restore_test(files["rules.v4"], "ipv4").returncode == 0
    assert '--comment "web: a? -j ACCEPT?nCOMMIT"' in files["rules.v4"]


def test_long_and_shared_prefix_set_names_load_as_distinct_ipsets(
    write_profile: Callable[..., Path],
) -> None:
    """Network names of 20, 21 and 32 characters, two sharing 30, and rule-named
    literal sets of 50+: every ipset name (and its temporary swap name) fits ipset's
    31 characters, the sets load, and each rule matches its own set's addresses."""
    policy = resolve_profile(str(write_profile(json.dumps(long_names()))))
    files = render(policy, "iptables")
    names = re.findall(r"^create (fwgen-\S+) ", files["ipsets"], re.M)  # not the trackers
    assert len(names) == 2 * 2 * 8  # 8 sets over 16 addresses, two families, and their -n
    assert len(set(names)) == len(names) and max(map(len, names)) <= 31
    assert "fwgen-fits_as_it_is_twenty-v4" in names  # short enough to stay readable
    loaded = iptables_load_test(files)
    assert loaded.returncode == 0, loaded.stderr
    kernel = {**files, "ipsets": loaded.stdout}  # the sets as `ipset save` prints them
    assert canonical(parse_iptables(kernel)) == canonical(expected(policy))


def test_a_changed_rate_limit_names_new_buckets(write_profile: Callable[..., Path]) -> None:
    """The kernel keeps a hashlimit bucket's settings while a rule names it, reloads too."""

    def buckets(rate: str) -> list[str]:
        path = write_profile(
            f"description: d\ninbound: [{{service: ssh, limit: {rate}, log: true}}]\n"
        )
        v4 = render(resolve_profile(str(path)), "iptables")["rules.v4"]
        return re.findall(r"--hashlimit-name (\S+)", v4)

    assert buckets("3/minute") == buckets("3/minute")
    assert len(set(buckets("3/minute"))) == 4  # LOG's and ACCEPT's, per source and per /16
    assert not set(buckets("3/minute")) & set(buckets("4/minute"))


def test_flush_ruleset_empties_the_other_tables_and_says_so() -> None:
    from fwgen.targets import RenderOptions

    policy = resolve_profile("webserver")
    shared = render(policy, "iptables")
    assert "*nat" not in shared["rules.v4"]
    owned = render(policy, "iptables", RenderOptions(flush_ruleset=True))
    for name in ("rules.v4", "rules.v6"):
        text = owned[name]
        assert "empties the nat, mangle and raw tables" in text.split("*filter")[0]
        for table in ("*raw", "*mangle", "*nat"):
            assert text.count(table + "\n") == 1
        assert text.count("COMMIT\n") == 4
    assert iptables_load_test(owned).returncode == 0


def test_a_bucket_kept_longer_than_hashlimit_can_is_a_warning(
    write_profile: Callable[..., Path],
) -> None:
    """ipset's timeout holds 2**31 milliseconds (24 days; the tracker's, see hashlimits),
    hashlimit's 49 days: a burst of 10,000 at 1/hour would need 416 days, so the limit
    is weaker there, and says so."""
    path = write_profile(
        "description: x\ninbound:\n"
        "  - {service: ssh, limit: {rate: 1/hour, burst: 10000}}\n"
        "  - {service: http, limit: {rate: 1/hour, burst: 500}}\n"
    )
    policy = resolve_profile(str(path))
    for target in ("iptables", "ufw"):
        files, warnings = render_with_warnings(policy, target)
        assert warnings == [
            f"ssh ({path.name}:3): limit 1/hour burst 10000: an idle source earns its burst back in "
            "416 days, but xt_hashlimit and ipset forget a source after 24 days, and it starts again "
            "with a whole burst"
        ]
        text = "\n".join(files.values())
        assert "--hashlimit-htable-expire 2147483000 " in text
        assert "--hashlimit-htable-expire 1800000000 " in text  # http: 20 days, kept
    assert iptables_load_test(render(policy, "iptables")).returncode == 0
