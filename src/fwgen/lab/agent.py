"""Runs inside a network namespace: listen on ports, or probe them. Standard library only.

agent.py listen tcp:80 udp:53 ...          # dual-stack listeners; UDP echoes each datagram
agent.py probe ADDRESS tcp:80 udp:53 ...   # prints JSON {"tcp:80": "open"|"blocked"}
agent.py send DEVICE ADDRESS,PORT,SPORT ... # one UDP datagram each: {"ADDRESS,PORT,SPORT": "sent"|errno}
agent.py echo ADDRESS COUNT SPACING        # COUNT echo requests of one ICMP id: JSON answered, seconds
agent.py udp-error ADDRESS PORT            # "refused" when an ICMP port unreachable comes back
agent.py mld-query DEVICE HOPLIMIT [global]  # an MLD query to ff02::1, from a link-local address
agent.py sniff-icmpv6 TYPE                 # until stdin closes: how many of TYPE were delivered
agent.py receive DEVICE FAMILY:PORT[:GROUP] ...  # until stdin closes: JSON, the specs a probe reached
agent.py sshd PORT COMMAND...              # a stand-in for sshd: one process per connection
agent.py session ADDRESS PORT              # connect; on a stdin line, ask the sshd stand-in to run
agent.py answer ADDRESS PROTO:PORT [SOURCE] # what a connection gets: open|refused|unreachable|timeout
agent.py sweep  # stdin {"probes": [[SOURCE, ADDRESS, SPEC]...], "pings": [[SOURCE, ADDRESS]...]}
                # (JSON): JSON, each one's "open"|"blocked", in order (fwgen verify)
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
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


def probe_one(address: str, spec: str, source: str = "") -> str:
    return "open" if attempt(address, spec, source, TIMEOUT) == "open" else "blocked"


def attempt(address: str, spec: str, source: str, timeout: float) -> str:
    """One connection (TCP) or datagram and its answer (UDP): "open", "refused" (a TCP
    RST, or ICMP port unreachable), "unreachable" (another ICMP error, administratively
    prohibited among them), "timeout" (silence), or the error."""
    proto, port = spec.split(":")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(family, kind) as sock:
        sock.settimeout(timeout)
        if source:
            sock.bind((source, 0))
        try:
            sock.connect((address, int(port)))
            if proto == "udp":
                sock.send(b"probe")
                sock.recv(64)
            return "open"
        except ConnectionRefusedError:
            return "refused"
        except TimeoutError:
            return "timeout"
        except OSError as error:
            unreachable = (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES)
            return "unreachable" if error.errno in unreachable else str(error)


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


def _echo_socket(v6: bool) -> socket.socket:
    family, proto = (
        (socket.AF_INET6, socket.IPPROTO_ICMPV6) if v6 else (socket.AF_INET, socket.IPPROTO_ICMP)
    )
    return socket.socket(family, socket.SOCK_RAW, proto)


def echo(
    address: str, count: int, spacing: float, source: str = "", ident: int = 0x1234
) -> tuple[set[int], float]:
    """*count* echo requests of one ICMP id, *spacing* seconds apart, as ``ping`` sends
    them (conntrack sees one flow), from *source* if given: the sequence numbers
    answered, and how long sending took."""
    v6 = ":" in address
    kind, reply = (128, 129) if v6 else (8, 0)
    answered: set[int] = set()
    sent = threading.Event()
    with _echo_socket(v6) as sock:
        sock.settimeout(TIMEOUT)
        if source:
            sock.bind((source, 0))

        def receive() -> None:
            while True:
                try:
                    data = sock.recv(2048)
                except OSError:  # quiet for TIMEOUT after the last request: all are in
                    if sent.is_set():
                        return
                    continue
                icmp = data if v6 else data[(data[0] & 0x0F) * 4 :]
                if icmp[0] == reply and icmp[4:6] == ident.to_bytes(2, "big"):
                    answered.add(int.from_bytes(icmp[6:8], "big"))
                    if len(answered) == count:
                        return

        receiver = threading.Thread(target=receive)
        receiver.start()
        start = time.monotonic()
        body = b"fwgen-probe"
        for seq in range(1, count + 1):
            header = bytes([kind, 0, 0, 0]) + ident.to_bytes(2, "big") + seq.to_bytes(2, "big")
            if not v6:  # the kernel fills in the ICMPv6 checksum, not the ICMP one
                header = header[:2] + _checksum(header + body).to_bytes(2, "big") + header[4:]
            sock.sendto(header + body, (address, 0))
            if seq < count:
                time.sleep(spacing)
        seconds = time.monotonic() - start
        sent.set()
        receiver.join()
    return answered, seconds


def sweep(asked: dict[str, list[list[str]]]) -> None:
    """Every probe and ping at once (each ping an ICMP id of its own: every echo socket
    sees every reply): JSON {"probes": [...], "pings": [...]}, "open" or "blocked"."""
    probes, pings = asked.get("probes", []), asked.get("pings", [])

    def ping_one(i: int) -> str:
        return "open" if echo(pings[i][1], 1, 0, pings[i][0], 0x2000 + i)[0] else "blocked"

    with ThreadPoolExecutor(max_workers=64) as pool:
        echoed = pool.map(ping_one, range(len(pings)))
        found = list(pool.map(lambda p: probe_one(p[1], p[2], p[0]), probes))
        print(json.dumps({"probes": found, "pings": list(echoed)}))


def ping(address: str) -> None:
    """One ICMP/ICMPv6 echo request; prints "open" when the reply comes back."""
    print("open" if echo(address, 1, 0)[0] else "blocked")


def udp_error(address: str, port: int) -> None:
    """A datagram to a closed port: "refused" when the port unreachable error gets back."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect((address, port))
        try:
            for _ in range(3):
                sock.send(b"anyone?")
                time.sleep(0.1)
            sock.recv(64)
            print("answered")
        except ConnectionRefusedError:
            print("refused")
        except OSError:
            print("timeout")


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


