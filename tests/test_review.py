"""diff, explain, render --check and build: the pull-request and config-management workflow."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fwgen.cli import app

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
    assert text.stdout.splitlines()[0].split() == [
        "DIR",
        "SERVICE",
        "PORTS",
        "PROTO",
        "FROM/TO",
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
        "v4+v6",
        "10/minute",
        "medium",
        "public",
        "profiles/webserver.yaml:14",
    ]
    rows = json.loads(runner.invoke(app, ["explain", "webserver", "--format", "json"]).stdout)
    https = next(r for r in rows if r["service"] == "https")
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
        (site / "profiles" / "web1.yaml").read_text().replace("192.0.2.64/28", "192.0.2.80/28")
    )
    stale = runner.invoke(app, ["build", manifest, "--check"])
    assert stale.exit_code == 1
    assert "stale: 4 of 5 generated files" in stale.stderr  # web1: nft, ipsets, rules.v4, v6
    assert "+\t\telements = { 192.0.2.80/28 }" in stale.stdout
    built = runner.invoke(app, ["build", manifest])
    assert built.exit_code == 0 and "4 written, 1 unchanged" in built.stdout
    again = runner.invoke(app, ["build", manifest, "--check"])
    assert again.exit_code == 0 and "all 5 generated files are current" in again.stdout


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
