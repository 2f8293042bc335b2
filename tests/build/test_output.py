"""Writing and comparing output files: all or nothing, and only ever regular files."""

from __future__ import annotations

import os
import signal
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fwgen.build import output
from fwgen.cli.app import app
from fwgen.errors import FwgenError

runner = CliRunner()
# Real admins: the placeholders would add a warning to the one line these tests read.
REAL_ADMINS = ["--set", "admins=10.1.0.0/16"]
RENDER_NFT = ["render", "webserver", "-t", "nftables", *REAL_ADMINS]
RENDER_IPT = ["render", "webserver", "-t", "iptables", *REAL_ADMINS]


def one_error(result: object) -> str:
    """The one line a user mistake prints (exit 2, no traceback)."""
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    assert result.exception is None or isinstance(result.exception, SystemExit)  # type: ignore[attr-defined]
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert stderr.startswith("error: ") and len(stderr.splitlines()) == 1, stderr
    return stderr


def old_rules(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "rules.v4").write_text("old v4\n")
    (folder / "rules.v6").write_text("old v6\n")


def contents(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir()) if p.is_file()}


# -------------------------------------------------------------- symlinks


def test_o_onto_a_symlink_writes_the_file_it_names_and_keeps_its_mode(tmp_path: Path) -> None:
    real = tmp_path / "real.nft"
    real.write_text("old\n")
    real.chmod(0o640)
    link = tmp_path / "link.nft"
    link.symlink_to("real.nft")
    result = runner.invoke(app, [*RENDER_NFT, "-o", str(link)])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == "real.nft"
    assert real.read_text().startswith("#!/usr/sbin/nft -f")
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


def test_o_onto_a_dangling_symlink_creates_the_file_it_names(tmp_path: Path) -> None:
    link = tmp_path / "link.nft"
    link.symlink_to("made.nft")
    result = runner.invoke(app, [*RENDER_NFT, "-o", str(link)])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and (tmp_path / "made.nft").read_text().startswith("#!")
    assert stat.S_IMODE((tmp_path / "made.nft").stat().st_mode) == 0o644


def test_a_symlink_loop_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    stderr = one_error(runner.invoke(app, [*RENDER_NFT, "-o", str(tmp_path / "a")]))
    assert "symbolic links" in stderr
    assert one_error(runner.invoke(app, [*RENDER_NFT, "-o", str(tmp_path / "a"), "--check"]))


def test_a_nul_byte_in_a_path_is_one_error() -> None:
    with pytest.raises(FwgenError, match="NUL byte"):
        output.write_atomic(Path("out\0.nft"), "x\n")
    with pytest.raises(FwgenError, match="NUL byte"):
        output.read_current(Path("out\0.nft"), 10)


# -------------------------------------------------------------- what -o may replace


