"""Reading live counters back (`fwgen hits`), as untrusted input, and mapping them to the
profile's lines."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.cli.common import load_policies, site_ports
from fwgen.cli.hits import rendered_rules
from fwgen.errors import FwgenError
from fwgen.host.hits import nft_expected, parse_iptables, parse_nft, parse_ufw
from fwgen.host.ownrules import parse_rule
from fwgen.review.hits import as_json, as_text, findings, hits

NOW = 1_800_000_000.0
TIMEOUT = 3650 * 86400


def rule(
    comment: Any,
    packets: Any,
    chain: str = "input",
    family: str = "inet",
    table: str = "fwgen",
    counter: bool = True,
) -> dict[str, Any]:
    count = {
        "counter": {"packets": packets, "bytes": 60 * packets if isinstance(packets, int) else 0}
    }
    expr = [*([count] if counter else []), {"accept": None}]
    return {
        "rule": {
            "family": family,
            "table": table,
            "chain": chain,
            "comment": comment,
            "expr": expr,
        }
    }


def nft(rules: list[dict[str, Any]]) -> str:
    items = [
        {"metainfo": {}},
        {"table": {"family": "inet", "name": "fwgen", "handle": 3}},
        {
            "set": {
                "family": "inet",
                "name": "loaded",
                "table": "fwgen",
                "timeout": TIMEOUT,
                "elem": [{"elem": {"val": 0, "expires": TIMEOUT - 86400}}],
            }
        },
        *rules,
    ]
    return json.dumps({"nftables": items})


def webserver() -> Any:
    (policy,) = load_policies(["webserver"], None, site_ports(None))
    return policy


RENDERED = rendered_rules(webserver(), "nftables")["inet"]
IPTABLES = rendered_rules(webserver(), "iptables")
# The counted accepts of webserver's input chain, in order, as `fwgen render` writes them.
INPUT = [
    "icmp: ICMP errors",
    *["ping: echo request, rate limited"] * 2,
    *["icmpv6: ICMPv6 errors and neighbour discovery"] * 2,
    *["ping: echo request, rate limited"] * 2,
    "mld-query: MLD queries from the local link",
    *["ssh: Secure Shell"] * 4,
    "http: HTTP",
    "https: HTTPS",
    "http3: HTTP/3 (QUIC)",
]


def webserver_rules(counts: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The input chain's accepts as nft lists them, the counted ones with *counts* (else 1
    each)."""
    left = {label: iter(values) for label, values in counts.items()}
    return [
        rule(label, next(left.get(label, iter(())), 1) if counts_it else 0, counter=counts_it)
        for label, counts_it in nft_expected(RENDERED)["input"]
    ]


def test_the_rendered_ruleset_is_what_the_tests_load() -> None:
    expected = nft_expected(RENDERED)
    assert list(expected) == ["input"]
    assert [label for label, counts in expected["input"] if counts] == INPUT
    assert [label for label, counts in expected["input"] if not counts] == [
        "loopback",
        "replies and related traffic",
        "replies and related icmp except echo-request (rate limited below)",
        "replies and related icmpv6 except echo-request (rate limited below)",
    ]


def test_nft_counters_map_to_profile_lines() -> None:
    rules = webserver_rules({"ssh: Secure Shell": [7, 5, 0, 0], "http: HTTP": [0]})
    counted = parse_nft(nft(rules), NOW, RENDERED)
    assert counted is not None and counted.loaded_at == NOW - 86400 and counted.ignored == []
    found = {h.name: h for h in hits(webserver(), counted)}
    assert found["ssh"].connections == 12 and found["ssh"].origin == "profiles/webserver.yaml:14"
    assert found["http"].connections == 0 and not found["http"].missing
    assert found["https"].connections == 1
    assert [f.location for f in findings(list(found.values()), counted)] == [
        "profiles/webserver.yaml:11"
    ]
    text = as_text(list(found.values()), counted)
    assert "ssh (profiles/webserver.yaml:14, inbound): 12 new connections" in text
    assert "http (profiles/webserver.yaml:11, inbound): 0 new connections  <- no hits" in text


FOREIGN_NOTE = (
    "{} rules outside fwgen's own carry the comment of one of its rules (another "
    "program's?); not counted"
)


