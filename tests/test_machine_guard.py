"""The session check that the suite leaves the machine's firewall alone notices changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.machine_guard import WATCHED_FILES, changes, machine_state


def test_watches_the_firewall_files_of_the_machine() -> None:
    assert WATCHED_FILES == (
        "/etc/default/ufw",
        "/etc/ufw/*",
        "/etc/nftables.conf",
        "/etc/iptables/*",
        "/etc/docker/*",
        "/etc/containerd/*",
        "/etc/fail2ban/*",
        "/etc/firewalld/*",
    )


def test_a_changed_created_or_removed_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "default-ufw").write_text('DEFAULT_OUTPUT_POLICY="ACCEPT"\n')
    (tmp_path / "ufw" / "applications.d").mkdir(parents=True)
    (tmp_path / "ufw" / "user.rules").write_text("*filter\n")
    (tmp_path / "ufw" / "applications.d" / "web").write_text("[web]\n")
    patterns = (str(tmp_path / "default-ufw"), str(tmp_path / "ufw" / "*"), "/nonexistent/*")
    before = machine_state(patterns, ())
    assert len(before) == 3  # files in folders are watched too
    assert changes(before, machine_state(patterns, ())) == []

    (tmp_path / "default-ufw").write_text('DEFAULT_OUTPUT_POLICY="DROP"\n')
    (tmp_path / "ufw" / "applications.d" / "web").unlink()
    (tmp_path / "ufw" / "user6.rules").write_text("*filter\n")
    assert changes(before, machine_state(patterns, ())) == [
        f"{tmp_path}/default-ufw: changed",
        f"{tmp_path}/ufw/applications.d/web: removed",
        f"{tmp_path}/ufw/user6.rules: created",
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="listings are read only as root")
def test_listings_ignore_counters_and_comments_but_not_rules() -> None:
    def digest(text: str) -> str:
        (value,) = machine_state((), [("printf", text)]).values()
        return value

    first = digest("# Generated on Mon\n:INPUT ACCEPT [5:300]\n-A INPUT -j ACCEPT\n")
    assert digest("# Generated on Tue\n:INPUT ACCEPT [9:900]\n-A INPUT -j ACCEPT\n") == first
    assert digest("# Generated on Mon\n:INPUT ACCEPT [5:300]\n-A INPUT -j DROP\n") != first
