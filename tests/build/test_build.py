"""A manifest from a pull request: it may only write (and read) inside its own folder tree,
two entries never share a file, and `--check` never crashes on what it finds."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fwgen.build import output
from fwgen.cli.app import app
from tests.conftest import REPO

runner = CliRunner()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A repository checkout with a site folder, and a folder beside it that is not ours."""
    (tmp_path / "repo" / "site").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return tmp_path / "repo" / "site"


def manifest(site: Path, targets: str, host: str = "web1", extra: str = "") -> str:
    path = site / "fwgen.yaml"
    path.write_text(f"hosts:\n  {host}:\n    profile: webserver\n{extra}    targets:\n{targets}")
    return str(path)


def build(*args: str) -> object:
    return runner.invoke(app, ["build", *args])


def one_error(result: object) -> str:
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    assert result.exception is None or isinstance(result.exception, SystemExit)  # type: ignore[attr-defined]
    stderr: str = result.stderr  # type: ignore[attr-defined]
    # warnings about the profiles (their placeholder admins) may come before it
    errors = [line for line in stderr.splitlines() if not line.startswith("warning: ")]
    assert len(errors) == 1 and errors[0].startswith("error: "), stderr
    return errors[0] + "\n"


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -------------------------------------------------------------- the manifest's folder tree

ESCAPES = {  # what the manifest names, an --allow-outside (relative to the site), the complaint
    "parent": ("../../outside/x.nft", None, "--allow-outside"),
    "dot-dot inside a name": ("x/../../../outside/x.nft", None, "--allow-outside"),
    "absolute": ("{outside}/x.nft", None, "--allow-outside"),
    "git hooks": ("../.git/hooks/pre-commit", None, "--allow-outside"),
    "git hooks of an allowed folder": ("../.git/hooks/pre-commit", "..", "inside a .git folder"),
    "git folder in the site": (".git/x.nft", None, "inside a .git folder"),
    "git folder with a final dot (Windows: .git)": (".git./x.nft", None, "inside a .git folder"),
}


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_an_output_outside_the_manifest_folder_is_refused(case: str, site: Path) -> None:
    (site.parent / ".git" / "hooks").mkdir(parents=True)
    outside = site.parent.parent / "outside"
    dest, allowed, complaint = ESCAPES[case]
    path = manifest(site, f"      nftables: {dest.format(outside=outside)}\n")
    allow = ["--allow-outside", str(site / allowed)] if allowed else []
    for extra in ([], ["--check"]):
        stderr = one_error(build(path, *allow, *extra))
        assert stderr.startswith(f"error: {path}:5: hosts.web1.targets.nftables: output '")
        assert complaint in stderr
    assert files_under(outside) == [] and files_under(site.parent / ".git") == ["hooks"]
    assert files_under(site) == ["fwgen.yaml"]


def test_allow_outside_lets_the_manifest_write_there(site: Path) -> None:
    outside = site.parent.parent / "outside"
    path = manifest(site, "      nftables: ../../outside/new/x.nft\n")
    one_error(build(path))
    result = build(path, "--allow-outside", str(outside))
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert files_under(outside) == ["new", "new/x.nft"]


def test_allow_outside_does_not_create_the_allowed_folder(site: Path) -> None:
    missing = site.parent.parent / "missing"
    path = manifest(site, "      nftables: ../../missing/x.nft\n")
    stderr = one_error(build(path, "--allow-outside", str(missing)))
    assert "does not exist" in stderr and not missing.exists()


@pytest.mark.parametrize("where", ["file", "folder"])
def test_a_symlink_planted_in_the_repository_cannot_lead_out(site: Path, where: str) -> None:
    outside = site.parent.parent / "outside"
    (site / "generated").mkdir()
    if where == "file":
        (outside / "victim").write_text("precious\n")
        (site / "generated" / "web1.nft").symlink_to(outside / "victim")
    else:
        (site / "generated" / "web1").symlink_to(outside)
    path = manifest(site, "      nftables: generated/web1.nft\n      iptables: generated/web1/\n")
    for extra in ([], ["--check"]):
        stderr = one_error(build(path, *extra))
        assert "--allow-outside" in stderr and f"{path}:" in stderr
    assert files_under(outside) == (["victim"] if where == "file" else [])
    if where == "file":
        assert (outside / "victim").read_text() == "precious\n"


