"""What `fwgen apply` does under ufw besides saving and restoring ufw's files: it refuses
files whose fwgen markers fwgen-ufw.sh could not pair, and it saves and restores
fwgen's container chains, which ufw never empties nor deletes once its files no longer
declare them (a profile that drops `containers:` deletes them; its rollback puts them
back as they were)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from fwgen.errors import FwgenError
from fwgen.policy.owned import CONTAINER_CHAINS, CONTAINERS, DOCKER_USER

# The files of ufw's fwgen-ufw.sh puts a block in, or takes one out of.
MARKED = ("before.rules", "before6.rules", "after.rules", "after6.rules", "before.init")
BEGIN = re.compile(r"# BEGIN fwgen([ :]|$)")
END = re.compile(r"# END fwgen([ :]|$)")
JUMP = f"-A {DOCKER_USER} -j {CONTAINERS}"

Run = Callable[..., str]  # backends.run: (*cmd, stdin=None, check=True) -> stdout


def check_markers(path: Path) -> None:
    """Refuse a file in which fwgen's block cannot be told apart from the rest: a
    BEGIN without its END, an END without its BEGIN, or two blocks. The script would
    stop on it; refused here, nothing is saved or loaded."""
    if not path.is_file():
        return
    begun, ended = 0, 0
    for number, line in enumerate(path.read_bytes().decode(errors="replace").split("\n"), 1):
        if BEGIN.match(line):
            if begun:
                what = f"'# BEGIN fwgen' again before the END of the block at line {begun}"
            elif ended:
                what = f"a second block of fwgen's (the first ends at line {ended})"
            else:
                begun = number
                continue
        elif END.match(line):
            if begun:
                begun, ended = 0, number
                continue
            what = "'# END fwgen' without its '# BEGIN fwgen'"
        else:
            continue
        raise FwgenError(f"{path}:{number}: {what}: {FIX}")
    if begun:
        raise FwgenError(f"{path}:{begun}: '# BEGIN fwgen' without its '# END fwgen': {FIX}")


FIX = (
    "fwgen's block cannot be told apart from the rest of the file; leave one block with "
    "both markers (or none) and apply again"
)


def container_state(run: Run, command: str) -> list[str]:
    """fwgen's container chains and the jump to them as *command* ``-S`` lists them; the
    jump as ``-I DOCKER-USER N``, where it was."""
    listing = run(command, "-S").splitlines()
    ours = [
        line
        for line in listing
        if any(line.startswith((f"-N {c}", f"-A {c} ")) for c in CONTAINER_CHAINS)
    ]
    user = [line for line in listing if line.startswith(f"-A {DOCKER_USER} ")]
    ours += [f"-I {DOCKER_USER} {n} -j {CONTAINERS}" for n, r in enumerate(user, 1) if r == JUMP]
    return ours


def restore_container_state(run: Run, command: str, saved: list[str], source: Path) -> None:
    """fwgen's container chains made what they were when *saved* was taken, in one atomic
    step: those there now deleted with every jump to them, the saved ones made again.
    DOCKER-USER itself is left as it is: it is Docker's."""
    listing = run(command, "-S").splitlines()
    now = [c for c in CONTAINER_CHAINS if f"-N {c}" in listing]
    if not now and not saved:
        return
    gone = [
        line
        for line in listing
        if line.startswith("-A ") and any(line.endswith((f" -j {c}", f" -g {c}")) for c in now)
    ]
    lines = ["*filter", *("-D" + line[2:] for line in gone)]
    lines += [f"-F {chain}" for chain in now] + [f"-X {chain}" for chain in now]
    jumps = [line for line in saved if line.startswith("-I ")]
    lines += [line for line in saved if not line.startswith("-I ")]
    if f"-N {DOCKER_USER}" in listing:
        kept = len([line for line in listing if line.startswith(f"-A {DOCKER_USER} ")])
        kept -= len([line for line in gone if line.startswith(f"-A {DOCKER_USER} ")])
        for jump in jumps:  # where it was, or last if the chain is shorter now
            place = min(int(jump.split()[2]), kept + 1)
            lines.append(f"-I {DOCKER_USER} {place} -j {CONTAINERS}")
            kept += 1
    source.write_text("\n".join([*lines, "COMMIT", ""]), encoding="utf-8")
    source.chmod(0o600)
    run(f"{command}-restore", "--noflush", stdin=source)