@pytest.mark.parametrize(
    "where",
    ["before", "before, no counter", "after", "other chain", "table ip fwgen", "table inet other"],
)
def test_nft_a_rule_copying_fwgens_comment_is_not_fwgens(where: str) -> None:
    """Another program's accept carrying the comment of fwgen's ssh rule: outside the run
    of rules fwgen rendered, or outside fwgen's own table, it is never credited."""
    rules = webserver_rules({"ssh: Secure Shell": [1, 0, 0, 0]})
    copy = {
        "before": rule("ssh: Secure Shell", 500),
        "before, no counter": rule("ssh: Secure Shell", 0, counter=False),
        "after": rule("ssh: Secure Shell", 500),
        "other chain": rule("ssh: Secure Shell", 500, chain="forward"),
        "table ip fwgen": rule("ssh: Secure Shell", 500, family="ip"),
        "table inet other": rule("ssh: Secure Shell", 500, table="other"),
    }[where]
    rules = [copy, *rules] if where.startswith("before") else [*rules, copy]
    counted = parse_nft(nft(rules), NOW, RENDERED)
    assert counted is not None
    assert counted.by_label["ssh: Secure Shell"] == (1, 60)
    assert counted.ignored == [FOREIGN_NOTE.format(1)]


def test_nft_a_rule_inserted_among_fwgens_leaves_the_chain_uncounted() -> None:
    rules = webserver_rules({})
    rules.insert(13, rule("ssh: Secure Shell", 500))
    counted = parse_nft(nft(rules), NOW, RENDERED)
    assert counted is not None and counted.by_label == {}
    assert counted.ignored == [
        "chain input of table inet fwgen does not hold the rules fwgen renders for this "
        "profile (another ruleset, or a rule added or changed); its rules are not counted"
    ]
    assert all(h.missing for h in hits(webserver(), counted))


@pytest.mark.parametrize("bad", [-1, "9", True])
def test_nft_rules_with_unexpected_counters_are_left_out(bad: Any) -> None:
    rules = webserver_rules({"ssh: Secure Shell": [bad, 2, 0, 0]})
    counted = parse_nft(nft(rules), NOW, RENDERED)
    assert counted is not None and counted.by_label["ssh: Secure Shell"] == (2, 120)
    assert counted.ignored == [
        "1 counted rules of table inet fwgen with unexpected contents left out"
    ]


@pytest.mark.parametrize("comment", [None, ["ssh: Secure Shell"], "ssh: Secure Shell\n"])
def test_nft_rules_with_unexpected_comments_are_not_fwgens(comment: Any) -> None:
    rules = webserver_rules({})
    rules[12] = rule(comment, 3)
    counted = parse_nft(nft(rules), NOW, RENDERED)
    assert counted is not None and counted.by_label == {}
    assert counted.ignored[0].startswith("chain input of table inet fwgen does not hold")


def test_nft_output_that_is_not_json() -> None:
    with pytest.raises(FwgenError, match="not nftables JSON"):
        parse_nft("nope", NOW, RENDERED)
    assert parse_nft(json.dumps({"nftables": []}), NOW, RENDERED) is None
    table_ip = {"nftables": [{"table": {"family": "ip", "name": "fwgen"}}, rule("x", 1)]}
    assert parse_nft(json.dumps(table_ip), NOW, RENDERED) is None


def saved(rendered: str, counts: dict[str, list[int]]) -> str:
    """*rendered*'s rules as `iptables-save -c` writes them (counters first), with *counts*
    of the ACCEPT rules of each comment, in order (else 0)."""
    left = {label: iter(values) for label, values in counts.items()}
    lines = ["# Generated by iptables-save", "*filter", ":INPUT DROP [0:0]"]
    for line in rendered.splitlines():
        if not line.startswith("-A "):
            continue
        label = line.split('--comment "')[1].split('"')[0] if "--comment" in line else ""
        packets = next(left.get(label, iter(())), 0) if line.endswith("-j ACCEPT") else 0
        lines.append(f"[{packets}:{60 * packets}] {line}")
    return "\n".join([*lines, "COMMIT", ""])


def test_iptables_counters_of_the_rendered_rules_in_both_families() -> None:
    v4 = saved(IPTABLES["ipv4"], {"ssh: Secure Shell": [4, 1], "http: HTTP": [2]})
    v6 = saved(IPTABLES["ipv6"], {"http: HTTP": [3]})
    counted = parse_iptables([v4, v6], IPTABLES)
    assert counted.ignored == []
    assert counted.by_label["ssh: Secure Shell"] == (5, 300)
    assert counted.by_label["http: HTTP"] == (5, 300)
    found = {h.name: h for h in hits(webserver(), counted)}
    assert found["https"].connections == 0 and not found["https"].missing
    assert as_json(list(found.values()), counted)["loaded_at"] is None
    assert parse_iptables([v6, v4], IPTABLES).by_label == counted.by_label  # files in any order