def test_ports_and_profile_files_must_be_inside_too(site: Path) -> None:
    outside = site.parent.parent / "outside"
    (outside / "ports.yaml").write_text("[]\n")
    (outside / "web.yaml").write_text("description: x\n")
    path = site / "fwgen.yaml"
    path.write_text(
        "hosts:\n  web1:\n    profile: webserver\n    ports: [../../outside/ports.yaml]\n"
        "    targets: {nftables: a.nft}\n"
        "  web2:\n    profile: ../../outside/web.yaml\n    targets: {nftables: b.nft}\n"
    )
    result = build(str(path))
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert result.stderr.splitlines() == [  # type: ignore[attr-defined]
        f"error: {path}:4: hosts.web1.ports[0]: ports file '../../outside/ports.yaml' is outside "
        f"{site}, the folder of the file that names it; move it inside, or pass "
        f"--allow-outside {outside} to allow that folder",
        f"error: {path}:7: hosts.web2.profile: profile '../../outside/web.yaml' is outside "
        f"{site}, the folder of the file that names it; move it inside, or pass "
        f"--allow-outside {outside} to allow that folder",
    ]
    assert files_under(site) == ["fwgen.yaml"]
    allowed = build(str(path), "--allow-outside", str(outside))
    assert allowed.exit_code == 0, allowed.output  # type: ignore[attr-defined]


def test_a_symlinked_manifest_keeps_the_folder_it_is_named_in(site: Path) -> None:
    outside = site.parent.parent / "outside"
    (outside / "fwgen.yaml").write_text(
        "hosts:\n  web1:\n    profile: webserver\n    targets: {nftables: ../../outside/x.nft}\n"
    )
    (site / "fwgen.yaml").symlink_to(outside / "fwgen.yaml")
    one_error(build(str(site / "fwgen.yaml")))
    assert files_under(outside) == ["fwgen.yaml"]


def test_missing_folders_are_made_inside_the_manifest_folder(site: Path) -> None:
    path = manifest(site, "      nftables: out/deep/web1.nft\n      iptables: out/web1/\n")
    result = build(path)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert files_under(site / "out") == [
        "deep",
        "deep/web1.nft",
        "web1",
        "web1/ipsets",
        "web1/rules.v4",
        "web1/rules.v6",
    ]


HOSTILE_NAMES = {
    "a NUL byte": ('"out/a\\0.nft"', "control character"),
    "a newline": ('"out/a\\nerror: fine.nft"', "control character"),
    "a right-to-left override": ('"out/a\\u202e.nft"', "control character"),
    "a very long name": ("out/" + "x" * 300 + ".nft", "too long"),
    "a directory": ("out", "is a directory"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_NAMES))
def test_hostile_output_names_are_one_located_line(case: str, site: Path) -> None:
    (site / "out").mkdir()
    name, message = HOSTILE_NAMES[case]
    path = manifest(site, f"      nftables: {name}\n")
    for extra in ([], ["--check"]):
        stderr = one_error(build(path, *extra))
        assert stderr.startswith(f"error: {path}:5: hosts.web1.targets.nftables: "), stderr
        assert message in stderr
    assert files_under(site) == ["fwgen.yaml", "out"]


def test_a_symlink_loop_where_an_output_goes_is_one_located_line(site: Path) -> None:
    (site / "out").mkdir()
    (site / "out" / "a.nft").symlink_to("b.nft")
    (site / "out" / "b.nft").symlink_to("a.nft")
    path = manifest(site, "      nftables: out/a.nft\n")
    for extra in ([], ["--check"]):
        stderr = one_error(build(path, *extra))
        assert stderr.startswith(f"error: {path}:5: hosts.web1.targets.nftables: ")
        assert "symbolic links" in stderr


@pytest.mark.parametrize(
    ("target", "written", "file"),
    [
        ("nftables", "out/web1/", "fwgen.nft"),
        ("nftables", "out/web1/.", "fwgen.nft"),
        ("ufw", "out/web1/", "fwgen-ufw.sh"),
        ("windows", "out/", "fwgen.ps1"),
    ],
)
def test_a_folder_for_a_one_file_target_is_refused(
    target: str, written: str, file: str, site: Path
) -> None:
    """An admin who writes a final / means a folder: never a file named like the folder."""
    path = manifest(site, f"      {target}: {written}\n")
    for extra in ([], ["--check"]):
        stderr = one_error(build(path, *extra))
        assert stderr == (
            f"error: {path}:5: hosts.web1.targets.{target}: output {written!r} names a folder, "
            f"but {target} writes one file: give a file name, such as "
            f"{written.rstrip('/')}/{file}\n"
        )
    assert files_under(site) == ["fwgen.yaml"]


