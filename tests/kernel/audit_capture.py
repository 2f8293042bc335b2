"""Real nmap and ss output from the kernel harness, for `fwgen audit` and `fwgen discover`.

    python -m tests.kernel.audit_capture     # as root, from the repository: rewrites tests/data/audit/

A server namespace runs listeners (some allowed by the webserver profile, mysql
not, one on loopback) behind the webserver ruleset; nmap scans it from the
`outside` client, with and without the ruleset loaded; ss lists the listeners.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render
from tests.kernel.lab import AGENT, Lab

OUT = Path("tests/data/audit")
LISTENERS = ["tcp:22", "tcp:80", "tcp:443", "tcp:3306", "tcp:47001", "udp:443"]
SCANNED = "22,80,443,3306,8080,47001"


def start(lab: Lab) -> None:
    lab.add_client("trusted")
    lab.add_client("outside")
    lab.listen(LISTENERS)
    lab.listen_loopback(631)


def load_webserver(lab: Lab) -> None:
    trusted = lab.clients["trusted"]
    policy = resolve_profile("webserver", {"admins": [trusted.ipv4, trusted.ipv6]})
    lab.nft(render(policy, "nftables")["fwgen.nft"])


def nmap(lab: Lab, client: str, family: str, scan: str = "-sS", ports: str = SCANNED) -> str:
    """nmap's XML report of the server, from *client*: a SYN scan, or ``-sU`` for UDP."""
    target = lab.address(client, family)
    flags = ["-6"] if family == "ipv6" else []
    return lab.run(
        lab.clients[client].ns,
        "nmap",
        *flags,
        "-n",
        "-Pn",
        scan,
        "--max-retries",
        "1",
        "--host-timeout",
        "30s",
        "-p",
        ports,
        "-oX",
        "-",
        target,
    )


def ss(lab: Lab, processes: bool) -> str:
    return lab.run(lab.server, "ss", "-tulpnH" if processes else "-tulnH")


def capture() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with Lab() as lab:
        start(lab)
        (OUT / "ss-tulnH.txt").write_text(ss(lab, False))
        (OUT / "ss-tulpnH.txt").write_text(ss(lab, True))
        (OUT / "nmap-open.xml").write_text(nmap(lab, "outside", "ipv4"))
        load_webserver(lab)
        (OUT / "nmap-webserver-outside.xml").write_text(nmap(lab, "outside", "ipv4"))
        (OUT / "nmap-webserver-outside-v6.xml").write_text(nmap(lab, "outside", "ipv6"))
        (OUT / "nmap-webserver-trusted.xml").write_text(nmap(lab, "trusted", "ipv4"))
    print(f"wrote {OUT}/ (server {lab.prefix}); agent {AGENT.name}", file=sys.stderr)


if __name__ == "__main__":
    capture()
