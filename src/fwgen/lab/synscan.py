"""Runs inside a network namespace: a SYN to every TCP port of an address, on raw
sockets, and the ports whose SYN reached the host's stack. Standard library only.

synscan.py ADDRESS SOURCE [EXCLUDED...]   # JSON: the ports that answered SYN-ACK or RST

A firewall's drop is silence and its reject an ICMP error (or an RST: a caller must not
scan from a source the firewall may reject TCP from). The SYNs go out in paced chunks
(a veth's backlog is about 1,000 packets); a port that should have answered and did
not is asked again by the caller, with a connection.
"""

from __future__ import annotations

import json
import random
import select
import socket
import struct
import sys
import threading
import time

SPORT = 61_999  # the scan's own source port
CHUNK = 512  # SYNs in a row before a pause
PAUSE = 0.001
SETTLE = 0.3  # seconds the last answers may take (a local link)
SYN, RST, ACK = 0x02, 0x04, 0x10


def _sum16(data: bytes) -> int:
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def scan(address: str, source: str, exclude: set[int]) -> list[int]:
    v6 = ":" in address
    family = socket.AF_INET6 if v6 else socket.AF_INET
    send = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_TCP)
    listen = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_TCP)
    send.bind((source, 0))
    seq = random.getrandbits(32)
    # the header with dport 0 and no checksum; each port adds itself to the sum
    header = struct.pack("!HHIIBBHHH", SPORT, 0, seq, 0, 5 << 4, SYN, 1024, 0, 0)
    if v6:
        send.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, 16)  # the kernel sums
        base = 0
    else:
        pseudo = socket.inet_aton(source) + socket.inet_aton(address)
        base = _sum16(pseudo + struct.pack("!BBH", 0, socket.IPPROTO_TCP, 20) + header)
    reached: set[int] = set()
    done = threading.Event()

    def receive() -> None:
        while not done.is_set():
            if not select.select([listen], [], [], 0.05)[0]:
                continue
            data, peer = listen.recvfrom(2048)
            tcp = data if v6 else data[(data[0] & 0x0F) * 4 :]
            if peer[0] != address or len(tcp) < 14:
                continue
            sport, dport = struct.unpack("!HH", tcp[:4])
            if dport == SPORT and tcp[13] & (RST | SYN):
                reached.add(sport)

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    ports = [p for p in range(1, 65536) if p not in exclude]
    for i, port in enumerate(ports):
        check = 0 if v6 else _fold(base + port)
        packet = header[:2] + struct.pack("!H", port) + header[4:16] + struct.pack("!H", check)
        send.sendto(packet + header[18:], (address, 0))
        if i % CHUNK == CHUNK - 1:
            time.sleep(PAUSE)
    time.sleep(SETTLE)
    done.set()
    thread.join()
    send.close()
    listen.close()
    return sorted(reached)


if __name__ == "__main__":
    found = scan(sys.argv[1], sys.argv[2], {int(p) for p in sys.argv[3:]})
    print(json.dumps(found))
