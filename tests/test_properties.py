"""Property tests: random valid (and hostile) profiles, rendered for every target.

For each: nftables passes `nft -c`, iptables passes `iptables-restore --test`
(both families), the PowerShell parses clean, the ufw script holds only the ufw
invocations fwgen means to emit, and the rules read back from every output equal
the Policy: nothing added, lost, widened or narrowed.

Bounded by default; FWGEN_PROPERTY_EXAMPLES raises the count (CI runs more).
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fwgen.errors import FwgenError, RenderError
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
    ufw_block_restore,
)
from tests.targets.pwsh import Firewall, read_script, run
from tests.targets.test_ufw import UFW_LINE, commands
from tests.targets.test_windows import parse_errors

EXAMPLES = int(os.environ.get("FWGEN_PROPERTY_EXAMPLES", "60"))
SERVICES = [
    "ssh",
    "http",
    "https",
    "dns",
    "ntp",
    "mdns",
    "dhcp-client",
    "dhcpv6-client",
    "imaps",
    "mysql",
    "x11",
    "netbios",
]
HOSTILE = st.sampled_from(
    [
        "'",
        '"',
        "\\",
        ";",
        "$(reboot)",
        "`id`",
        "\n",
        "#",
        "{",
        "}",
        " COMMIT",
        "\u2019",
        "\x00",
        "\u202e",
        "é",
        "\u2028",
        "\u2029",
        "\u0085",
        "\x0b",
        "\r",
    ]
)
# File names a pull request could add (git allows all but NUL and "/").
file_names = st.lists(
    st.sampled_from(
        [
            "a",
            "-",
            "_",
            ".",
            " ",
            "\n",
            "\u2028",
            "'",
            '"',
            "$(x)",
            "é",
            "\u202e",
            "\t",
            "*",
            "#",
            "\\",
        ]
    ),
    min_size=1,
    max_size=8,
).map(lambda parts: "".join(parts) + ".yaml")

names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
rule_names = st.from_regex(r"[a-z0-9][a-z0-9_.+-]{0,12}", fullmatch=True)
hostile_text = st.lists(st.one_of(HOSTILE, st.text(max_size=6)), max_size=6).map("".join)
plain_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20)
text = st.one_of(plain_text, plain_text, plain_text, hostile_text)


@st.composite
def ports(draw: st.DrawFn) -> str:
    start = draw(st.one_of(st.sampled_from([1, 2, 65534, 65535, 80, 443]), st.integers(1, 65535)))
    end = min(65535, start + draw(st.sampled_from([0, 0, 1, 10, 1000])))
    proto = draw(st.sampled_from(["tcp", "udp"]))
    return f"{start}/{proto}" if start == end else f"{start}-{end}/{proto}"


@st.composite
def addresses(draw: st.DrawFn) -> str:
    """Mostly valid networks; sometimes what a strict parser must refuse."""
    kind = draw(st.sampled_from(["v4"] * 7 + ["v6"] * 7 + ["zero4", "zero6", "hostile"]))
    if kind == "zero4":
        return "0.0.0.0/0"
    if kind == "zero6":
        return "::/0"
    if kind == "hostile":
        v4 = ipaddress.IPv4Address(draw(st.integers(1, 2**32 - 1)))
        return draw(
            st.sampled_from(
                [
                    f"::ffff:{v4}",  # IPv4-mapped
                    f"{v4}/8" if int(v4) & 0xFFFFFF else f"{v4}/4",  # host bits set
                    f"{v4}/255.0.0.0",  # netmask notation
                    "fe80::1%eth0",  # zone id
                    "fe80::1%lo\n-A INPUT -j ACCEPT\n#",  # zone id with a payload
                ]
            )
        )
    if kind == "v4":
        prefix = draw(st.integers(8, 32))
        address = draw(st.integers(0, 2**32 - 1))
        return str(ipaddress.IPv4Network((address, prefix), strict=False))
    prefix = draw(st.integers(16, 128))
    address = draw(st.integers(0, 2**128 - 1)) & ~(0xFFFF << 32)  # never IPv4-mapped
    return str(ipaddress.IPv6Network((address, prefix), strict=False))


@st.composite
def rules(draw: st.DrawFn, way: str, networks: list[str]) -> dict[str, object]:
    kind = draw(st.sampled_from(["service", "port", "icmp"]))
    rule: dict[str, object] = {}
    if kind == "service":
        rule["service"] = draw(
            st.lists(st.sampled_from(SERVICES), min_size=1, max_size=2, unique=True)
        )
    elif kind == "port":
        rule["port"] = draw(st.lists(ports(), min_size=1, max_size=18))
        rule["name"] = draw(rule_names)
        rule["allow_risky"] = "property test"
    else:
        rule["icmpv6" if draw(st.booleans()) else "icmp"] = [
            "echo-request",
            "destination-unreachable",
        ]
    if draw(st.booleans()):
        rule[way] = draw(
            st.one_of(
                st.lists(addresses(), min_size=1, max_size=4), st.sampled_from(networks or ["any"])
            )
        )
    if draw(st.booleans()):
        rule["comment"] = draw(text)
    if draw(st.booleans()):
        rate = f"{draw(st.integers(1, 100))}/{draw(st.sampled_from(['second', 'minute', 'hour']))}"
        burst = draw(st.one_of(st.none(), st.integers(1, 10000)))
        rule["limit"] = rate if burst is None else {"rate": rate, "burst": burst}
    rule["log"] = draw(st.booleans())
    return rule


@st.composite
def profiles(draw: st.DrawFn) -> dict[str, object]:
    nets = draw(st.dictionaries(names, st.lists(addresses(), max_size=5), max_size=3))
    net_names = sorted(nets)
    profile: dict[str, object] = {"description": draw(text), "networks": nets}
    if draw(st.booleans()):
        profile["extends"] = "base"
    profile["inbound"] = draw(st.lists(rules("from", net_names), max_size=5))
    if draw(st.booleans()):
        profile["outbound"] = draw(st.lists(rules("to", net_names), max_size=3))
    profile["options"] = {
        "ping": draw(st.booleans()),
        "log_drops": draw(st.booleans()),
        "forward": draw(st.sampled_from(["drop", "accept", "ignore"])),
        "limit_prefix_v4": draw(st.integers(1, 32)),
        "limit_prefix_v6": draw(st.integers(1, 128)),
    }
    return profile


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    profiles(),
    file_names,
    st.one_of(st.just(""), st.just(""), hostile_text.map(lambda t: f"# {t}\n")),
)
def test_every_target_means_exactly_the_policy(
    tmp_path_factory: object, profile: dict[str, object], name: str, comment: str
) -> None:
    folder = Path(tmp_path_factory.mktemp("prop"))  # type: ignore[attr-defined]
    path = folder / name
    path.write_text(comment + yaml.safe_dump(profile, allow_unicode=True), encoding="utf-8")
    try:
        policy = resolve_profile(str(path))
    except FwgenError as err:  # a clear, located refusal is a valid outcome for hostile input
        assert str(err).startswith(path.name), str(err)
        event(f"refused: {str(err).split(': ', 2)[-1][:40]}")
        return
    event("rendered")
    outputs = {}
    for target in ("nftables", "iptables", "ufw", "windows"):
        try:
            outputs[target] = render(policy, target)
        except RenderError as err:
            assert target == "ufw" or "known backdoor" in str(err), str(err)
    for files in outputs.values():
        for output in files.values():
            assert all(c.isprintable() or c in "\n\t" for c in output), output
    nft = outputs["nftables"]["fwgen.nft"]
    assert nft_check(nft).returncode == 0, nft
    assert canonical(parse_nftables(nft)) == canonical(expected(policy))
    ipt = outputs["iptables"]
    result = iptables_load_test(ipt)
    assert result.returncode == 0, result.stderr + ipt["rules.v4"] + ipt["rules.v6"]
    assert canonical(parse_iptables(ipt)) == canonical(expected(policy))
    windows = outputs["windows"]["fwgen.ps1"]
    assert parse_errors(windows) == []
    assert canonical(parse_windows(windows)) == canonical(expected(policy))
    shape = read_script(windows)  # add, then default block, then remove: whatever the input
    firewall = Firewall()
    run(shape, firewall)
    assert firewall.fwgen() == set(shape.names())
    if "ufw" in outputs:
        script = outputs["ufw"]["fwgen-ufw.sh"]
        for line in commands(script):
            assert UFW_LINE.match(line), line
        assert canonical(parse_ufw(script)) == canonical(expected(policy))
        blocks = {
            "ipsets": "".join(f"{line}\n" for line in re.findall(r"^create .*", script, re.M)),
            "rules.v4": ufw_block_restore(script, "before.rules"),
            "rules.v6": ufw_block_restore(script, "before6.rules"),
        }
        result = iptables_load_test(blocks)  # the rate limits' trackers, then both blocks
        assert result.returncode == 0, result.stderr + script
