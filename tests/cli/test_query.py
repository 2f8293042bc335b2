"""`fwgen query` from the command line: packets as arguments, from a file or stdin, an
expectations table, JSON, targets, and hostile input. Expected output is typed by hand."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app

runner = CliRunner()
ADMINS = ["--set", "admins=10.20.0.0/26"]


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["query", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_packets_as_arguments() -> None:
    code, out, err = run(
        "bastion",
        "tcp 203.0.113.5 -> 22",
        "udp -> 68",
        "out tcp -> 198.51.100.7:25",
    )
    assert (code, err) == (0, "")
    assert out == (
        "tcp 203.0.113.5 -> 22\n"
        "  accepted by ssh (profiles/bastion.yaml:13)\n"
        "    up to 10 new connections a minute per source address; beyond them, dropped by "
        "the default policy\n"
        "  on windows, firewalld:\n"
        "    accepted by ssh (profiles/bastion.yaml:13)\n"
        "      not rate limited: the 10/minute limit is not applied\n"
        "udp -> 68\n"
        "  ipv4: accepted by dhcp-client (profiles/bastion.yaml:30)\n"
        "  ipv6: dropped by the default policy\n"
        "out tcp -> 198.51.100.7:25\n"
        "  dropped by the default policy (outbound: drop)\n"
    )


def test_a_target_answers_as_it_decides() -> None:
    code, out, _ = run("bastion", "-t", "windows", "tcp 203.0.113.5 -> 22")
    assert code == 0
    assert out == (
        "tcp 203.0.113.5 -> 22\n"
        "  accepted by ssh (profiles/bastion.yaml:13)\n"
        "    not rate limited: the 10/minute limit is not applied\n"
    )
    code, out, _ = run("bastion", "-t", "nftables", "tcp 203.0.113.5 -> 22")
    assert code == 0 and "on windows" not in out and "up to 10 new connections" in out


def test_a_target_that_refuses_the_profile_is_an_error() -> None:
    code, out, err = run("docker-host", "-t", "firewalld", "tcp 203.0.113.5 -> 80")
    assert (code, out) == (2, "")
    assert err.startswith("error: firewalld:") and len(err.splitlines()) == 1
    code, _, err = run("webserver", "-t", "nftabels", "tcp 203.0.113.5 -> 80")
    assert code == 2 and "did you mean 'nftables'" in err


def test_json() -> None:
    code, out, _ = run("webserver", *ADMINS, "--format", "json", "tcp 10.20.0.9 -> 22")
    assert code == 0
    (entry,) = json.loads(out)
    assert entry["packet"] == "tcp 10.20.0.9 -> 22"
    assert entry["where"] == "packet 1"
    (decision,) = entry["decisions"]
    assert decision["family"] == "ipv4" and decision["verdict"] == "accepted"
    assert decision["by"] == "ssh" and decision["origin"] == "profiles/webserver.yaml:14"
    assert decision["notes"][0].startswith("up to 10 new connections a minute")
    assert sorted(entry["targets"]) == ["firewalld", "windows"]
    assert entry["targets"]["windows"][0]["notes"] == [
        "not rate limited: the 10/minute limit is not applied"
    ]


def test_packets_from_a_file_and_from_stdin(tmp_path: Path) -> None:
    table = tmp_path / "packets.txt"
    table.write_text("# web\ntcp 203.0.113.5 -> 443   # the site\n\n  udp 203.0.113.5 -> 443\n")
    expected = (
        "tcp 203.0.113.5 -> 443\n"
        "  accepted by https (profiles/webserver.yaml:12)\n"
        "udp 203.0.113.5 -> 443\n"
        "  accepted by http3 (profiles/webserver.yaml:13)\n"
    )
    assert run("webserver", "--file", str(table))[:2] == (0, expected)
    assert run("webserver", "--file", "-", stdin=table.read_text())[:2] == (0, expected)


EXPECT = """\
# what web1 must admit and refuse
accept tcp 203.0.113.5 -> 443
drop   tcp 203.0.113.5 -> 22     # not an admin
accept tcp 10.20.0.9 -> 22
accepted udp 203.0.113.5 -> 443
reject tcp 203.0.113.5 -> 3306
drop tcp -> 22
"""


def test_expect_names_every_line_that_disagrees(tmp_path: Path) -> None:
    table = tmp_path / "expect.txt"
    table.write_text(EXPECT)
    code, out, _ = run("webserver", *ADMINS, "--expect", str(table))
    assert code == 1
    assert out == (
        f"{table}:6: tcp 203.0.113.5 -> 3306: expected rejected, but dropped by the "
        "default policy\n"
        f"1 of 6 packets disagree with {table}\n"
    )
    table.write_text(EXPECT.replace("reject tcp 203.0.113.5 -> 3306", "drop tcp 192.0.2.1 -> 3306"))
    code, out, _ = run("webserver", *ADMINS, "--expect", str(table))
    assert (code, out) == (0, f"6 packets, each as {table} expects\n")
    # without the admins, line 4 disagrees
    code, out, _ = run("webserver", "--expect", str(table))
    assert code == 1 and out.startswith(f"{table}:4: tcp 10.20.0.9 -> 22: expected accepted, but")


def test_expect_per_target(tmp_path: Path) -> None:
    table = tmp_path / "expect.txt"
    table.write_text("reject tcp 10.66.0.1 -> 22\n")
    denies = "tests/data/good/denies.yaml"
    assert run(denies, "--expect", str(table))[0] == 0
    assert run(denies, "-t", "iptables", "--expect", str(table))[0] == 0
    code, out, _ = run(denies, "-t", "windows", "--expect", str(table))
    assert code == 1 and ": expected rejected, but dropped by reject ssh" in out


def test_expect_json_marks_each_row() -> None:
    code, out, _ = run("webserver", "--format", "json", "--expect", "-", stdin=EXPECT)
    assert code == 1
    rows = json.loads(out)
    assert [r["agrees"] for r in rows] == [True, True, False, True, False, True]
    assert [r["where"] for r in rows] == [f"<stdin>:{n}" for n in (2, 3, 4, 5, 6, 7)]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "give packets one way"),
        (["tcp -> 22", "--file", "-"], "not PACKET and --file"),
        (["--format", "yaml", "tcp -> 22"], "--format 'yaml'"),
    ],
)
def test_usage_mistakes(args: list[str], words: str) -> None:
    code, out, err = run("webserver", *args)
    assert (code, out) == (2, "")
    assert words in err


def test_every_bad_line_is_reported_with_its_column(tmp_path: Path) -> None:
    table = tmp_path / "expect.txt"
    table.write_text(
        "accept tcp 203.0.113.5 -> 443\n"
        "acept tcp 203.0.113.5 -> 443\n"
        "drop tcp 203.0.113.500 -> 22\n"
        "drop tcp 203.0.113.5 -> \u0664\u0664\n"
        "  drop udp 1.2.3.4\n"
    )
    code, out, err = run("webserver", "--expect", str(table))
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"error: {table}:2:1: 'acept': start the line with the verdict the packet must get "
        "(accept, drop or reject), e.g. 'drop tcp 198.51.100.9 -> 22'",
        f"error: {table}:3:10: invalid address or CIDR '203.0.113.500'",
        f"error: {table}:4:25: U+0664 is not allowed: write packets in plain ASCII (digits "
        "0-9, spaces or tabs between words)",
        f"error: {table}:5:19: name the destination port: udp 203.0.113.5 -> 443",
    ]


def test_a_bad_argument_is_one_line_with_its_column() -> None:
    code, out, err = run("webserver", "tcp 203.0.113.5 -> 443", "tcp 1.2.3.4 -> 99999")
    assert (code, out) == (2, "")
    assert err == (
        "error: packet 2 'tcp 1.2.3.4 -> 99999', column 16: invalid port '99999'; a port is "
        "a number 1-65535\n"
    )
    code, _, err = run("webserver", "tcp 1.2.3.4 -> 22\u202e")
    assert code == 2 and err.startswith("error: packet 1, column 18: U+202E is not allowed")


# ------------------------------------------------------------------ hostile files


def test_a_fifo_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "expect.fifo"
    os.mkfifo(fifo)
    code, _, err = run("webserver", "--expect", str(fifo))
    assert code == 2 and "is a FIFO, not a file" in err


def test_a_device_a_fifo_or_a_symlink_is_refused(tmp_path: Path) -> None:
    """As `verify --ruleset`: a table is the file itself, never a link to another one,
    a device or a FIFO (a pull request's link could show any file's lines)."""
    code, _, err = run("webserver", "--expect", "/dev/zero")
    assert code == 2 and "a character device, not a file" in err
    os.mkfifo(tmp_path / "fifo")
    code, _, err = run("webserver", "--file", str(tmp_path / "fifo"))
    assert code == 2 and "a FIFO, not a file" in err
    table = tmp_path / "table.txt"
    table.write_text("accept tcp 1.2.3.4 -> 443\n")
    for target, option in (
        ("/dev/zero", "--expect"),
        (tmp_path / "fifo", "--file"),
        (table, "--file"),
        (table, "--expect"),
    ):
        link = tmp_path / f"link{option}"
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        code, out, err = run("webserver", option, str(link))
        assert (code, out) == (2, ""), err
        assert err == f"error: {link}: {option}: a symbolic link; give the file itself\n"


def test_a_huge_file_is_refused(tmp_path: Path) -> None:
    huge = tmp_path / "huge.txt"
    with huge.open("w") as out:
        out.seek(16 * 1024 * 1024)
        out.write("\n")
    code, _, err = run("webserver", "--expect", str(huge))
    assert code == 2 and "larger than 16 MiB" in err


def test_binary_and_separators_in_a_file(tmp_path: Path) -> None:
    table = tmp_path / "t.txt"
    table.write_bytes(b"accept tcp 1.2.3.4 -> 443\x00\n")
    code, _, err = run("webserver", "--expect", str(table))
    assert code == 2 and "binary" in err
    table.write_text("accept tcp 1.2.3.4 -> 443\n# hidden\u2028drop tcp -> 22\n")
    code, _, err = run("webserver", "--expect", str(table))
    assert code == 2 and ":2: U+2028 (LINE SEPARATOR) is not allowed" in err


def test_too_many_packets_and_too_many_bad_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fwgen.review.packettable.MAX_PACKETS", 5)
    table = tmp_path / "t.txt"
    table.write_text("tcp -> 22\n" * 6)
    code, _, err = run("webserver", "--file", str(table))
    assert code == 2 and err == f"error: {table}:6: more than 5 packets; split the table\n"
    table.write_text("tcp -> x\n" * 30)
    code, _, err = run("webserver", "--file", str(table))
    lines = err.splitlines()
    assert code == 2 and len(lines) == 21
    assert lines[0] == f"error: {table}:1:8: invalid port 'x'; a port is a number 1-65535"
    assert lines[-1] == "error: ... and 10 more bad lines"


# ------------------------------------------------------------------ the site example


def test_the_ci_step_checks_the_site_s_packet_tables(tmp_path: Path) -> None:
    """The workflow's step passes on examples/site as it is, and fails naming the line
    when a pull request opens SSH to everyone."""
    from tests.test_examples import steps

    script = steps()["Packets that must pass and must not"]["run"]
    shutil.copytree("examples/site", tmp_path / "site")
    fwgen = Path(sys.executable).with_name("fwgen")
    env = {
        **os.environ,
        "PATH": f"{fwgen.parent}{os.pathsep}{os.environ['PATH']}",
        "MANIFEST": "site/fwgen.yaml",  # the job's env
    }

    def step() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
        )

    passed = step()
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout == "15 packets, each as site/packets/web1.txt expects\n"
    profile = tmp_path / "site" / "profiles" / "web1.yaml"
    profile.write_text(profile.read_text() + "  - service: ssh\n")
    failed = step()
    assert failed.returncode == 1
    assert failed.stdout.splitlines() == [
        "site/packets/web1.txt:10: tcp 203.0.113.5 -> 22: expected dropped, but accepted by "
        "ssh (web1.yaml:13)",  # not in a git work tree: named within its folder
        "site/packets/web1.txt:11: tcp 10.20.0.70 -> 22: expected dropped, but accepted by "
        "ssh (web1.yaml:13)",  # not in a git work tree: named within its folder
        "2 of 15 packets disagree with site/packets/web1.txt",
    ]


def doc_examples() -> list[tuple[str, str]]:
    """(command, output) of each ``$ fwgen query`` block in docs/commands/query.md."""
    text = Path(__file__).parents[2].joinpath("docs", "commands", "query.md").read_text()
    found = []
    for block in text.split("```")[1::2]:
        language, _, body = block.partition("\n")
        first, _, rest = body.strip("\n").partition("\n")
        if language == "console" and first.startswith("$ fwgen query "):
            found.append((first[2:], rest + "\n"))
    return found


def test_the_docs_have_examples() -> None:
    assert len(doc_examples()) == 8


@pytest.mark.parametrize(("command", "output"), doc_examples())
def test_the_docs_examples_print_exactly_what_they_show(
    command: str, output: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run where the docs' examples run: beside the site example, as site/."""
    shutil.copytree("examples/site", tmp_path / "site")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, shlex.split(command)[1:])
    assert result.output == output
    assert result.exit_code == (2 if output.startswith("error:") else 0)