COPY = (
    '[500:30000] -A {} -p tcp -m tcp --dport 23 -m comment --comment "ssh: Secure Shell" -j ACCEPT'
)


@pytest.mark.parametrize("chain", ["INPUT", "DOCKER", "FWGEN-INPUT"])
def test_iptables_a_rule_copying_fwgens_comment_is_not_fwgens(chain: str) -> None:
    """Inserted first in INPUT (as `iptables -I` does) or in fwgen's own chain, or in a
    chain fwgen renders no rule in: never credited, counted apart."""
    v4 = saved(IPTABLES["ipv4"], {"ssh: Secure Shell": [4, 1]})
    first = "[0:0] -A FWGEN-INPUT -i lo"
    v4 = v4.replace(first, COPY.format(chain) + "\n" + first, 1)
    counted = parse_iptables([v4], IPTABLES)
    assert counted.by_label["ssh: Secure Shell"] == (5, 300)
    assert counted.ignored == [FOREIGN_NOTE.format(1)]


def test_iptables_a_rule_inserted_among_fwgens_leaves_the_chain_uncounted() -> None:
    v4 = saved(IPTABLES["ipv4"], {"ssh: Secure Shell": [4, 1]})
    v4 = v4.replace(
        "[0:0] -A FWGEN-INPUT -p tcp -m tcp --dport 80",
        COPY.format("FWGEN-INPUT") + "\n[0:0] -A FWGEN-INPUT -p tcp -m tcp --dport 80",
    )
    counted = parse_iptables([v4], IPTABLES)
    assert counted.by_label == {}
    assert counted.ignored == [
        "chain FWGEN-INPUT (ipv4) does not hold the rules fwgen renders for this profile (another "
        "ruleset, or a rule inserted among them or changed); its rules are not counted"
    ]


def test_iptables_a_changed_rule_is_not_fwgens() -> None:
    """The same comment and place, another port: the chain is not what fwgen rendered."""
    v4 = saved(IPTABLES["ipv4"], {"http: HTTP": [2]})
    changed = v4.replace("--dport 80 -m comment", "--dport 8080 -m comment")
    assert changed != v4
    assert parse_iptables([changed], IPTABLES).by_label == {}


def test_iptables_save_lines_are_read_in_linear_time() -> None:
    """A line of unclosed quotes after a comment option made the old pattern backtrack
    cubically: this 440 kB line took it about 100 s; read once, it takes a tenth of a
    second (the bound leaves room for a loaded machine)."""
    line = "[1:2] -A INPUT " + '-m comment --comment "' * 20_000 + " -j ACCEPT"
    start = time.perf_counter()
    counted = parse_iptables([line + "\n" + saved(IPTABLES["ipv4"], {})], IPTABLES)
    assert time.perf_counter() - start < 10
    assert counted.ignored == []


def test_hits_windows_is_not_applicable() -> None:
    result = CliRunner().invoke(app, ["hits", "webserver", "-t", "windows"])
    assert result.exit_code == 2
    assert "not applicable" in result.output


def test_hits_from_a_file(tmp_path: Any) -> None:
    counts = webserver_rules({"ssh: Secure Shell": [3, 0, 0, 0]})
    path = tmp_path / "counters.json"
    path.write_text(nft(counts))
    result = CliRunner().invoke(
        app, ["hits", "webserver", "-t", "nftables", "--input", str(path), "--format", "sarif"]
    )
    assert result.exit_code == 0, result.output
    sarif = json.loads(result.output)
    assert [
        r["ruleId"] for r in sarif["runs"][0]["results"]
    ] == []  # none of its rules is counted 0
    path.write_text(nft(webserver_rules({"ssh: Secure Shell": [0, 0, 0, 0]})))
    result = CliRunner().invoke(
        app, ["hits", "webserver", "-t", "nftables", "--input", str(path), "--format", "sarif"]
    )
    log = json.loads(result.output)
    jsonschema.validate(
        log, json.loads(Path("tests/data/sarif-2.1.0-results.schema.json").read_text())
    )
    assert "FW023" in {r["id"] for r in log["runs"][0]["tool"]["driver"]["rules"]}
    (only,) = log["runs"][0]["results"]
    assert (
        only["ruleId"] == "FW023"
        and only["locations"][0]["physicalLocation"]["region"]["startLine"] == 14
    )


