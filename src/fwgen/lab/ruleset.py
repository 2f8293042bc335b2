"""`fwgen verify --ruleset FILE`: files to load in the lab instead of the rendered ones.

Each is read by the guarded reader (a regular file, not a symlink, at most
`MAX_BYTES`, printable text) and replaces the rendered file of the same name (a target
that renders one file takes any name). Only rulesets are taken, never a program:
the shell scripts a target renders (ufw's, firewalld's installer, iptables' coexist
loader) are fwgen's own, as rendered, and nftables' ``include`` (which would read any
file of the machine) is refused.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from fwgen.errors import FwgenError
from fwgen.read.links import refuse_link
from fwgen.read.yamlsource import read_text

MAX_BYTES = 64 * 1024 * 1024
INCLUDE = re.compile(r"(?:^|[\s;{}])include\s")


def given(target: str, rendered: dict[str, str], paths: list[Path]) -> dict[str, str]:
    """*rendered* with each file of *paths* in place of the one of its name."""
    files = dict(rendered)
    for path in paths:
        display = str(path)
        refuse_link(path, display, "--ruleset")
        name = _replaced(target, rendered, path.name, display)
        text = read_text(path, display, what="ruleset", limit=MAX_BYTES)
        if target == "nftables":
            _no_include(text, display)
        files[name] = text
    return files


def _replaced(target: str, rendered: dict[str, str], name: str, display: str) -> str:
    """The rendered file *name* replaces (any name for a target of one file, but a
    shell script's)."""
    if len(rendered) == 1:
        (found,) = rendered
    else:
        same = [f for f in rendered if PurePosixPath(f).name == name]
        if len(same) != 1:
            names = ", ".join(sorted(PurePosixPath(f).name for f in rendered))
            raise FwgenError(
                f"--ruleset: {target} renders no file named {name!r} for this profile "
                f"(its files: {names}); name the file as `fwgen render -o` does",
                path=display,
            )
        (found,) = same
    shown = PurePosixPath(found).name
    if found.endswith(".sh") or name.endswith(".sh"):
        what = (
            f"{shown} is {target}'s shell script"
            if found.endswith(".sh")
            else (f"{name} is named as a shell script (the {target} ruleset is {shown})")
        )
        raise FwgenError(
            f"--ruleset: {what}; verify runs only the scripts fwgen renders, never one it "
            "is given (give the ruleset files the script loads, if the target has any)",
            path=display,
        )
    return found


def _no_include(text: str, display: str) -> None:
    for number, line in enumerate(text.split("\n"), start=1):
        if INCLUDE.search(line.split("#", 1)[0]):
            raise FwgenError(
                "--ruleset: `include` reads other files of the machine; give one "
                "self-contained nftables file",
                path=display,
                line=number,
            )
