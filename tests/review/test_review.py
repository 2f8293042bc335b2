"""diff, explain, render --check and build: the pull-request and config-management workflow."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app

runner = CliRunner()
OLD = "description: db host\nextends: base\ninbound:\n  - {service: ssh, from: [10.0.0.0/8]}\n"


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_diff_reports_the_one_added_rule(tmp_path: Path) -> None:
    old = write(tmp_path / "old.yaml", OLD)
    new = write(tmp_path / "new.yaml", OLD + "  - {service: mysql}\n")
    result = runner.invoke(app, ["diff", old, new, "--format", "json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["removed"] == [] and data["changed"] == []
    (added,) = data["added"]
    assert (added["service"], added["protocol"], added["ports"], added["sources"]) == (
        "mysql",
        "tcp",
        ["3306"],
        ["any"],
    )
    assert added["families"] == ["ipv4", "ipv6"]
    assert added["exposure"] == "lan-only" and added["risk"] == "high"
    assert any("FW002" in f for f in added["findings"])


def test_diff_of_equal_profiles_exits_0(tmp_path: Path) -> None:
    old = write(tmp_path / "old.yaml", OLD)
    result = runner.invoke(app, ["diff", old, old])
    assert result.exit_code == 0
    assert result.stdout == "no change in what is allowed\n"


def test_diff_widened_narrowed_and_removed(tmp_path: Path) -> None:
    old = write(
        tmp_path / "old.yaml",
        OLD + "  - {service: https, from: [10.0.0.0/8]}\n  - {service: http}\n",
    )
    new = write(
        tmp_path / "new.yaml", OLD.replace("10.0.0.0/8", "10.1.0.0/16") + "  - {service: https}\n"
    )
    data = json.loads(runner.invoke(app, ["diff", old, new, "--format", "json"]).stdout)
    changes = {c["service"]: c["change"] for c in data["changed"]}
    assert changes == {"ssh": "narrowed", "https": "widened"}
    ssh = next(c for c in data["changed"] if c["service"] == "ssh")
    assert ssh["before"]["sources"] == ["10.0.0.0/8"] and ssh["after"]["sources"] == ["10.1.0.0/16"]
    assert [r["service"] for r in data["removed"]] == ["http"]
    markdown = runner.invoke(app, ["diff", old, new, "--format", "markdown"]).stdout
    assert markdown.startswith("### fwgen: firewall changes")
    assert "- **closes** http 80/tcp from any" in markdown
    assert "- **widened** https 443/tcp from 10.0.0.0/8" in markdown


def test_diff_reads_profiles_from_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    site = tmp_path / "site"
    site.mkdir()
    write(site / "db.yaml", OLD)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "add", "."], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "one"], check=True)
    write(site / "db.yaml", OLD + "  - {service: mysql}\n")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["diff", "HEAD:site/db.yaml", "site/db.yaml", "--format", "json"])
    assert result.exit_code == 1, result.output
    assert [a["service"] for a in json.loads(result.stdout)["added"]] == ["mysql"]
    bad = runner.invoke(app, ["diff", "nosuchrev:site/db.yaml", "site/db.yaml"])
    assert bad.exit_code == 2 and "git cannot read it" in bad.stderr


def test_explain_table_and_json() -> None:
    text = runner.invoke(app, ["explain", "webserver"])
    assert text.exit_code == 0
    settings, table = text.stdout.split("\n\n")
    assert "outbound: accept (every outbound connection is allowed)" in settings.splitlines()
    assert table.splitlines()[0].split() == [
        "DIR",
        "SERVICE",
        "PORTS",
        "PROTO",
        "FROM/TO",
        "HOST",
        "ON",
        "FAMILIES",
        "LIMIT",
        "RISK",
        "EXPOSURE",
        "ORIGIN",
    ]
    ssh = next(line for line in text.stdout.splitlines() if " ssh " in line)
    assert ssh.split() == [
        "in",
        "ssh",
        "22",
        "tcp",
        "admins",
        "any",
        "any",
        "v4+v6",
        "10/minute",
        "medium",
        "public",
        "profiles/webserver.yaml:14",
    ]
    shown = json.loads(runner.invoke(app, ["explain", "webserver", "--format", "json"]).stdout)
    https = next(r for r in shown["rules"] if r["service"] == "https")
    assert https["sources"] == ["any"] and https["origin"] == "profiles/webserver.yaml:12"


def test_render_check_detects_a_stale_file(tmp_path: Path) -> None:
    out = tmp_path / "fwgen.nft"
    missing = runner.invoke(
        app, ["render", "webserver", "-t", "nftables", "-o", str(out), "--check"]
    )
    assert missing.exit_code == 1 and not out.exists()
    runner.invoke(app, ["render", "webserver", "-t", "nftables", "-o", str(out)])
    current = runner.invoke(
        app, ["render", "webserver", "-t", "nftables", "-o", str(out), "--check"]
    )
    assert current.exit_code == 0 and current.stdout == ""
    before = out.read_text()
    stale = runner.invoke(
        app,
        [
            "render",
            "webserver",
            "-t",
            "nftables",
            "-o",
            str(out),
            "--check",
            "--set",
            "admins=192.0.2.1",
        ],
    )
    assert stale.exit_code == 1
    assert (
        "-\t\telements = { 198.51.100.0/24 }" in stale.stdout
        and "+\t\telements = { 192.0.2.1 }" in stale.stdout
    )
    assert out.read_text() == before  # --check never writes


def test_build_check_fails_when_stale_and_passes_after_build(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()  # a checkout: origins are paths in the repository
    site = tmp_path / "examples" / "site"
    shutil.copytree("examples/site", site)
    manifest = str(site / "fwgen.yaml")
    assert runner.invoke(app, ["build", manifest, "--check"]).exit_code == 0
    (site / "profiles" / "web1.yaml").write_text(
        (site / "profiles" / "web1.yaml").read_text().replace("10.20.0.64/28", "10.20.0.80/28")
    )
    stale = runner.invoke(app, ["build", manifest, "--check"])
    assert stale.exit_code == 1
    assert "stale: 4 of 7 generated files" in stale.stderr  # web1: nft, ipsets, rules.v4, v6
    assert "+\t\telements = { 10.20.0.80/28 }" in stale.stdout
    built = runner.invoke(app, ["build", manifest])
    assert built.exit_code == 0 and "4 written, 3 unchanged" in built.stdout
    again = runner.invoke(app, ["build", manifest, "--check"])
    assert again.exit_code == 0 and "all 7 generated files are current" in again.stdout


def test_committed_example_output_is_current() -> None:
    result = runner.invoke(app, ["build", "examples/site/fwgen.yaml", "--check"])
    assert result.exit_code == 0, result.output


def test_bad_manifest_is_a_located_error(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "fwgen.yaml", "hosts:\n  web1:\n    profile: webserver\n    targtes: {}\n"
    )
    result = runner.invoke(app, ["build", manifest])
    assert result.exit_code == 2
    assert f"{manifest}:4: hosts.web1.targtes: unknown key 'targtes'" in result.stderr


@pytest.mark.parametrize(
    "extra",
    ["  - {service: ssh, log: true}\n", "  - {port: 1-1000/tcp, name: ssh}\n"],
)
def test_diff_shows_a_second_rule_of_the_same_name(extra: str, tmp_path: Path) -> None:
    old = (
        "description: x\nnetworks:\n  admins: [192.0.2.0/24]\n"
        "inbound:\n  - {service: https}\n  - {service: ssh, from: admins}\n"
    )
    (tmp_path / "old.yaml").write_text(old)
    (tmp_path / "new.yaml").write_text(old + extra)
    result = runner.invoke(
        app, ["diff", str(tmp_path / "old.yaml"), str(tmp_path / "new.yaml"), "--format", "json"]
    )
    assert result.exit_code == 1
    changes = json.loads(result.stdout)
    assert changes["removed"] == [] and changes["changed"] == []
    (opened,) = changes["added"]
    assert opened["sources"] == ["any"] and opened["service"] == "ssh"


def test_every_policy_field_is_compared_by_diff_or_said_not_to_admit() -> None:
    """A new field of the Policy, its defaults or its rules must be compared by `diff` and
    shown by `explain`, or be named here as changing nothing that is admitted."""
    from fwgen.policy import ir as policy
    from fwgen.policy.ir import Defaults, Policy, Rule
    from fwgen.review.diff import COMPARED, WIDTH
    from fwgen.review.explain import SETTINGS

    admits_nothing = {
        "profile": "a name",
        "description": "a comment",
        "files": "where the profile was read from",
        "address": "changes findings; `dhcp` adds rules, compared as rules",
        "sets": "compared through the addresses of the rules that use them",
        "interface_groups": "compared through the interfaces of the rules that use them",
        "rules": "compared rule by rule",
        "defaults": "compared field by field (inbound, outbound, forward)",
        "denies": "compared deny by deny: now blocks, no longer blocks",
        "refuse_from": "whom the default rejects rather than drops: admits nothing",
    }
    settings = set(Policy.FIELDS) - set(admits_nothing) | set(Defaults.FIELDS)
    assert settings == set(WIDTH) == set(SETTINGS) == set(policy.SETTINGS)
    # Rule fields: the key that pairs rules up, what COMPARED compares, and what admits nothing.
    key = {"direction", "service", "name", "proto", "action"}
    compared = {"ports": "ports", "icmp_types": "ports", "remote": "sources", "local": "host"}
    compared |= {"families": "families", "limit": "limit", "log": "log", "connlimit": "connlimit"}
    compared |= {"interfaces": "interfaces"}
    not_admitting = {"comment", "origin", "risky", "acknowledged", "accepted", "repeated", "on"}
    assert set(Rule.FIELDS) == key | set(compared) | not_admitting
    assert set(compared.values()) == set(COMPARED)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("inbound", "accept"),
        ("outbound", "drop"),
        ("forward", "accept"),
        ("loopback", False),
        ("established", False),
        ("drop_invalid", False),
        ("limit_prefix_v4", 24),
        ("limit_prefix_v6", 128),
        ("containers", "docker"),
        ("coexist", True),
        ("log_drops", True),
    ],
)
def test_diff_reports_each_setting(setting: str, value: object) -> None:
    from fwgen.policy.ir import Defaults
    from fwgen.policy.resolve import resolve_profile
    from fwgen.profile.portdb import catalogue
    from fwgen.review.diff import WIDTH, diff_policies

    assert setting in WIDTH
    old = resolve_profile("webserver")
    if setting in Defaults.FIELDS:
        defaults = old.defaults.replace(**{setting: value})
        new = old.replace(defaults=defaults)
    else:
        new = old.replace(**{setting: value})
    (entry,) = diff_policies(old, new, catalogue())["settings"]
    assert entry["setting"] == setting and entry["after"] == value


GRAFANA = (
    "description: x\ninbound:\n"
    "  - {service: grafana, from: [10.0.0.0/8, 192.168.1.0/24]}\n"
    "  - {service: ssh, from: [10.0.0.0/8]}\n"
    "  - {service: ssh, from: [172.16.0.0/12], log: true}\n"
    "  - {service: http, from: [0.0.0.0/1, 128.0.0.0/1]}\n"
)


def test_messages_name_the_addresses_the_profile_wrote(tmp_path: Path) -> None:
    """explain, audit and FW011 never show a name fwgen made up (grafana_from, ssh_from_2)."""
    profile = write(tmp_path / "p.yaml", GRAFANA)
    explained = runner.invoke(app, ["explain", profile])
    rows = explained.stdout.split("\n\n")[1].splitlines()[1:]
    assert next(r for r in rows if "grafana" in r).split()[4:6] == ["10.0.0.0/8,", "192.168.1.0/24"]
    assert [r for r in rows if "ssh" in r][1].split()[4] == "172.16.0.0/12"
    checked = runner.invoke(app, ["check", profile])
    assert "the list [0.0.0.0/1, 128.0.0.0/1] (p.yaml:6) holds every IPv4 address" in (
        checked.stdout
    )
    scan = tmp_path / "scan.xml"
    scan.write_text(
        '<?xml version="1.0"?>\n<nmaprun scanner="nmap">\n'
        '<scaninfo type="syn" protocol="tcp" services="1-5000"/>\n'
        '<host><address addr="192.0.2.1" addrtype="ipv4"/><ports>'
        '<port protocol="tcp" portid="3000"><state state="open"/></port></ports></host>\n'
        "</nmaprun>\n"
    )
    audited = runner.invoke(app, ["audit", profile, "--scan", str(scan)])
    assert "the profile allows it only from 10.0.0.0/8, 192.168.1.0/24" in audited.stdout
    for output in (explained.stdout, checked.stdout, audited.stdout):
        assert "_from" not in output, output


def _headers(text: str) -> dict[str, str]:
    return {
        line.split()[1]: line.split()[3]
        for line in text.splitlines()
        if line.startswith("# ") and line.split()[2:3] == ["sha256:"]
    }


def test_the_admits_hash_moves_only_with_what_is_admitted(tmp_path: Path) -> None:
    base = (
        "description: db host\nextends: base\nnetworks:\n  admins: [10.0.0.0/8]\n"
        "inbound:\n  - {service: ssh, from: admins}\n"
    )
    variants = {
        "same": base,
        "moved": "# a comment line moves every rule down\n" + base,
        "renamed": base.replace("admins", "operators"),
        "commented": base.replace("from: admins}", "from: admins, comment: remote shell}"),
        "opened": base + "  - {service: https}\n",
        "wider": base.replace("10.0.0.0/8", "10.0.0.0/7"),
    }
    headers = {}
    for name, text in variants.items():
        (tmp_path / name).mkdir()
        path = write(tmp_path / name / "p.yaml", text)
        rendered = runner.invoke(app, ["render", path, "-t", "nftables"])
        assert rendered.exit_code == 0, rendered.output
        headers[name] = _headers(rendered.stdout)
        assert set(headers[name]) == {"Inputs", "Admits"}
    for name in ("moved", "renamed", "commented"):
        assert headers[name]["Admits"] == headers["same"]["Admits"], name
        assert headers[name]["Inputs"] != headers["same"]["Inputs"], name
    for name in ("opened", "wider"):
        assert headers[name]["Admits"] != headers["same"]["Admits"], name


def test_diff_shows_new_findings_about_the_whole_host(tmp_path: Path) -> None:
    old = write(tmp_path / "old.yaml", OLD + "options: {containers: docker, forward: ignore}\n")
    new = write(tmp_path / "new.yaml", OLD + "options: {forward: ignore}\n")
    result = runner.invoke(app, ["diff", old, new, "--format", "json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert [f["code"] for f in data["findings"]] == ["FW015"]
    assert data["findings"][0]["location"] == "new.yaml:1"
    text = runner.invoke(app, ["diff", old, new]).stdout
    assert "! new finding new.yaml:1: warning FW015: forward: ignore leaves" in text


def test_a_long_list_is_named_by_its_first_entries(tmp_path: Path) -> None:
    many = ", ".join(f"10.0.{i}.1" for i in range(120))
    profile = write(
        tmp_path / "p.yaml", f"description: x\ninbound:\n  - {{service: ssh, from: [{many}]}}\n"
    )
    result = runner.invoke(app, ["render", profile, "-t", "ufw"])
    assert result.exit_code == 0, result.output
    assert (
        "warning: the list [10.0.0.1, 10.0.1.1, 10.0.2.1 +117 more] (p.yaml:3) has 120 "
        "addresses; ufw has no address sets" in result.stderr
    )
    assert "ssh_from" not in result.stderr
