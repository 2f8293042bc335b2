"""Files named on the command line that must be the file itself, not a symbolic link.

A file an option names in CI (a ruleset for ``verify --ruleset``, a packet table for
``query --file``) may come from a pull request: a link in it could make fwgen read any
file of the machine and show its lines in error messages. Such a file is read only when
it is no link (the guarded reader, `fwgen.read.yamlsource.read_text`, does the rest).
"""

from __future__ import annotations

from pathlib import Path

from fwgen.errors import FwgenError


def refuse_link(path: Path, display: str, option: str) -> None:
    """Refuse *path* (shown as *display*) when it is a symbolic link, even a dangling one."""
    if path.is_symlink():
        raise FwgenError(f"{option}: a symbolic link; give the file itself", path=display)
