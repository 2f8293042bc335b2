"""Same inputs, byte-identical output: whatever the hash seed, directory or locale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def render_in(cwd: Path, seed: str, locale: str, profile: str) -> bytes:
    env = {**os.environ, "PYTHONHASHSEED": seed, "LC_ALL": locale, "LANG": locale}
    result = subprocess.run(
        [sys.executable, "-m", "fwgen", "render", profile, "--target", "nftables"],
        cwd=cwd,
        env=env,
        capture_output=True,
        check=True,
    )
    return result.stdout


@pytest.mark.parametrize("profile", ["webserver", "workstation"])
def test_output_is_identical_across_seeds_directories_and_locales(
    profile: str, tmp_path: Path
) -> None:
    first = render_in(REPO, "0", "C", profile)
    assert first.startswith(b"#!/usr/sbin/nft -f")
    assert render_in(tmp_path, "12345", "C.UTF-8", profile) == first
    assert render_in(Path("/"), "random", "POSIX", profile) == first
