"""Runs inside a network namespace: IP packets of a protocol without ports (ESP, GRE) on
raw sockets. Standard library only.

rawproto.py receive PROTO        # until stdin closes: JSON, the source addresses delivered
rawproto.py send PROTO ADDRESS   # three packets of PROTO to ADDRESS
"""

from __future__ import annotations

import json
import select
import socket
import sys
import threading

# A GRE header (no flags, IPv4 inside) or an ESP header (SPI, sequence), then filler.
PAYLOAD = {47: b"\x00\x00\x08\x00" + b"fwgen" * 8, 50: b"\x00\x00\x10\x01\x00\x00\x00\x01" * 4}


def receive(proto: int) -> None:
    socks = [
        socket.socket(family, socket.SOCK_RAW, proto)
        for family in (socket.AF_INET, socket.AF_INET6)
    ]
    seen: set[str] = set()
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            ready, _, _ = select.select(socks, [], [], 0.1)
            for sock in ready:
                _, source = sock.recvfrom(65535)
                seen.add(source[0])

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    print("ready", flush=True)
    sys.stdin.read()
    done.set()
    thread.join()
    print(json.dumps(sorted(seen)), flush=True)


def send(proto: int, address: str) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_RAW, proto) as sock:
        for _ in range(3):
            sock.sendto(PAYLOAD[proto], (address, 0))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "receive":
        receive(int(args[0]))
    else:
        send(int(args[0]), args[1])
