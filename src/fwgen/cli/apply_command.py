"""`fwgen apply`: the option handling between the CLI and `fwgen.host.apply`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

import typer

from fwgen.cli.common import render_profile
from fwgen.errors import FwgenError
from fwgen.host.guard import Connection


def run_apply(
    profile: str | None,
    target: str | None,
    sets: list[str] | None,
    ports_files: list[str] | None,
    allow_outside: list[Path] | None,
    *,
    flush_ruleset: bool,
    strict: bool,
    confirm: float | None,
    keep: list[str],
    force: bool,
    no_admin_connection: bool = False,
    pending: Literal["confirm", "rollback"] | None,
) -> int:
    """The exit code: 0 applied, 1 rolled back (2 is raised as an error)."""
    from fwgen.host import apply as applying
    from fwgen.host.apply import BACKENDS

    def say(line: str) -> None:
        typer.echo(f"fwgen: {line}")

    if pending is not None:
        outcome = applying.CONFIRMED if pending == "confirm" else applying.ROLLBACK
        return applying.settle_pending(outcome, say)
    if profile is None or target is None:
        raise FwgenError("give a PROFILE and --target (or --confirm-pending)")
    if confirm is not None and confirm <= 0:
        raise FwgenError(f"--confirm {confirm}: give a number of seconds above 0, or --yes")
    from fwgen.host.guard import from_keep, lockouts
    from fwgen.targets import RenderOptions

    kept = [from_keep(value) for value in keep]  # a bad --keep is refused before any warning
    found = _admin_connections(kept, no_admin_connection)
    policy, files = render_profile(
        profile, target, sets, ports_files, allow_outside, RenderOptions(flush_ruleset, strict)
    )
    if target not in BACKENDS:
        _cannot_load_here(target, files)
    if "fwgen-iptables.sh" in files:
        # coexist mode loads with --noflush beside Docker's or fail2ban's chains; apply's
        # iptables backend saves and replaces whole filter tables, which would drop them
        raise FwgenError(
            "fwgen apply cannot load iptables in coexist mode (containers: or coexist:) yet: "
            "it would replace the chains of Docker and others; render with -o DIR and run "
            "DIR/fwgen-iptables.sh, or use --target nftables"
        )
    request = applying.Request(
        target=target,
        files=files,
        profile=profile,
        flush_ruleset=flush_ruleset,
        confirm=confirm,
        connections=tuple(found),
        lockouts=tuple(lockouts(policy, found)),
        force=force,
    )
    return applying.apply(request, say, applying.stdin_answer)


def _admin_connections(kept: list[Connection], no_admin_connection: bool) -> list[Connection]:
    """The connections the guard protects: the admin's (see `fwgen.host.admin`) and --keep's.
    Refused when there are none on a host where sshd listens: behind sudo or become, a
    lock-out would go unnoticed."""
    from fwgen.host.admin import admin_connections

    found, sshd = admin_connections(os.environ)
    if not found and not kept and sshd.ports and not no_admin_connection:
        ports = ", ".join(str(p) for p in sorted(sshd.ports))
        raise FwgenError(
            f"sshd listens on port {ports}, but no admin connection was found (no "
            "SSH_CONNECTION here or in a parent process, no connection to sshd): give "
            "--keep ADDR[:PORT] for the address you connect from, or --no-admin-connection "
            "if no one needs to connect"
        )
    return found + kept


def _cannot_load_here(target: str, files: dict[str, str]) -> None:
    from fwgen.build.output import to_stdout

    sys.stdout.write(to_stdout(files))
    name = next(iter(files))
    raise FwgenError(
        f"fwgen cannot load {target} rules here; save the script above as {name} and run it "
        f"on the host: powershell -NoProfile -ExecutionPolicy Bypass -File .\\{name}"
    )
