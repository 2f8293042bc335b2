from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import applyfakes
from tests.machine_guard import changes, machine_state

REPO = Path(__file__).resolve().parent.parent
# Every built-in profile: a new one gets its snapshots and checks without being listed here.
BUILTIN = sorted(p.stem for p in (REPO / "profiles").glob("*.yaml"))
# The networks each built-in profile leaves as placeholders, written from the profiles.
NETWORKS_TO_SET = {
    "base": [],
    "bastion": ["internal"],
    "database": ["admins", "app"],
    "dns-authoritative": ["admins", "secondaries"],
    "dns-resolver": ["admins", "lan"],
    "docker-host": ["admins", "web_clients"],
    "fileserver": ["admins", "lan"],
    "kubernetes-node": ["admins", "cluster"],
    "mailserver": ["admins"],
    "minimal": ["admins"],
    "monitoring": ["admins", "monitoring"],
    "vpn-gateway": ["admins"],
    "webserver": ["admins"],
    "workstation": [],
}
# The interface groups each built-in profile leaves empty, written from the profiles.
INTERFACES_TO_SET = {"database": ["private"], "fileserver": ["private"]}


def placeholder_sets(profile: str, networks: str, interface: str = "eth1") -> list[str]:
    """``--set`` options that give each placeholder of a built-in profile a value."""
    return [
        *(a for n in NETWORKS_TO_SET[profile] for a in ("--set", f"{n}={networks}")),
        *(a for n in INTERFACES_TO_SET.get(profile, []) for a in ("--set", f"{n}={interface}")),
    ]


# Relative to the repository, so that origins in snapshots do not depend on where it is.
EVERY_FEATURE = "tests/data/good/every-feature.yaml"


@pytest.fixture(autouse=True)
def _in_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


@pytest.fixture
def write_profile(tmp_path: Path) -> Callable[..., Path]:
    """Write a profile (dedented) into tmp_path and return its path."""

    def write(text: str, name: str = "host.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


def _require(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        if os.environ.get("FWGEN_REQUIRE_KERNEL"):
            pytest.fail(f"{tool} is required (FWGEN_REQUIRE_KERNEL is set) but not installed")
        pytest.skip(f"{tool} not installed (apt-get install {package})")


def nft_check(text: str) -> subprocess.CompletedProcess[str]:
    """`nft -c -f -` in a private network namespace (never the host's ruleset)."""
    _require("nft", "nftables")
    return subprocess.run(
        ["unshare", "-rn", "nft", "-c", "-f", "-"], input=text, capture_output=True, text=True
    )


def restore_test(text: str, family: str) -> subprocess.CompletedProcess[str]:
    """`iptables-restore --test` (or ip6tables-) in a private network namespace."""
    tool = "iptables-restore" if family == "ipv4" else "ip6tables-restore"
    _require(tool, "iptables")
    return subprocess.run(
        ["unshare", "-rn", tool, "--test"], input=text, capture_output=True, text=True
    )


def iptables_load_test(files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """In a private network namespace: `ipset restore` the ipsets file (if any), then
    `iptables-restore --test` and `ip6tables-restore --test`, which look the sets up.
    stdout is `ipset save`: the sets as the kernel holds them."""
    for tool in ("iptables-restore", "ip6tables-restore"):
        _require(tool, "iptables")
    if "ipsets" in files:
        _require("ipset", "ipset")
    script = (
        "[ ! -e ipsets ] || ipset restore -exist < ipsets || exit 1\n"
        "iptables-restore --test < rules.v4 || exit 2\n"
        "ip6tables-restore --test < rules.v6 || exit 3\n"
        "[ ! -e ipsets ] || ipset save\n"
    )
    with tempfile.TemporaryDirectory(prefix="fwgen-iptables-") as folder:
        for name, text in files.items():
            Path(folder, name).write_text(text)
        return subprocess.run(
            ["unshare", "-rn", "sh", "-c", script],
            cwd=folder,
            capture_output=True,
            text=True,
        )


@pytest.fixture(scope="session", autouse=True)
def _machine_untouched() -> Iterator[None]:
    """The run leaves the machine's firewall files and rulesets as it found them.

    Kernel tests work in throw-away network namespaces, and ufw on private copies of
    its files; this compares checksums of the real ones (and the machine's own nft
    ruleset and iptables tables, read-only) before and after the whole session."""
    before = machine_state()
    yield
    changed = changes(before, machine_state())
    if changed:
        pytest.fail(
            "the test session changed the machine it runs on:\n  " + "\n  ".join(changed),
            pytrace=False,
        )


@pytest.fixture
def no_firewall(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """`fwgen apply`'s state folder; any real firewall command fails the test."""
    yield from applyfakes.no_firewall(monkeypatch, tmp_path)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[applyfakes.Fake]:
    """The fake firewall, registered as target "fake"."""
    return applyfakes.fake(monkeypatch)
