"""What `fwgen diff` reads: two profiles, each a name, a file or ``REV:path``, each resolved
with its own port database. For a ``REV:path`` side, the site port files (``--ports`` and
$FWGEN_PORTS, paths from the working directory) are read as they were at REV too, so a pull
request that widens a port file shows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fwgen.cli.common import load_policies
from fwgen.policy.ir import Policy
from fwgen.profile.portdb import Catalogue, catalogue_of, site_files
from fwgen.read.gitref import REV_PATH, checkout_file, checkout_profile, is_git_ref, temporary_dir
from fwgen.read.paths import Origins


def _side(
    ref: str, folder: Path, sets: list[str] | None, ports_files: Sequence[str], allow: list[Path]
) -> tuple[Policy, Catalogue]:
    """One side of the diff: its Policy and the port database it was resolved with."""
    files = site_files(tuple(ports_files))
    if not is_git_ref(ref):
        ports = catalogue_of(tuple((f, f) for f in files))
        (policy,) = load_policies([ref], sets, ports, allow)
        return policy, ports
    match = REV_PATH.fullmatch(ref)
    assert match is not None
    rev = match.group("rev")
    read = [checkout_file(rev, f, folder / "ports" / str(i)) for i, f in enumerate(files)]
    ports = catalogue_of(tuple((path, f"{rev}:{f}") for path, f in zip(read, files, strict=True)))
    profile = checkout_profile(ref, folder / "tree")
    (policy,) = load_policies([profile], sets, ports, allow, [Origins.checkout(folder / "tree")])
    return policy, ports


def diff_sides(
    old: str,
    new: str,
    sets: list[str] | None,
    ports_files: Sequence[str],
    allow_outside: list[Path] | None,
) -> tuple[Policy, Policy, Catalogue, Catalogue]:
    """(old Policy, new Policy, old port database, new port database)."""
    with temporary_dir() as tmp:
        before, old_ports = _side(old, Path(tmp) / "0", sets, ports_files, allow_outside or [])
        after, new_ports = _side(new, Path(tmp) / "1", sets, ports_files, allow_outside or [])
    return before, after, old_ports, new_ports