def _address_of(device: str, scope: str) -> str:
    """The device's IPv6 address of a scope ("20" link-local, "00" global), from /proc;
    a link that just came up gets its link-local address within a second or so."""
    for _ in range(50):
        with open("/proc/net/if_inet6") as table:
            for line in table:
                hexa, _, _, found, _, name = line.split()
                if name == device and found == scope:
                    return ":".join(hexa[i : i + 4] for i in range(0, 32, 4))
        time.sleep(0.1)
    raise SystemExit(f"no address of scope {scope} on {device}")


def mld_query(device: str, hop_limit: int, source: str) -> None:
    """An MLDv1 general query to ff02::1 on *device*, from its link-local or global address."""
    index = socket.if_nametoindex(device)
    address = _address_of(device, "00" if source == "global" else "20")
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
        sock.bind((address, 0, 0, index if source != "global" else 0))
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, hop_limit)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        query = bytes([130, 0, 0, 0, 0, 10, 0, 0]) + bytes(16)  # 10 ms, all groups
        sock.sendto(query, ("ff02::1", 0, 0, index))
    print("sent")


def sniff_icmpv6(kind: int) -> None:
    """Counts the ICMPv6 messages of one type that the firewall lets in, until stdin closes."""
    seen = [0]
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:

        def count() -> None:
            while True:
                if sock.recv(2048)[0] == kind:
                    seen[0] += 1

        threading.Thread(target=count, daemon=True).start()
        print("ready", flush=True)
        sys.stdin.read()
        time.sleep(0.2)
        print(seen[0], flush=True)


def receive(device: str, specs: list[str]) -> None:
    """A UDP socket per FAMILY:PORT, a member of GROUP (joined on *device*) if given;
    until stdin closes. Prints which of them a datagram of `send_one` reached."""
    index = socket.if_nametoindex(device)
    reached: set[str] = set()
    for spec in specs:
        family, port, *group = spec.split(":", 2)
        v6 = family == "ipv6"
        sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if v6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(("::" if v6 else "0.0.0.0", int(port)))
        if group and v6:
            request = socket.inet_pton(socket.AF_INET6, group[0]) + struct.pack("@I", index)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, request)
        elif group:
            request = socket.inet_aton(group[0]) + bytes(4) + struct.pack("@i", index)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, request)

        def count(sock: socket.socket = sock, spec: str = spec) -> None:
            while True:
                if sock.recv(2048) == b"fwgen-probe":
                    reached.add(spec)

        threading.Thread(target=count, daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()
    time.sleep(0.3)
    print(json.dumps(sorted(reached)), flush=True)


def burst(address: str, port: int, count: int, source: str = "") -> None:
    print(json.dumps([probe_one(address, f"tcp:{port}", source) == "open" for _ in range(count)]))


def answer(address: str, spec: str, source: str = "") -> None:
    """What one connection gets (see `attempt`), and how many seconds that took."""
    started = time.monotonic()
    result = attempt(address, spec, source, 2 * TIMEOUT)
    print(json.dumps({"result": result, "seconds": round(time.monotonic() - started, 3)}))


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


def sshd(port: int, command: list[str]) -> None:
    """Like sshd: each accepted connection gets a process of its own, forked then, which
    holds its socket. Its first line "run" starts *command* there (stdin, stdout and
    stderr on the socket, SSH_CONNECTION set as sshd sets it); any other line is echoed,
    and so is the rest (what `hold` expects)."""
    sock = _bind("tcp", port)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    print("ready", flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    while True:
        conn, peer = sock.accept()
        if os.fork():
            conn.close()
            continue
        sock.close()
        os.dup2(os.open(os.devnull, os.O_RDWR), 1)  # the test's pipe ends with the listener
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        first = conn.makefile("rb").readline()
        if first == b"run\n":
            local = conn.getsockname()
            plain = [a.removeprefix("::ffff:") for a in (peer[0], local[0])]
            session = f"{plain[0]} {peer[1]} {plain[1]} {local[1]}"
            for fd in (0, 1, 2):
                os.dup2(conn.fileno(), fd)
            os.execvpe(command[0], command, {**os.environ, "SSH_CONNECTION": session})
        if first:
            conn.sendall(first)
            _hold(conn)
        os._exit(0)


def session(address: str, port: int) -> None:
    """Connect now; on a line from stdin, send "run" and print what comes back."""
    with socket.create_connection((address, port), timeout=TIMEOUT) as sock:
        print("connected", flush=True)
        sys.stdin.readline()
        sock.sendall(b"run\n")
        sock.settimeout(120)
        while data := sock.recv(4096):
            sys.stdout.write(data.decode(errors="replace"))
    sys.stdout.flush()


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
        burst(args[0], int(args[1]), int(args[2]), *args[3:])
    elif command == "echo":
        answered, seconds = echo(args[0], int(args[1]), float(args[2]))
        print(json.dumps({"answered": sorted(answered), "seconds": seconds}))
    elif command == "udp-error":
        udp_error(args[0], int(args[1]))
    elif command == "mld-query":
        mld_query(args[0], int(args[1]), args[2] if len(args) > 2 else "link")
    elif command == "receive":
        receive(args[0], args[1:])
    elif command == "sniff-icmpv6":
        sniff_icmpv6(int(args[0]))
    elif command == "sshd":
        sshd(int(args[0]), args[1:])
    elif command == "session":
        session(args[0], int(args[1]))
    elif command == "answer":
        answer(*args)
    elif command == "sweep":
        sweep(json.loads(sys.stdin.read()))
    else:
        hold(args[0], int(args[1]))