def hexed(text: str) -> str:
    return text.encode().hex()


USER_RULES = f"""\
*filter
:ufw-user-input - [0:0]
### RULES ###

### tuple ### allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in comment={hexed("fwgen: http [06e5f016d0]")}
-A ufw-user-input -p tcp --dport 80 -j ACCEPT

### tuple ### allow tcp 25 0.0.0.0/0 any 0.0.0.0/0 in comment={hexed("an admin's rule")}
-A ufw-user-input -p tcp --dport 25 -j ACCEPT

### tuple ### allow tcp 443 0.0.0.0/0 any 0.0.0.0/0 in comment=zz
-A ufw-user-input -p tcp --dport 443 -j ACCEPT

### END RULES ###
COMMIT
"""
UFW = rendered_rules(webserver(), "ufw")["ufw"]
# ufw's own rules (in user.rules), loaded after fwgen's block of before.rules.
UFW_USER = """\
[2:120] -A ufw-user-input -p tcp -m tcp --dport 80 -j ACCEPT
[7:420] -A ufw-user-input -p tcp -m tcp --dport 25 -j ACCEPT
[9:540] -A ufw-user-input -p tcp -m tcp --dport 443 -j ACCEPT
"""
STOCK = "[0:0] -A ufw-before-input -i lo -j ACCEPT\n"  # ufw's own, ahead of fwgen's block


def ufw_saved(counts: dict[str, list[int]], extra: str = "") -> str:
    block = saved(UFW, counts).split("*filter\n:INPUT DROP [0:0]\n")[1].removesuffix("COMMIT\n")
    v4 = "".join(line + "\n" for line in block.splitlines() if " -A ufw-" in line)
    return f"*filter\n{STOCK}{extra}{v4}{UFW_USER}COMMIT\n"


def test_ufw_counters_by_place_and_by_comment() -> None:
    v4 = ufw_saved({"ping: echo request, rate limited": [6, 0]})
    counted = parse_ufw([v4, ""], [USER_RULES, ""], UFW)
    assert counted.by_label["ping: echo request, rate limited"] == (6, 360)
    assert counted.by_label["fwgen: http"] == (2, 120)  # the admin's rule: not fwgen's
    assert "fwgen: https" not in counted.by_label  # an unreadable comment: not fwgen's
    assert counted.ignored == [
        "chain ufw6-before-input (ipv6) does not hold the rules fwgen renders for this "
        "profile (another ruleset, or a rule inserted among them or changed); its rules are "
        "not counted"
    ]  # no IPv6 rules were given
    found = {h.name: h for h in hits(webserver(), counted)}
    assert found["http"].connections == 2 and found["https"].missing


def test_ufw_a_rule_copying_fwgens_comment_ahead_of_its_block_is_not_fwgens() -> None:
    copy = '[40:2400] -A ufw-before-input -p icmp -m comment --comment "ping: echo request, rate limited" -j ACCEPT\n'
    counted = parse_ufw(
        [ufw_saved({"ping: echo request, rate limited": [6, 0]}, copy), ""], [USER_RULES, ""], UFW
    )
    assert counted.by_label["ping: echo request, rate limited"] == (6, 360)
    assert counted.ignored[-1] == FOREIGN_NOTE.format(1)


def test_ufw_rules_that_differ_from_the_loaded_ones_are_not_counted() -> None:
    v4 = ufw_saved({}).replace(
        "[9:540] -A ufw-user-input -p tcp -m tcp --dport 443 -j ACCEPT\n", ""
    )
    counted = parse_ufw([v4, ""], [USER_RULES, ""], UFW)
    assert "fwgen: http" not in counted.by_label
    assert counted.ignored[-1] == (
        "ufw-user-input: ufw's rules file and the loaded rules differ; its rules are not counted"
    )


def test_a_quoted_value_that_starts_with_a_dash_is_a_value() -> None:
    rule = parse_rule('[3:4] -A INPUT -p tcp -m comment --comment "-j DROP" -j ACCEPT')
    assert rule is not None
    assert (rule.chain, rule.verdict, rule.comment, rule.counters) == (
        "INPUT",
        "ACCEPT",
        "-j DROP",
        (3, 4),
    )
