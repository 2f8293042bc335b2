"""What `fwgen apply` does per firewall: check, save, load and restore.

Each target works in one folder (the pending apply's): the rendered files in
``new/``, the saved state in ``saved/``. ``validate`` and ``save`` touch nothing;
``load`` and ``restore`` change the running firewall. A saved state is itself
checked by the target's own checker before anything is loaded, so a state that
could not be put back is found while there is still nothing to put back.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from fwgen import runner
from fwgen.errors import FwgenError
from fwgen.host.ufwfiles import (
    MARKED,
    check_markers,
    container_state,
    restore_container_state,
)
from fwgen.policy.owned import CONTAINERS

TIMEOUT = 300  # seconds a firewall command may take (ufw adding many rules is slow)


class ApplyError(FwgenError):
    """A command of the firewall failed."""


def run(*cmd: str, stdin: Path | None = None, check: bool = True) -> str:
    """Run one firewall command; its stdout, or ApplyError with its stderr."""
    try:
        result = runner.run(cmd, stdin=stdin, timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ApplyError(f"`{' '.join(cmd)}` failed: {error}") from None
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).decode(errors="replace").strip()
        raise ApplyError(f"`{' '.join(cmd)}` failed: {' / '.join(detail.splitlines()[:3])}")
    return result.stdout.decode(errors="replace")


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


class Backend:
    """One firewall. Subclasses name their tools and fill in the four steps."""

    name: ClassVar[str]
    tools: ClassVar[tuple[str, ...]]
    replaces: str  # what a load replaces, for the messages

    def __init__(self, flush_ruleset: bool = False) -> None:
        self.flush_ruleset = flush_ruleset

    def validate(self, work: Path) -> None:
        raise NotImplementedError

    def save(self, work: Path) -> None:
        raise NotImplementedError

    def load(self, work: Path) -> None:
        raise NotImplementedError

    def restore(self, work: Path) -> None:
        raise NotImplementedError


SET_NAME = re.compile(r"^create (\S+) ", re.MULTILINE)
TABLE = re.compile(r"^\*(\w+)$", re.MULTILINE)
BUILTIN_CHAIN = re.compile(r"^:([A-Z]+) (?!-)\S+", re.MULTILINE)
XTABLES_SAVE = {"ip": "iptables-nft-save", "ip6": "ip6tables-nft-save"}


def _refuse_xtables_tables() -> None:
    """`flush ruleset` and a reload of `nft list ruleset` would turn the tables that
    iptables-nft manages (Docker's, fail2ban's, an admin's iptables rules) into plain nft
    tables that iptables can no longer read: refuse while there are any."""
    found = [
        f"{family} {table}"
        for family, save in XTABLES_SAVE.items()
        if runner.which(save)
        for table in TABLE.findall(run(save))
    ]
    if found:
        raise ApplyError(
            f"--flush-ruleset would replace {', '.join(found)}, which iptables-nft manages "
            "(Docker's, fail2ban's or other iptables rules): nft cannot restore them as they "
            "were; apply without --flush-ruleset (fwgen's own table beside them), or remove "
            "those rules first"
        )


class Nftables(Backend):
    name = "nftables"
    tools = ("nft",)
    replaces = "nftables table inet fwgen"

    def __init__(self, flush_ruleset: bool = False) -> None:
        super().__init__(flush_ruleset)
        if flush_ruleset:
            self.replaces = "the whole nftables ruleset"

    def validate(self, work: Path) -> None:
        run("nft", "-c", "-f", str(work / "new/fwgen.nft"))

    def save(self, work: Path) -> None:
        if self.flush_ruleset:
            _refuse_xtables_tables()
            text = "flush ruleset\n" + run("nft", "list", "ruleset")
        else:
            # Declaring the table first makes the delete valid when there was none.
            text = "table inet fwgen\ndelete table inet fwgen\n"
            if "fwgen" in run("nft", "list", "tables", "inet").split():
                text += run("nft", "list", "table", "inet", "fwgen")
        write_private(work / "saved/restore.nft", text)
        run("nft", "-c", "-f", str(work / "saved/restore.nft"))

    def load(self, work: Path) -> None:
        run("nft", "-f", str(work / "new/fwgen.nft"))

    def restore(self, work: Path) -> None:
        run("nft", "-f", str(work / "saved/restore.nft"))


def _tables(rules: str) -> dict[str, str]:
    """Each table a restore file loads → that table as it is when nothing was ever loaded
    into it (its built-in chains, policy ACCEPT)."""
    sections = re.split(r"^(?=\*)", rules, flags=re.MULTILINE)
    return {
        match.group(1): "".join(
            [f"*{match.group(1)}\n"]
            + [f":{chain} ACCEPT [0:0]\n" for chain in BUILTIN_CHAIN.findall(section)]
            + ["COMMIT\n"]
        )
        for section in sections
        if (match := TABLE.match(section))
    }


class Iptables(Backend):
    name = "iptables"
    tools = (
        "iptables-restore",
        "ip6tables-restore",
        "iptables-save",
        "ip6tables-save",
        "ipset",
        "unshare",
    )
    replaces = "the iptables and ip6tables filter tables and fwgen's ipsets"

    def __init__(self, flush_ruleset: bool = False) -> None:
        super().__init__(flush_ruleset)
        if flush_ruleset:
            self.replaces = "every iptables and ip6tables table and fwgen's ipsets"

    RESTORE: ClassVar[dict[str, str]] = {"v4": "iptables-restore", "v6": "ip6tables-restore"}
    SAVE: ClassVar[dict[str, str]] = {"v4": "iptables-save", "v6": "ip6tables-save"}

    def _sets(self, work: Path) -> list[str]:
        """The ipsets the new rules fill (not the temporary ``-n`` copies)."""
        path = work / "new/ipsets"  # rendered only when a rule needs a set
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        return sorted({n for n in SET_NAME.findall(text) if not n.endswith("-n")})

    def validate(self, work: Path) -> None:
        new = work / "new"
        if self._sets(work):
            # ipset has no dry run, and the rules' --match-set needs the sets: load both
            # into a throw-away network namespace (sets are per namespace).
            run(
                "unshare", "--net", "sh", "-ec",
                'ipset restore -exist < "$1"; iptables-restore --test < "$2"; '
                'ip6tables-restore --test < "$3"',
                "sh", str(new / "ipsets"), str(new / "rules.v4"), str(new / "rules.v6"),
            )  # fmt: skip
            return
        for version, restore in self.RESTORE.items():
            run(restore, "--test", str(new / f"rules.{version}"))

    def save(self, work: Path) -> None:
        saved = work / "saved"
        if not self.flush_ruleset:
            _refuse_others_chains(run(save, "-t", "filter") for save in self.SAVE.values())
        for version, save in self.SAVE.items():
            # Every table the new file loads, and only those (--flush-ruleset adds nat,
            # mangle and raw, which hold the admin's DNAT, MASQUERADE, MARK, NOTRACK).
            tables = _tables((work / f"new/rules.{version}").read_text(encoding="utf-8"))
            existing = set(TABLE.findall(run(save)))
            text = ""
            for table, empty in tables.items():
                found = run(save, "-t", table) if table in existing else ""
                text += found if f"*{table}" in found else empty
            write_private(saved / f"tables.{version}", text)
            run(self.RESTORE[version], "--test", str(saved / f"tables.{version}"))
            absent = sorted(set(tables) - existing)
            write_private(saved / f"absent.{version}.json", json.dumps(absent))
        existing = set(run("ipset", "list", "-n").split())
        ours = self._sets(work)
        text = "".join(
            _renamed(run("ipset", "save", name), name) for name in ours if name in existing
        )
        write_private(saved / "ipsets", text)
        write_private(saved / "new-sets.json", json.dumps([n for n in ours if n not in existing]))

    def load(self, work: Path) -> None:
        new = work / "new"
        if self._sets(work):
            run("ipset", "restore", "-exist", stdin=new / "ipsets")
        for version, restore in self.RESTORE.items():
            run(restore, stdin=new / f"rules.{version}")

    def restore(self, work: Path) -> None:
        saved = work / "saved"
        if (saved / "ipsets").stat().st_size:
            run("ipset", "restore", "-exist", stdin=saved / "ipsets")
        for version, restore in self.RESTORE.items():
            run(restore, stdin=saved / f"tables.{version}")
            absent = json.loads((saved / f"absent.{version}.json").read_text(encoding="utf-8"))
            if absent and "nf_tables" in run(restore, "--version") and runner.which("nft"):
                # tables the load created (iptables-nft keeps them as nft tables): gone again
                family = "ip" if version == "v4" else "ip6"
                for table in absent:
                    run("nft", "delete", "table", family, table, check=False)
        for name in json.loads((saved / "new-sets.json").read_text(encoding="utf-8")):
            run("ipset", "destroy", name, check=False)  # sets the old rules did not have


USER_CHAIN = re.compile(r"^:(\S+) - ", re.MULTILINE)


def _refuse_others_chains(tables: Iterable[str]) -> None:
    """Loading rules.v4 and rules.v6 replaces whole filter tables: refuse when they hold
    chains of other programs (Docker's, fail2ban's, ufw's, libvirt's), which would go."""
    others = sorted(
        {c for text in tables for c in USER_CHAIN.findall(text) if not c.startswith("FWGEN-")}
    )
    if others:
        shown = ", ".join(others[:6]) + (f" and {len(others) - 6} more" if len(others) > 6 else "")
        raise FwgenError(
            f"the filter table holds chains of other programs ({shown}); loading would delete "
            "them (Docker's containers cut off, fail2ban's bans lifted). Share the table with "
            "`options: {coexist: true}` (render -o DIR, run DIR/fwgen-iptables.sh), use "
            "--target nftables, or take the table over with --flush-ruleset"
        )


def _renamed(saved: str, name: str) -> str:
    """``ipset save NAME`` output made to refill NAME atomically: filled under a temporary
    name, swapped in, the temporary destroyed (what fwgen's own ipsets file does)."""
    temporary = f"{name}-r"
    lines = [
        re.sub(rf"^(create|add) {re.escape(name)} ", rf"\1 {temporary} ", line)
        for line in saved.splitlines()
        if line.strip()
    ]
    # A temporary left by an interrupted run is emptied before it is filled.
    lines.insert(1, f"flush {temporary}")
    return "\n".join([*lines, f"swap {temporary} {name}", f"destroy {temporary}", ""])


UFW_FILES = (
    "/etc/ufw/ufw.conf",
    "/etc/ufw/user.rules",
    "/etc/ufw/user6.rules",
    "/etc/ufw/before.rules",
    "/etc/ufw/before6.rules",
    "/etc/ufw/after.rules",
    "/etc/ufw/after6.rules",
    "/etc/ufw/before.init",
    "/etc/default/ufw",
)


class Ufw(Backend):
    """ufw keeps its state in files: the rules it added, the before/after blocks, its
    defaults. Those files are saved whole and written back, then ufw reloads them (or
    is disabled again, if it was inactive before)."""

    name = "ufw"
    tools = ("ufw", "bash")
    replaces = "ufw's rules, defaults and rule files"

    def validate(self, work: Path) -> None:
        run("bash", "-n", str(work / "new/fwgen-ufw.sh"))
        for name in MARKED:
            check_markers(Path("/etc/ufw", name))

    def save(self, work: Path) -> None:
        saved = work / "saved/files"
        saved.mkdir(mode=0o700, parents=True)
        modes = {}
        for name in UFW_FILES:
            path = Path(name)
            if not path.is_file():
                raise ApplyError(f"{name}: missing, so ufw's state cannot be saved")
            shutil.copyfile(path, saved / name.lstrip("/").replace("/", "_"))
            modes[name] = path.stat().st_mode & 0o7777  # before.init runs only if executable
        write_private(work / "saved/modes.json", json.dumps(modes))
        active = run("ufw", "status").startswith("Status: active")
        write_private(work / "saved/active.json", json.dumps(active))
        for command in ("iptables", "ip6tables"):  # ufw's files do not say what is loaded
            state = container_state(run, command)
            write_private(work / f"saved/containers-{command}.json", json.dumps(state))

    def load(self, work: Path) -> None:
        run("bash", str(work / "new/fwgen-ufw.sh"))

    def restore(self, work: Path) -> None:
        saved = work / "saved/files"
        modes = json.loads((work / "saved/modes.json").read_text(encoding="utf-8"))
        for name in UFW_FILES:
            # Written in place: /etc/default/ufw may be a bind mount a rename cannot replace.
            Path(name).write_bytes((saved / name.lstrip("/").replace("/", "_")).read_bytes())
            Path(name).chmod(modes[name])
        if json.loads((work / "saved/active.json").read_text(encoding="utf-8")):
            run("ufw", "reload")
        else:
            run("ufw", "disable")
        for command, name in (("iptables", "after.rules"), ("ip6tables", "after6.rules")):
            source = work / f"saved/containers-{command}.rules"
            state = work / f"saved/containers-{command}.json"
            if state.is_file():
                chains = json.loads(state.read_text(encoding="utf-8"))
                if container_state(run, command) != chains:
                    restore_container_state(run, command, chains, source)
            elif f":{CONTAINERS} ".encode() not in (saved / f"etc_ufw_{name}").read_bytes():
                # saved by an earlier fwgen: without the chains' block, without the chains
                restore_container_state(run, command, [], source)


BACKENDS: dict[str, type[Backend]] = {b.name: b for b in (Nftables, Iptables, Ufw)}