def test_an_unknown_target_is_located(site: Path) -> None:
    path = manifest(site, "      nftable: x.nft\n")
    stderr = one_error(build(path))
    assert stderr.startswith(f"error: {path}:5: hosts.web1.targets.nftable: unknown target")


# -------------------------------------------------------------- one file, one owner

COLLISIONS = {
    "two hosts, one file": ("      nftables: out/a.nft\n", "      nftables: out/a.nft\n"),
    "two spellings": ("      nftables: out/a.nft\n", "      nftables: ./out/x/../a.nft\n"),
    "a file inside a multi-file folder": (
        "      iptables: out/\n",
        "      nftables: out/rules.v6\n",
    ),
    "a file that another uses as a folder": (
        "      nftables: out/web\n",
        "      iptables: out/web/\n",
    ),
    "the manifest itself": ("      nftables: a.nft\n", "      nftables: fwgen.yaml\n"),
    "names that differ in case": ("      nftables: out/Web.nft\n", "      nftables: out/web.nft\n"),
    # Windows drops a name's final dots and blanks: one file there.
    "a trailing dot": ("      nftables: out/a.nft\n", "      nftables: out/a.nft.\n"),
    "a trailing blank": ("      nftables: out/a.nft\n", '      nftables: "out/a.nft. "\n'),
    "the manifest with a trailing dot": (
        "      nftables: a.nft\n",
        "      nftables: fwgen.yaml.\n",
    ),
}


@pytest.mark.parametrize("case", sorted(COLLISIONS))
def test_two_outputs_of_one_file_are_refused_before_anything_is_written(
    case: str, site: Path
) -> None:
    first, second = COLLISIONS[case]
    path = site / "fwgen.yaml"
    text = (
        "hosts:\n"
        f"  a:\n    profile: webserver\n    targets:\n{first}"
        f"  b:\n    profile: mailserver\n    targets:\n{second}"
    )
    path.write_text(text)
    for extra in ([], ["--check"]):
        stderr = one_error(build(str(path), *extra))
        assert stderr.startswith(f"error: {path}:9: hosts.b.targets.")
        if case.startswith("the manifest"):
            assert "would overwrite the manifest" in stderr
        else:
            assert f"{path}:5 (hosts.a.targets." in stderr
    assert files_under(site) == ["fwgen.yaml"]
    assert path.read_text() == text


def test_two_targets_of_one_host_naming_one_file_are_refused(site: Path) -> None:
    path = manifest(site, "      nftables: out/x\n      ufw: out/x\n")
    stderr = one_error(build(path))
    assert f"{path}:6: hosts.web1.targets.ufw: " in stderr and f"{path}:5 " in stderr


# -------------------------------------------------------------- writing and --check