@pytest.fixture
def special(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A path to something that is not a regular file, and how fwgen should call it."""
    kind = request.param
    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path, 0o666)
        yield path, "a FIFO"
    elif kind == "socket":
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))
            yield path, "a socket"
    elif kind == "device":
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
        except (PermissionError, AttributeError):
            pytest.skip("cannot make a device node here")
        yield path, "a character device"
    elif kind == "stdout-pipe":
        read, write = os.pipe()
        try:
            yield Path(f"/proc/self/fd/{write}"), "a FIFO"
        finally:
            os.close(read)
            os.close(write)
    else:
        path.mkdir()
        yield path, "a directory"


@pytest.mark.parametrize(
    "special", ["fifo", "socket", "device", "stdout-pipe", "directory"], indirect=True
)
def test_o_refuses_anything_but_a_regular_file(special: tuple[Path, str]) -> None:
    path, kind = special
    before = path.lstat()
    stderr = one_error(runner.invoke(app, [*RENDER_NFT, "-o", str(path)]))
    assert f"{path}: is {kind}, not a regular file" in stderr
    if kind != "a directory":
        assert "standard output" in stderr
    after = path.lstat()
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    if path.parent.name != "fd":
        assert sorted(os.listdir(path.parent)) == [path.name]  # no temporary left


@pytest.mark.parametrize("special", ["fifo", "device"], indirect=True)
def test_discover_o_refuses_a_special_file(special: tuple[Path, str]) -> None:
    path, kind = special
    result = runner.invoke(
        app,
        ["discover", "--listening", "-", "-o", str(path)],
        input="tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\n",
    )
    assert f"is {kind}, not a regular file" in one_error(result)
    assert stat.S_IFMT(path.lstat().st_mode) != stat.S_IFREG


def test_a_new_file_is_0644_and_an_existing_one_keeps_its_mode(tmp_path: Path) -> None:
    old_umask = os.umask(0o077)
    try:
        output.write_atomic(tmp_path / "new", "x\n")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o644
    (tmp_path / "kept").write_text("old\n")
    (tmp_path / "kept").chmod(0o2750)
    output.write_atomic(tmp_path / "kept", "x\n")
    assert stat.S_IMODE((tmp_path / "kept").stat().st_mode) == 0o2750


@pytest.mark.parametrize(
    ("profile", "target", "script"),
    [("docker-host", "iptables", ""), ("docker-host", "ufw", "fwgen-ufw.sh")],
)
def test_a_new_shell_script_is_executable_as_the_readme_runs_it(
    tmp_path: Path, profile: str, target: str, script: str
) -> None:
    """The documented systemd drop-in (docs/containers.md) runs the loader by its path: 0644 would stop Docker."""
    out = tmp_path / "etc-fwgen"
    sets = ["--set", "admins=10.1.0.0/16", "--set", "web_clients=10.2.0.0/16"]
    to = out / script  # a folder for iptables, a file for ufw
    result = runner.invoke(app, ["render", profile, "-t", target, *sets, "-o", str(to)])
    assert result.exit_code == 0, result.output
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes.pop(script or "fwgen-iptables.sh") == 0o755
    assert set(modes.values()) <= {0o644}  # rules.v4, rules.v6, ipsets


def test_a_long_file_name_is_written_and_a_too_long_one_is_one_line(tmp_path: Path) -> None:
    long = tmp_path / ("x" * 250)
    result = runner.invoke(app, [*RENDER_NFT, "-o", str(long)])
    assert result.exit_code == 0, result.output
    assert os.listdir(tmp_path) == [long.name]
    assert "too long" in one_error(
        runner.invoke(app, [*RENDER_NFT, "-o", str(tmp_path / ("y" * 300))])
    )


# -------------------------------------------------------------- several files: all or none


def test_a_failed_second_rename_puts_the_first_file_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "rules"
    old_rules(out)
    real = os.replace
    calls: list[str] = []

    def fail_second(src: str, dst: str) -> None:
        calls.append(str(dst))
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(output.os, "replace", fail_second)
    stderr = one_error(runner.invoke(app, [*RENDER_IPT, "-o", str(out)]))
    assert "No space left on device" in stderr
    assert contents(out) == {"rules.v4": "old v4\n", "rules.v6": "old v6\n"}
    assert sorted(os.listdir(out)) == ["rules.v4", "rules.v6"]  # no temporary or backup left


def test_a_failed_second_rename_removes_a_first_file_that_was_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "rules"
    out.mkdir()
    real = os.replace
    calls: list[str] = []

    def fail_second(src: str, dst: str) -> None:
        calls.append(str(dst))
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        real(src, dst)

    monkeypatch.setattr(output.os, "replace", fail_second)
    one_error(runner.invoke(app, [*RENDER_IPT, "-o", str(out)]))
    assert os.listdir(out) == []


def test_ctrl_c_between_two_renames_replaces_both_then_says_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "rules"
    old_rules(out)
    real = os.replace

    def interrupted_after_first(src: str, dst: str) -> None:
        real(src, dst)
        if str(dst).endswith("rules.v4"):
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, between the two renames

    monkeypatch.setattr(output.os, "replace", interrupted_after_first)
    result = runner.invoke(app, [*RENDER_IPT, "-o", str(out)])
    assert (result.exit_code, result.stderr) == (130, "fwgen: interrupted\n")
    written = contents(out)
    assert sorted(written) == ["ipsets", "rules.v4", "rules.v6"]  # no temporary or backup left
    assert "old v4\n" not in written.values() and "old v6\n" not in written.values()


def test_ctrl_c_as_a_temporary_file_is_made_leaves_no_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "rules"
    old_rules(out)
    before = contents(out)
    real = tempfile.mkstemp
    made: list[str] = []

    def interrupted_once_made(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name = real(*args, **kwargs)
        made.append(name)
        if len(made) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, the second file just made
        return fd, name

    monkeypatch.setattr(output.tempfile, "mkstemp", interrupted_once_made)
    result = runner.invoke(app, [*RENDER_IPT, "-o", str(out)])
    assert (result.exit_code, result.stderr) == (130, "fwgen: interrupted\n")
    assert len(made) == 2
    assert contents(out) == before  # no temporary file left, no file replaced


def test_a_directory_where_rules_v6_goes_leaves_rules_v4_alone(tmp_path: Path) -> None:
    out = tmp_path / "rules"
    out.mkdir()
    (out / "rules.v4").write_text("old v4\n")
    (out / "rules.v6").mkdir()
    stderr = one_error(runner.invoke(app, [*RENDER_IPT, "-o", str(out)]))
    assert f"{out / 'rules.v6'}: is a directory, not a regular file" in stderr
    assert (out / "rules.v4").read_text() == "old v4\n"
    assert sorted(os.listdir(out)) == ["rules.v4", "rules.v6"]


def test_a_folder_that_refuses_new_files_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "rules"
    old_rules(out)
    real = output.tempfile.mkstemp
    calls: list[object] = []

    def refuse_second(*args: object, **kwargs: object) -> tuple[int, str]:
        calls.append(kwargs)
        if len(calls) == 2:
            raise PermissionError(13, "Permission denied")
        return real(*args, **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(output.tempfile, "mkstemp", refuse_second)
    assert "Permission denied" in one_error(runner.invoke(app, [*RENDER_IPT, "-o", str(out)]))
    assert contents(out) == {"rules.v4": "old v4\n", "rules.v6": "old v6\n"}
    assert sorted(os.listdir(out)) == ["rules.v4", "rules.v6"]


def test_a_read_only_folder_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "rules"
    old_rules(out)
    out.chmod(0o555)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("this user writes into read-only folders (root)")
        assert "not writable" in one_error(runner.invoke(app, [*RENDER_IPT, "-o", str(out)]))
    finally:
        out.chmod(0o755)
    assert contents(out) == {"rules.v4": "old v4\n", "rules.v6": "old v6\n"}


def test_a_failed_restore_keeps_the_backup_and_says_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "rules"
    old_rules(out)
    real = os.replace
    calls: list[str] = []

    def fail_from_third(src: str, dst: str) -> None:
        calls.append(str(dst))
        if len(calls) >= 3:  # ipsets (the rate limits' trackers), rules.v4, then no more
            raise OSError(5, "Input/output error")
        real(src, dst)

    monkeypatch.setattr(output.os, "replace", fail_from_third)
    result = runner.invoke(app, [*RENDER_IPT, "-o", str(out)])
    assert result.exit_code == 2
    assert "could not put back" in result.stderr and "previous file is kept as" in result.stderr
    kept = [p for p in out.iterdir() if p.name.endswith(".old")]
    assert len(kept) == 1 and kept[0].read_text() == "old v4\n"


# -------------------------------------------------------------- folders


def test_render_makes_the_folders_o_needs_and_removes_them_when_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = runner.invoke(app, [*RENDER_IPT, "-o", str(tmp_path / "web1")])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(tmp_path / "web1")) == ["ipsets", "rules.v4", "rules.v6"]
    deeper = tmp_path / "missing" / "web1"
    assert runner.invoke(app, [*RENDER_IPT, "-o", str(deeper)]).exit_code == 0
    assert sorted(os.listdir(deeper)) == ["ipsets", "rules.v4", "rules.v6"]

    def no_space(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output.os, "replace", no_space)
    for args in (RENDER_IPT, RENDER_NFT):
        target = tmp_path / "new" / "deep" / ("web1" if args is RENDER_IPT else "x.nft")
        stderr = one_error(runner.invoke(app, [*args, "-o", str(target)]))
        assert "No space left on device" in stderr
        assert not (tmp_path / "new").exists()
    assert sorted(os.listdir(tmp_path)) == ["missing", "web1"]


def test_a_multi_file_target_needs_a_folder(tmp_path: Path) -> None:
    out = tmp_path / "rules"
    out.write_text("a file\n")
    for extra in ([], ["--check"]):
        stderr = one_error(runner.invoke(app, [*RENDER_IPT, "-o", str(out), *extra]))
        assert "-o must name a directory" in stderr
    assert out.read_text() == "a file\n"


@pytest.mark.parametrize(
    ("args", "written", "file"),
    [
        (RENDER_NFT, "new/", "fwgen.nft"),
        (RENDER_NFT, "new/.", "fwgen.nft"),
        (["render", "webserver", "-t", "ufw", *REAL_ADMINS], "new/", "fwgen-ufw.sh"),
        ([*RENDER_IPT, "--family", "ipv6"], "new/", "rules.v6"),
    ],
)
def test_o_naming_a_folder_for_one_file_is_refused(
    args: list[str], written: str, file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A final / means a folder: the one file is not written under the folder's name."""
    monkeypatch.chdir(tmp_path)
    for extra in ([], ["--check"]):
        stderr = one_error(runner.invoke(app, [*args, "-o", written, *extra]))
        target = args[3]
        assert stderr == (
            f"error: {written}: names a folder, but {target} writes one file: give a file "
            f"name, such as {written.rstrip('/')}/{file}\n"
        )
    assert os.listdir(tmp_path) == []
    result = runner.invoke(app, [*args, "-o", f"new/{file}"])  # the fix it gives
    assert result.exit_code == 0, result.output
    assert os.listdir(tmp_path / "new") == [file]


def test_discover_o_naming_a_folder_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["discover", "--listening", "-", "-o", f"{tmp_path}/new/"],
        input="tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\n",
    )
    assert one_error(result) == (
        f"error: {tmp_path}/new/: names a folder, but discover writes one file: give a file "
        f"name, such as {tmp_path}/new/draft.yaml\n"
    )
    assert os.listdir(tmp_path) == []


