"""A fake ``/proc`` tree: processes (stat, comm, environ, socket descriptors) and the TCP
tables, written the way the kernel writes them."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

LISTEN, ESTABLISHED = "0A", "01"


def _hex(address: str) -> str:
    packed = ipaddress.ip_address(address).packed
    return "".join(packed[i : i + 4][::-1].hex().upper() for i in range(0, len(packed), 4))


class FakeProc:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "net").mkdir(parents=True, exist_ok=True)
        (root / "stat").write_text("cpu  1 2 3\nbtime 1700000000\n")
        self.tables: dict[str, list[str]] = {"tcp": [], "tcp6": []}
        self._write_tables()

    def process(
        self, pid: int, parent: int, comm: str, start: int, env: dict[str, str] | None = None
    ) -> None:
        folder = self.root / str(pid)
        (folder / "fd").mkdir(parents=True, exist_ok=True)
        rest = ["0"] * 17 + [str(start)] + ["0"] * 10
        (folder / "stat").write_text(f"{pid} ({comm}) S {parent} {' '.join(rest)}\n")
        (folder / "comm").write_text(comm + "\n")
        data = b"".join(f"{k}={v}".encode() + b"\0" for k, v in (env or {}).items())
        (folder / "environ").write_bytes(data)

    def socket(
        self,
        owner: int | None,
        inode: int,
        local: str,
        remote: str = "0.0.0.0:0",
        state: str = ESTABLISHED,
    ) -> None:
        """A TCP socket ``ADDR:PORT`` (``[v6]:PORT``) to ``ADDR:PORT``, held by *owner*."""
        (laddr, lport), (raddr, rport) = (a.rsplit(":", 1) for a in (local, remote))
        laddr, raddr = laddr.strip("[]"), raddr.strip("[]")
        table = "tcp6" if ":" in laddr else "tcp"
        number = len(self.tables[table])
        self.tables[table].append(
            f"{number:4}: {_hex(laddr)}:{int(lport):04X} {_hex(raddr)}:{int(rport):04X} "
            f"{state} 00000000:00000000 00:00000000 00000000     0        0 {inode} 1 0"
        )
        self._write_tables()
        if owner is not None:
            fd = (
                self.root
                / str(owner)
                / "fd"
                / str(3 + len(os.listdir(self.root / str(owner) / "fd")))
            )
            fd.symlink_to(f"socket:[{inode}]")

    def _write_tables(self) -> None:
        header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        for name, lines in self.tables.items():
            (self.root / "net" / name).write_text(header + "".join(f"{line}\n" for line in lines))
