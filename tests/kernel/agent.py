"""Runs inside a network namespace: listen on ports, or probe them. Standard library only.

agent.py listen tcp:80 udp:53 ...          # dual-stack listeners; UDP echoes each datagram
agent.py probe ADDRESS tcp:80 udp:53 ...   # prints JSON {"tcp:80": "open"|"blocked"}
agent.py send DEVICE ADDRESS,PORT,SPORT ... # one UDP datagram each: {"ADDRESS,PORT,SPORT": "sent"|errno}
"""

from __future__ import annotations

import errno
import json
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

TIMEOUT = 0.8


def _bind(proto: str, port: int) -> socket.socket:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET6, kind)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("::", port))
    if proto == "tcp":
        sock.listen(128)
    return sock


def _serve_tcp(sock: socket.socket) -> None:
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=_hold, args=(conn,), daemon=True).start()


def _hold(conn: socket.socket) -> None:
    """Echo what arrives until the peer closes: lets tests keep a connection open."""
    with conn:
        while data := conn.recv(1024):
            conn.sendall(data)


def _serve_udp(sock: socket.socket) -> None:
    while True:
        data, peer = sock.recvfrom(2048)
        sock.sendto(data, peer)


def listen(specs: list[str]) -> None:
    for spec in specs:
        proto, port = spec.split(":")
        sock = _bind(proto, int(port))
        serve = _serve_tcp if proto == "tcp" else _serve_udp
        threading.Thread(target=serve, args=(sock,), daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes our stdin


def listen_loopback(port: int) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        print("ready", flush=True)
        sys.stdin.read()


def probe_one(address: str, spec: str) -> str:
    proto, port = spec.split(":")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(family, kind) as sock:
        sock.settimeout(TIMEOUT)
        try:
            sock.connect((address, int(port)))
            if proto == "udp":
                sock.send(b"probe")
                sock.recv(64)
            return "open"
        except (TimeoutError, ConnectionRefusedError, OSError):
            return "blocked"


def probe(address: str, specs: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=64) as pool:
        results = dict(zip(specs, pool.map(lambda s: probe_one(address, s), specs), strict=True))
    print(json.dumps(results, sort_keys=True))


def _checksum(data: bytes) -> int:
    data += b"\0" * (len(data) % 2)
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(address: str) -> None:
    """One ICMP/ICMPv6 echo request; prints "open" when the reply comes back."""
    v6 = ":" in address
    family, proto, kind, reply = (
        (socket.AF_INET6, socket.IPPROTO_ICMPV6, 128, 129)
        if v6
        else (socket.AF_INET, socket.IPPROTO_ICMP, 8, 0)
    )
    with socket.socket(family, socket.SOCK_RAW, proto) as sock:
        sock.settimeout(TIMEOUT)
        body = b"fwgen-probe"
        header = bytes([kind, 0, 0, 0, 0x12, 0x34, 0, 1])
        if not v6:  # the kernel fills in the ICMPv6 checksum, not the ICMP one
            header = header[:2] + _checksum(header + body).to_bytes(2, "big") + header[4:]
        sock.sendto(header + body, (address, 0))
        try:
            while True:
                data = sock.recv(2048)
                icmp = data if v6 else data[(data[0] & 0x0F) * 4 :]
                if icmp[0] == reply and icmp[4:6] == b"\x12\x34":
                    print("open")
                    return
        except OSError:
            print("blocked")


def send_one(device: str, spec: str) -> str:
    """One UDP datagram out of *device* from port SPORT, as a DHCP, DHCPv6 or mDNS client
    sends it (broadcast allowed): "sent", or the error name (EPERM: the firewall refused)."""
    address, port, source_port = spec.split(",")
    v6 = ":" in address
    with socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.bind(("::" if v6 else "0.0.0.0", int(source_port)))
        to = (address, int(port), 0, socket.if_nametoindex(device)) if v6 else (address, int(port))
        try:
            sock.sendto(b"fwgen-probe", to)
        except OSError as exc:
            return errno.errorcode.get(exc.errno or 0, str(exc))
        return "sent"


def burst(address: str, port: int, count: int) -> None:
    print(json.dumps([probe_one(address, f"tcp:{port}") == "open" for _ in range(count)]))


def hold(address: str, port: int) -> None:
    with socket.create_connection((address, port), timeout=TIMEOUT) as sock:
        sock.settimeout(TIMEOUT)
        print("connected", flush=True)
        for line in sys.stdin:
            try:
                sock.sendall(line.encode())
                answer = sock.recv(1024).decode()
                print("ok" if answer == line else "fail", flush=True)
            except OSError:
                print("fail", flush=True)


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "listen":
        listen(args)
    elif command == "listen-loopback":
        listen_loopback(int(args[0]))
    elif command == "probe":
        probe(args[0], args[1:])
    elif command == "ping":
        ping(args[0])
    elif command == "send":
        print(json.dumps({spec: send_one(args[0], spec) for spec in args[1:]}, sort_keys=True))
    elif command == "burst":
        burst(args[0], int(args[1]), int(args[2]))
    else:
        hold(args[0], int(args[1]))
