"""The admin's connections, beyond fwgen's own environment, and the proof that a new one
got in after a load.

``sudo`` (env_reset) and Ansible's ``become`` drop ``SSH_CONNECTION``, so fwgen also
looks at its ancestors' environments and at the TCP connections established to the
ports sshd listens on. A confirmation counts only from a connection that is not the
apply's own and whose socket belongs to processes started after the load (sshd starts
one per connection): the same connection reused (ssh ControlMaster, tmux) proves
nothing about the next one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fwgen.errors import FwgenError
from fwgen.host import procs
from fwgen.host.guard import Connection, connections, from_ssh


def now_ticks() -> int:
    """Clock ticks since boot now, on the clock of a process's start time."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK"))


def _ssh(value: str, what: str) -> Connection | None:
    try:
        return from_ssh(value, what)
    except FwgenError:
        return None  # another process's garbage does not stop an apply


def ancestors_ssh(proc: Path, pid: int | None = None) -> list[Connection]:
    """``SSH_CONNECTION`` of each ancestor of *pid* (this process) that has one."""
    found = []
    for ancestor in procs.ancestors(os.getpid() if pid is None else pid, proc):
        value = procs.environ_value(ancestor, "SSH_CONNECTION", proc)
        name = procs.command_name(ancestor, proc)
        if value and (c := _ssh(value, f"SSH_CONNECTION of process {ancestor} ({name})")):
            found.append(c)
    return found


@dataclass(frozen=True)
class Sshd:
    """What the TCP tables say about sshd in this network namespace."""

    ports: frozenset[int]  # the ports sshd listens on
    connections: tuple[Connection, ...]  # established to them


def sshd(proc: Path) -> Sshd:
    sockets = procs.sockets(proc)
    listening = [s for s in sockets if s.state == procs.TCP_LISTEN]
    owners = procs.socket_owners({s.inode for s in listening}, proc)
    ports = frozenset(
        s.local_port
        for s in listening
        if any(procs.command_name(pid, proc) == "sshd" for pid in owners.get(s.inode, ()))
    )
    established = tuple(
        Connection(s.remote, s.local_port, s.local, "established to sshd", s.remote_port)
        for s in sockets
        if s.state == procs.TCP_ESTABLISHED and s.local_port in ports
    )
    return Sshd(ports, established)


def admin_connections(
    environ: Mapping[str, str], proc: Path | None = None
) -> tuple[list[Connection], Sshd]:
    """The admin's live connections: this session's SSH_CONNECTION, its ancestors', and
    every connection established to sshd; each once."""
    proc = proc or procs.PROC
    found = connections(environ, []) + ancestors_ssh(proc)
    server = sshd(proc)
    found += server.connections
    unique: dict[tuple[object, ...], Connection] = {}
    for connection in found:
        key = (connection.client, connection.client_port, connection.server, connection.port)
        unique.setdefault(key, connection)
    return list(unique.values()), server


def _owned_after(inode: int, since: int, proc: Path) -> bool:
    """The socket *inode* is held only by processes started after *since* (ticks)."""
    owners = procs.socket_owners({inode}, proc).get(inode, set())
    starts = [procs.start_ticks(pid, proc) for pid in owners]
    return bool(starts) and all(t is not None and t > since for t in starts)


def new_connection(admins: Iterable[Connection], since: int, proc: Path | None = None) -> str:
    """A connection from one of *admins*' clients to its port, established after *since*
    (ticks), as "ADDR port PORT"; "" when there is none."""
    proc = proc or procs.PROC
    wanted = {(c.client, c.port) for c in admins}
    for s in procs.sockets(proc):
        if s.state != procs.TCP_ESTABLISHED or (s.remote, s.local_port) not in wanted:
            continue
        if _owned_after(s.inode, since, proc):
            return f"{s.remote} port {s.remote_port}"
    return ""


def confirmer_problem(
    meta: Mapping[str, object], environ: Mapping[str, str], proc: Path | None = None
) -> str:
    """Why this process may not confirm the pending apply *meta* ("" when it may). An
    apply that had no connection to protect (a local console) may be confirmed from
    anywhere; one still loading, from nowhere."""
    if not isinstance(meta.get("loaded_ticks"), int):
        return "the apply is still loading the new rules: confirm once it asks for it"
    if not meta.get("connections"):
        return ""
    proc = proc or procs.PROC
    since = int(str(meta["loaded_ticks"]))
    sessions = meta.get("sessions")
    applied = [str(s) for s in sessions] if isinstance(sessions, list) else []
    mine = connections(environ, []) + ancestors_ssh(proc)
    if not mine:
        return (
            "this session is not an SSH connection fwgen can see (no SSH_CONNECTION here or in "
            "a parent process): confirm from a NEW SSH connection, or answer 'yes' at the prompt"
        )
    session = mine[0]
    if session.session in applied:
        return (
            f"this is the apply's own connection ({session.session}): it proves nothing about "
            "the next one; open a NEW SSH connection (not a shared one: ssh -o ControlPath=none)"
        )
    for s in procs.sockets(proc):
        if s.state == procs.TCP_ESTABLISHED and (
            s.remote,
            s.remote_port,
            s.local,
            s.local_port,
        ) == (session.client, session.client_port, session.server, session.port):
            if _owned_after(s.inode, since, proc):
                return ""
            break
    return (
        f"the connection {session.session} was not established after the load: "
        "open a NEW SSH connection and confirm from there"
    )