def test_build_writes_every_changed_file_or_none(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = manifest(site, "      nftables: out/web1.nft\n      iptables: out/web1/\n")
    assert build(path).exit_code == 0  # type: ignore[attr-defined]
    shutil.copy(REPO / "tests" / "data" / "good" / "every-feature.yaml", site / "p.yaml")
    (site / "fwgen.yaml").write_text(Path(path).read_text().replace("webserver", "p.yaml"))
    out = site / "out"
    before = {p: (out / p).read_bytes() for p in files_under(out) if "." in p}
    real = os.replace
    calls: list[str] = []

    def fail_third(src: str, dst: str) -> None:
        calls.append(str(dst))
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(output.os, "replace", fail_third)
    assert "No space left" in one_error(build(path))
    assert {p: (out / p).read_bytes() for p in before} == before
    assert files_under(out) == ["web1", "web1.nft", "web1/ipsets", "web1/rules.v4", "web1/rules.v6"]


def test_build_check_reads_what_it_finds_without_crashing(site: Path) -> None:
    path = manifest(site, "      nftables: out/web1.nft\n      iptables: out/web1/\n")
    (site / "out").mkdir()
    (site / "out" / "web1.nft").write_bytes(b"\xff not utf-8\n")
    stale = build(path, "--check")
    assert stale.exit_code == 1  # type: ignore[attr-defined]
    assert "-\\xff not utf-8" in stale.stdout  # type: ignore[attr-defined]
    (site / "out" / "web1").write_text("a file where a folder belongs\n")
    stderr = one_error(build(path, "--check"))
    assert f"{path}:6: hosts.web1.targets.iptables: " in stderr
    assert "this target writes several files" in stderr


# -------------------------------------------------------------- warnings and --strict

LIMITED = (
    "description: x\ninbound:\n  - {service: ssh, from: [10.0.0.0/8], limit: 3/minute}\n"
    "  - {icmpv6: [nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert]}\n"
    "  - {icmpv6: [mld-listener-query], from: [fe80::/10]}\n"
)


def limited_site(site: Path) -> str:
    (site / "web1.yaml").write_text(LIMITED)
    path = site / "fwgen.yaml"
    path.write_text(
        "hosts:\n"
        "  web1:\n    profile: web1.yaml\n"
        "    targets: {windows: out/web1.ps1, nftables: out/web1.nft}\n"
        "  mail1:\n    profile: mailserver\n    targets: {nftables: out/mail1.nft}\n"
    )
    return str(path)


def test_build_prints_every_warning_with_its_host_and_target(site: Path) -> None:
    result = build(limited_site(site))
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    stderr = result.stderr.splitlines()  # type: ignore[attr-defined]
    assert (
        "warning: web1 (windows): ssh (web1.yaml:3): Windows Firewall cannot rate-limit; "
        "the 3/minute limit is not applied"
    ) in stderr
    assert not any(line.startswith("warning: web1 (nftables)") for line in stderr)
    # about the profile, whatever the target: once per host
    placeholder = [line for line in stderr if "documentation addresses" in line]
    assert len(placeholder) == 1 and placeholder[0].startswith(
        "warning: mail1: network 'admins' (profiles/mailserver.yaml:"
    )
    assert files_under(site / "out") == ["mail1.nft", "web1.nft", "web1.ps1"]


def test_build_strict_fails_on_an_approximation_and_writes_nothing(site: Path) -> None:
    manifest = limited_site(site)
    for extra in ([], ["--check"]):
        result = build(manifest, "--strict", *extra)
        assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
        stderr: str = result.stderr  # type: ignore[attr-defined]
        assert "warning: web1 (windows): ssh (web1.yaml:3): Windows Firewall" in stderr
        assert stderr.splitlines()[-1] == (
            "error: --strict: 1 approximation (above); nothing written"
        )
        assert not (site / "out").exists()
    # the placeholder admins of mail1 are a warning about the profile: --strict passes
    (site / "web1.yaml").write_text(LIMITED.replace(", limit: 3/minute", ""))
    result = build(manifest, "--strict")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "warning: mail1: network 'admins'" in result.stderr  # type: ignore[attr-defined]
    assert files_under(site / "out") == ["mail1.nft", "web1.nft", "web1.ps1"]


def test_a_bad_set_in_a_manifest_names_the_manifest_line(site: Path) -> None:
    path = manifest(
        site,
        "      nftables: out/web1.nft\n",
        extra="    set:\n      admns: [10.0.0.0/8]\n",
    )
    assert one_error(build(path)) == (
        f"error: {path}:5: hosts.web1.set.admns: unknown network 'admns' (did you mean 'admins'?)\n"
    )
    path = manifest(
        site,
        "      nftables: out/web1.nft\n",
        extra="    set:\n      admins: [10.0.0.0/8, 10.1.2.3/8]\n",
    )
    assert one_error(build(path)).startswith(
        f"error: {path}:5: hosts.web1.set.admins[1]: '10.1.2.3/8': host bits set"
    )
    path = manifest(site, "      nftables: out/web1.nft\n", extra="    set:\n      admins: []\n")
    result = build(path)
    assert result.exit_code == 0  # type: ignore[attr-defined]
    assert (
        "warning: web1: network 'admins' (fwgen.yaml:5) is empty" in result.stderr  # type: ignore[attr-defined]
    )
    assert "--set admins)" not in result.stderr  # type: ignore[attr-defined]


def test_no_manifest_says_how_to_name_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    stderr = one_error(runner.invoke(app, ["build"]))
    assert stderr == (
        "error: fwgen.yaml: manifest file not found; give its path "
        "(fwgen build site/fwgen.yaml) or write one (docs/commands/build.md)\n"
    )
