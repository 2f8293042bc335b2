"""Profiles as they were at a git revision: ``REV:path`` (e.g. ``origin/main:site/web.yaml``)."""

from __future__ import annotations

import re
import subprocess
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path, PurePosixPath

from fwgen.errors import FwgenError

REV_PATH = re.compile(r"^(?P<rev>[^:\s]+):(?P<path>[^:\s]+\.ya?ml)$")


def is_git_ref(ref: str) -> bool:
    return bool(REV_PATH.match(ref)) and not Path(ref).exists()


def checkout_profile(ref: str, into: Path) -> str:
    """Extract the profile's directory at REV into *into*; return the profile's path there.

    The whole directory comes along, so `extends:` finds its siblings as they were.
    """
    match = REV_PATH.match(ref)
    assert match is not None
    rev, path = match.group("rev"), PurePosixPath(match.group("path"))
    try:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", rev, "--", str(path.parent)],
            capture_output=True,
            check=True,
        ).stdout
    except FileNotFoundError:
        raise FwgenError(f"{ref}: git is not installed") from None
    except subprocess.CalledProcessError as exc:
        message = exc.stderr.decode(errors="replace").strip().splitlines()
        raise FwgenError(
            f"{ref}: git cannot read it ({message[-1] if message else 'unknown error'})"
        ) from None
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    target = into / path
    if not target.is_file():
        raise FwgenError(f"{ref}: no such file at that revision")
    return str(target)


def temporary_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="fwgen-git-")
