"""Runs inside a network namespace: listen on ports, or probe them. Standard library only.

agent.py listen tcp:80 udp:53 ...          # dual-stack listeners; UDP echoes each datagram
agent.py probe ADDRESS tcp:80 udp:53 ...   # prints JSON {"tcp:80": "open"|"blocked"}
"""

from __future__ import annotations

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


if __name__ == "__main__":
    if sys.argv[1] == "listen":
        listen(sys.argv[2:])
    else:
        probe(sys.argv[2], sys.argv[3:])
