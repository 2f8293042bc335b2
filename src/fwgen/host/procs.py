"""What ``/proc`` says about processes and TCP connections (Linux; read as root).

Every function takes the proc root (``/proc`` unless a test gives a fake tree). A
process is named by its pid *and* its start time (clock ticks after boot, field 22 of
``stat``): pids are reused, the pair is not.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TCP_ESTABLISHED, TCP_LISTEN = "01", "0A"


@dataclass(frozen=True)
class Socket:
    """One line of /proc/net/tcp{,6}."""

    local: ipaddress.IPv4Address | ipaddress.IPv6Address
    local_port: int
    remote: ipaddress.IPv4Address | ipaddress.IPv6Address
    remote_port: int
    state: str
    inode: int


def _stat(pid: int, proc: Path) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3 first), or None."""
    try:
        text = (proc / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def start_ticks(pid: int, proc: Path = PROC) -> int | None:
    """When *pid* started, in clock ticks after boot; None when there is no such process."""
    fields = _stat(pid, proc)
    return int(fields[19]) if fields and len(fields) > 19 and fields[19].isdigit() else None


def alive(pid: int, ticks: int | None, proc: Path = PROC) -> bool:
    """The process *pid* that started at *ticks* still runs (not a zombie, not a reuse)."""
    fields = _stat(pid, proc)
    if not fields or fields[0] in ("Z", "X"):
        return False
    return ticks is None or start_ticks(pid, proc) == ticks


def parent(pid: int, proc: Path = PROC) -> int:
    fields = _stat(pid, proc)
    return int(fields[1]) if fields and len(fields) > 1 and fields[1].isdigit() else 0


def ancestors(pid: int, proc: Path = PROC) -> Iterator[int]:
    """*pid*'s parent, its parent, ... up to (not including) pid 1."""
    seen = {pid}
    pid = parent(pid, proc)
    while pid > 1 and pid not in seen:
        seen.add(pid)
        yield pid
        pid = parent(pid, proc)


def environ_value(pid: int, name: str, proc: Path = PROC) -> str | None:
    """The value of *name* in the environment *pid* was started with."""
    try:
        data = (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    prefix = name.encode() + b"="
    for entry in data.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode(errors="replace")
    return None


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp writes it: host byte order per 32-bit word."""
    raw = bytes.fromhex(text)
    swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(swapped)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def sockets(proc: Path = PROC) -> list[Socket]:
    """Every TCP socket of the network namespace this process runs in, both families."""
    found = []
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / name).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            (local, lport), (remote, rport) = (f.split(":") for f in fields[1:3])
            found.append(
                Socket(
                    _address(local),
                    int(lport, 16),
                    _address(remote),
                    int(rport, 16),
                    fields[3],
                    int(fields[9]),
                )
            )
    return found


def socket_owners(inodes: set[int], proc: Path = PROC) -> dict[int, set[int]]:
    """inode → the pids that hold a descriptor on that socket."""
    owners: dict[int, set[int]] = {}
    wanted = {f"socket:[{inode}]": inode for inode in inodes if inode}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    inode = wanted.get(os.readlink(fd))
                    if inode is not None:
                        owners.setdefault(inode, set()).add(int(entry.name))
    return owners


def command_name(pid: int, proc: Path = PROC) -> str:
    with contextlib.suppress(OSError):
        return (proc / str(pid) / "comm").read_text(encoding="utf-8", errors="replace").strip()
    return ""