@pytest.mark.parametrize(
    "args",
    [
        ("webserver", "--file", "\x1b]0;PWNED\x07\x1b[2Jf"),
        ("webserver", "--expect", "e\x1b[31mname"),
        ("webserver", "tcp 1.1.1.1 -> 443", "--set", "\x1b]0;PWNED\x07x=1.0.0.0/8"),
        ("\x1b]0;PWNED\x07nope", "tcp 1.1.1.1 -> 443"),
    ],
)
def test_an_error_never_echoes_terminal_escapes(args: tuple[str, ...]) -> None:
    """A name given on the line comes back in the error with its control characters as ?,
    so an error cannot retitle or clear the admin's terminal, or name another file."""
    code, _, err = run(*args)
    assert code == 2 and err.startswith("error: ")
    assert "\x1b" not in err and "\x07" not in err
    assert "?]0;PWNED?" in err or "e?[31mname" in err


@pytest.mark.parametrize("option", ["--expect", "--file"])
def test_a_table_with_no_packet_is_refused(tmp_path: Path, option: str) -> None:
    """An emptied packet table must not pass a CI step that checks nothing."""
    table = tmp_path / "t.txt"
    table.write_text("# only a comment\n\n")
    code, out, err = run("webserver", option, str(table))
    assert (code, out) == (2, "")
    assert err == f"error: {table}: no packet in it; write one a line\n"