# -------------------------------------------------------------- --check


def test_check_against_a_directory_is_an_error(tmp_path: Path) -> None:
    stderr = one_error(runner.invoke(app, [*RENDER_NFT, "-o", str(tmp_path), "--check"]))
    assert f"{tmp_path}: is a directory" in stderr


@pytest.mark.parametrize("special", ["fifo", "device"], indirect=True)
def test_check_against_a_special_file_is_an_error_and_does_not_hang(
    special: tuple[Path, str],
) -> None:
    path, kind = special
    stderr = one_error(runner.invoke(app, [*RENDER_NFT, "-o", str(path), "--check"]))
    assert f"is {kind}, not a regular file" in stderr


def test_check_against_an_unreadable_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "fwgen.nft"
    out.write_text("old\n")
    real = os.open

    def deny(path: object, *args: object, **kwargs: object) -> int:
        if str(path) == str(out):
            raise PermissionError(13, "Permission denied")
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(output.os, "open", deny)
    stderr = one_error(runner.invoke(app, [*RENDER_NFT, "-o", str(out), "--check"]))
    assert "not readable (permission denied)" in stderr


def test_a_file_that_is_not_utf8_is_stale_and_shown_safely(tmp_path: Path) -> None:
    out = tmp_path / "fwgen.nft"
    out.write_bytes(b"\xff\xfe old\n\x1b[2Jcleared\n")
    result = runner.invoke(app, [*RENDER_NFT, "-o", str(out), "--check"])
    assert result.exit_code == 1, result.output
    assert result.stderr == f"stale: {out}\n"
    assert "-\\xff\\xfe old\n" in result.stdout and "-\\x1b[2Jcleared\n" in result.stdout
    assert "\x1b" not in result.stdout
    assert "+#!/usr/sbin/nft -f\n" in result.stdout


def test_a_current_multi_file_output_passes_check(tmp_path: Path) -> None:
    out = tmp_path / "rules"
    assert runner.invoke(app, [*RENDER_IPT, "-o", str(out)]).exit_code == 0
    assert runner.invoke(app, [*RENDER_IPT, "-o", str(out), "--check"]).exit_code == 0
    (out / "rules.v6").write_text("changed\n")
    stale = runner.invoke(app, [*RENDER_IPT, "-o", str(out), "--check"])
    assert stale.exit_code == 1 and stale.stderr == f"stale: {out / 'rules.v6'}\n"
