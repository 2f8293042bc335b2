"""A build never writes over a file any of its hosts reads: a manifest from a pull request
could otherwise have one host's output replace another host's `extends:` parent, address
list, ports file or profile, whatever the order of the hosts and the number of processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app
from tests.build.test_build import one_error

runner = CliRunner()
SSH = "inbound:\n  - {service: ssh, from: admins}\n"
READ_BY_Z = (
    "the profile of host 'z' reads (an `extends:` profile or an address list); write it elsewhere"
)
CASES = {  # the files of the site, host z's own keys, what host a writes, the complaint
    "an extends: parent": (
        {"parent.yaml": "description: parent\n", "z.yaml": "description: z\nextends: parent\n"},
        "",
        "parent.yaml",
        f"output parent.yaml would replace a file that {READ_BY_Z}",
    ),
    "an address list": (
        {
            "lists/admins.txt": "10.1.0.0/16\n",
            "z.yaml": "description: z\nnetworks:\n  admins: [{file: lists/admins.txt}]\n" + SSH,
        },
        "",
        "lists/admins.txt",
        f"output admins.txt would replace a file that {READ_BY_Z}",
    ),
    "an address list where a several-file target writes": (
        {
            "lists/rules.v4": "10.1.0.0/16\n",
            "z.yaml": "description: z\nnetworks:\n  admins: [{file: lists/rules.v4}]\n" + SSH,
        },
        "",
        "{iptables: lists/}",
        f"output rules.v4 would replace a file that {READ_BY_Z}",
    ),
    "an address list spelled in another case": (  # one file on macOS and Windows
        {
            "lists/admins.txt": "10.1.0.0/16\n",
            "z.yaml": "description: z\nnetworks:\n  admins: [{file: lists/admins.txt}]\n" + SSH,
        },
        "",
        "lists/Admins.TXT",
        f"output Admins.TXT would replace a file that {READ_BY_Z}",
    ),
    "a ports file": (
        {"ports.yaml": "[]\n", "z.yaml": "description: z\n"},
        ", ports: [ports.yaml]",
        "ports.yaml",
        "this output would overwrite the ports file named at {manifest}:3 (hosts.z.ports[0])",
    ),
    "a profile": (
        {"z.yaml": "description: z\n"},
        "",
        "z.yaml",
        "this output would overwrite the profile named at {manifest}:3 (hosts.z.profile)",
    ),
}


def site(folder: Path, case: str) -> tuple[Path, str]:
    files, keys, written, complaint = CASES[case]
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    targets = written if written.startswith("{") else f"{{nftables: {written}}}"
    path = folder / "fwgen.yaml"
    path.write_text(
        "hosts:\n"
        f"  a: {{profile: webserver, set: {{admins: 10.0.0.0/8}}, targets: {targets}}}\n"
        f"  z: {{profile: z.yaml{keys}, targets: {{nftables: z.nft}}}}\n"
    )
    target = "iptables" if written.startswith("{") else "nftables"
    prefix = f"error: {path}:2: hosts.a.targets.{target}: "
    return path, prefix + complaint.format(manifest=path) + "\n"


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_an_output_never_replaces_what_a_later_host_reads(
    case: str, jobs: str, tmp_path: Path
) -> None:
    path, expected = site(tmp_path, case)
    before = contents(tmp_path)
    for extra in ([], ["--check"]):
        result = runner.invoke(app, ["build", str(path), "--jobs", jobs, *extra])
        assert one_error(result) == expected
    assert contents(tmp_path) == before


def test_an_output_never_replaces_what_an_earlier_host_reads(tmp_path: Path) -> None:
    (tmp_path / "parent.yaml").write_text("description: parent\n")
    (tmp_path / "a.yaml").write_text("description: a\nextends: parent\n")
    path = tmp_path / "fwgen.yaml"
    path.write_text(
        "hosts:\n  a: {profile: a.yaml, targets: {nftables: a.nft}}\n"
        "  z: {profile: webserver, targets: {nftables: parent.yaml}}\n"
    )
    for jobs in ("1", "2"):
        result = runner.invoke(app, ["build", str(path), "--jobs", jobs])
        assert one_error(result) == (
            f"error: {path}:3: hosts.z.targets.nftables: output parent.yaml would replace a "
            "file that the profile of host 'a' reads (an `extends:` profile or an address "
            "list); write it elsewhere\n"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml", "fwgen.yaml", "parent.yaml"]


def test_an_output_never_replaces_a_ports_file_of_fwgen_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$FWGEN_PORTS is the site's (a CI job's), read for every host: a manifest from a pull
    request must not replace it."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "ports.yaml").write_text("[]\n")
    monkeypatch.setenv("FWGEN_PORTS", f"{tmp_path}/missing.yaml:{tmp_path}/./site/ports.yaml")
    path = tmp_path / "site" / "fwgen.yaml"
    path.write_text("hosts:\n  a: {profile: webserver, targets: {nftables: ports.yaml}}\n")
    for jobs in ("1", "2"):
        result = runner.invoke(app, ["build", str(path), "--jobs", jobs])
        assert one_error(result) == (
            f"error: {path}:2: hosts.a.targets.nftables: this output would overwrite the "
            f"ports file {tmp_path}/./site/ports.yaml named by $FWGEN_PORTS\n"
        )
    assert (tmp_path / "site" / "ports.yaml").read_text() == "[]\n"


@pytest.mark.parametrize(("writer", "reader"), [(1, 8), (8, 3), (10, 2)])
def test_what_a_worker_reads_is_never_replaced_by_another_process(
    writer: int, reader: int, tmp_path: Path
) -> None:
    """Of 12 hosts in two processes, h02, h04, ... h10 are rendered by the second: a file one
    process's host reads is never written by a host of the other."""
    (tmp_path / "parent.yaml").write_text("description: parent\n")
    (tmp_path / "child.yaml").write_text("description: child\nextends: parent\n")
    hosts = [
        f"  h{i:02}: {{profile: "
        f"{'child.yaml' if i == reader else 'webserver, set: {admins: 10.0.0.0/8}'}, "
        f"targets: {{nftables: {'parent.yaml' if i == writer else f'out/h{i:02}.nft'}}}}}"
        for i in range(12)
    ]
    path = tmp_path / "fwgen.yaml"
    path.write_text("\n".join(["hosts:", *hosts]) + "\n")
    before = contents(tmp_path)
    for jobs in ("1", "2"):
        result = runner.invoke(app, ["build", str(path), "--jobs", jobs])
        assert one_error(result) == (
            f"error: {path}:{writer + 2}: hosts.h{writer:02}.targets.nftables: output "
            f"parent.yaml would replace a file that the profile of host 'h{reader:02}' reads "
            "(an `extends:` profile or an address list); write it elsewhere\n"
        )
    assert contents(tmp_path) == before
