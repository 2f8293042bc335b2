"""fwgen benchmarks: start-up, large address lists, many hosts, kernel load times, and
ratios to what the same work costs elsewhere. Prints a table.

    python tests/benchmarks/bench.py    # fwgen installed; root for the kernel rows;
                                        # aerleon==1.18.0 installed for its rows

Every figure is a fresh process (what config management pays per call): wall time
is the median of several runs, memory the peak resident set of that process. A ratio
compares two commands timed in turn in the same run, so a busy machine slows both.
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

RUNS = 7
SIZES = (1_000, 10_000, 100_000)
V6_SIZE = 10_000
HOSTS = 100
MANY_HOSTS = 1_000
BLOCKLIST = 1_000_000
AERLEON_SOURCES = 10_000
PREFIX = os.environ.get("FWGEN_NETNS_PREFIX", "fwg")[:4]
# What any program built on these libraries pays before doing anything: the floor,
# plus PyYAML and the first pydantic model a process defines.
LIBRARIES = "import typer, pydantic, jinja2, yaml\nclass M(pydantic.BaseModel): x: int"


Took = tuple[float, float, float]  # wall seconds, peak MiB, CPU seconds


def timed(argv: list[str]) -> Took:
    """(seconds, peak MiB, CPU seconds) of one fresh process, the CPU time of the
    processes it waited for included (its messages kept in a file: a pipe that nobody
    reads would stop a talkative one)."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            errors.seek(0)
            raise SystemExit(f"failed: {' '.join(argv)}: {errors.read().decode()[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def median(argv: list[str], runs: int = RUNS) -> Took:
    """(median seconds, peak MiB, median CPU seconds) over several fresh processes."""
    return interleaved({"": argv}, runs)[""]


def interleaved(commands: dict[str, list[str]], rounds: int = 3 * RUNS) -> dict[str, Took]:
    """`median` of each command, taking them in turn so a busy moment slows them all alike."""
    results: dict[str, list[Took]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, argv in commands.items():
            results[name].append(timed(argv))
    return {
        name: (
            statistics.median(r[0] for r in runs),
            max(r[1] for r in runs),
            statistics.median(r[2] for r in runs),
        )
        for name, runs in results.items()
    }


def ipv4_lines(count: int) -> list[str]:
    """*count* distinct, non-adjacent IPv4 addresses (nothing collapses), sorted."""
    rng = random.Random(count)
    v4 = sorted(rng.sample(range(1 << 30), count))
    return [f"{(x >> 23) + 1}.{(x >> 15) & 255}.{(x >> 7) & 255}.{(x << 1) & 255}" for x in v4]


def address_list(folder: Path, v4_count: int, v6_count: int = V6_SIZE) -> Path:
    """A profile admitting ssh from a list of IPv4 /32s and IPv6 /64s."""
    lines = ipv4_lines(v4_count) + [f"2001:db8:{i * 2:x}::/64" for i in range(v6_count)]
    name = f"feed{v4_count}-{v6_count}"
    (folder / f"{name}.txt").write_text("\n".join(lines) + "\n")
    profile = folder / f"{name}.yaml"
    profile.write_text(
        f"description: {v4_count} sources\nextends: base\nnetworks:\n  feed: [{{file: {name}.txt}}]\n"
        "inbound:\n  - {service: ssh, from: feed}\n"
    )
    return profile


def manifest(folder: Path, hosts: int) -> Path:
    """A build manifest of *hosts* web servers, each with its own admin network."""
    lines = ["hosts:"]
    for i in range(hosts):
        lines += [
            f"  web{i}:",
            "    profile: webserver",
            f"    set: {{admins: [10.{i >> 8}.{i & 255}.0/24]}}",
            f"    targets: {{nftables: out{hosts}/web{i}.nft}}",
        ]
    path = folder / f"fwgen{hosts}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


AERLEON_SERVICES = """services:
  SSH: [{port: 22, protocol: tcp}]
  HTTP: [{port: 80, protocol: tcp}]
  HTTPS: [{port: 443, protocol: tcp}]
  HTTP3: [{port: 443, protocol: udp}]
"""
AERLEON_TERMS = """filters:
  - header:
      targets:
        nftables: mixed INPUT
    terms:
      - name: icmp-errors
        protocol: icmp
        icmp-type: [unreachable, time-exceeded, parameter-problem]
        action: accept
      - name: icmpv6-errors
        protocol: icmpv6
        icmp-type: [destination-unreachable, packet-too-big, time-exceeded, parameter-problem,
                    router-advertisement, neighbor-solicit, neighbor-advertisement]
        action: accept
      - name: ssh
        source-address: {source}
        destination-port: SSH
        protocol: tcp
        action: accept
"""
AERLEON_WEB = """      - name: http
        destination-port: HTTP
        protocol: tcp
        action: accept
      - name: https
        destination-port: HTTPS
        protocol: tcp
        action: accept
      - name: http3
        destination-port: HTTP3
        protocol: udp
        action: accept
"""


def aerleon(folder: Path, networks: dict[str, list[str]], policies: dict[str, str]) -> list[str]:
    """An aerleon ``aclgen`` run over *policies* (name → text) with *networks* defined:
    its definitions, policies and output folders made in *folder*."""
    for sub in ("def", "policies/pol", "out"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "def/services.yaml").write_text(AERLEON_SERVICES)
    defined = ["networks:"]
    for name, addresses in networks.items():
        defined += [f"  {name}:", "    values:", *(f"      - address: {a}" for a in addresses)]
    (folder / "def/networks.yaml").write_text("\n".join(defined) + "\n")
    for name, text in policies.items():
        (folder / f"policies/pol/{name}.yaml").write_text(text)
    aclgen = shutil.which("aclgen") or str(Path(sys.executable).with_name("aclgen"))
    return [
        aclgen,
        f"--base_directory={folder / 'policies'}",
        f"--definitions_directory={folder / 'def'}",
        f"--output_directory={folder / 'out'}",
    ]


def aerleon_sources(folder: Path, count: int) -> list[str]:
    """aerleon rendering one nftables policy admitting ssh from *count* IPv4 addresses."""
    lines = ipv4_lines(count)
    return aerleon(folder, {"FEED": lines}, {"feed": AERLEON_TERMS.format(source="FEED")})


def aerleon_site(folder: Path, hosts: int) -> list[str]:
    """aerleon rendering the web servers of `manifest`: one policy each."""
    networks = {f"ADMINS{i}": [f"10.{i >> 8}.{i & 255}.0/24"] for i in range(hosts)}
    policies = {
        f"web{i}": AERLEON_TERMS.format(source=f"ADMINS{i}") + AERLEON_WEB for i in range(hosts)
    }
    return aerleon(folder, networks, policies)


def blocklist(folder: Path) -> tuple[Path, Path]:
    """A profile admitting ssh from a `BLOCKLIST`-entry network, and its list."""
    listed = folder / "blocklist.txt"
    listed.write_text("\n".join(ipv4_lines(BLOCKLIST)) + "\n")
    profile = folder / "blocklist.yaml"
    profile.write_text(
        "description: a long list\nextends: base\nnetworks:\n  listed: [{file: blocklist.txt}]\n"
        "inbound:\n  - {service: ssh, from: listed}\n"
    )
    return profile, listed


def kernel_load(files: dict[str, list[str]]) -> dict[str, float]:
    """Seconds for the kernel to load each of *files* (name → command), in a namespace."""
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ipset"):
        return {}
    ns = f"{PREFIX}bench{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        return {name: timed(["ip", "netns", "exec", ns, *argv])[0] for name, argv in files.items()}
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def ratio(a: Took, b: Took) -> str:
    """Wall times and their ratio; then the ratio of CPU times, which a machine shared
    with other work changes less."""
    return f"{a[0]:.3f} s / {b[0]:.3f} s = {a[0] / b[0]:.2f}x (cpu {a[2] / b[2]:.2f}x)"


def main() -> None:
    fwgen = shutil.which("fwgen") or str(Path(sys.executable).with_name("fwgen"))
    has_aerleon = importlib.util.find_spec("aerleon") is not None
    rows: list[tuple[str, str, str]] = []
    startup = interleaved(
        {
            "floor": [sys.executable, "-c", "import typer, pydantic, jinja2"],
            "libraries": [sys.executable, "-c", LIBRARIES],
            "version": [fwgen, "--version"],
            "render": [fwgen, "render", "webserver", "--target", "nftables"],
        }
    )
    floor, libraries = startup["floor"][0], startup["libraries"][0]
    rows.append(("import floor: python -c 'import typer, pydantic, jinja2'", f"{floor:.3f} s", ""))
    rows.append(("library floor: + yaml + one pydantic model", f"{libraries:.3f} s", ""))
    rows.append(
        ("fwgen --version / library floor", ratio(startup["version"], startup["libraries"]), "")
    )
    rows.append(
        (
            "fwgen render webserver -t nftables / library floor",
            ratio(startup["render"], startup["libraries"]),
            f"{startup['render'][1]:.0f} MiB",
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for hosts in (HOSTS, MANY_HOSTS):
            build = [fwgen, "build", str(manifest(folder, hosts))]
            runs = 5 if hosts == HOSTS else 3
            if has_aerleon:
                commands = {"fwgen": build, "aerleon": aerleon_site(folder / f"aer{hosts}", hosts)}
                if hosts == HOSTS:  # where the goal for this row sits: what fwgen cannot go below
                    commands["one"] = [fwgen, "build", str(manifest(folder, 1))]
                    commands["libraries"] = [sys.executable, "-c", LIBRARIES]
                took = interleaved(commands, runs)
                rows.append(
                    (
                        f"fwgen build / aerleon aclgen, {hosts:,} web servers",
                        ratio(took["fwgen"], took["aerleon"]),
                        f"{took['fwgen'][1]:.0f} MiB",
                    )
                )
                if hosts == HOSTS:
                    rows.append(
                        (
                            f"fwgen build of 1 web server / aclgen, {hosts:,}",
                            ratio(took["one"], took["aerleon"]),
                            "",
                        )
                    )
                    rows.append(
                        (
                            f"library floor / aclgen, {hosts:,} web servers",
                            ratio(took["libraries"], took["aerleon"]),
                            "",
                        )
                    )
            else:
                seconds, mem, _ = median(build, runs)
                rows.append(
                    (f"fwgen build, {hosts:,} web servers", f"{seconds:.3f} s", f"{mem:.0f} MiB")
                )
        if has_aerleon:
            profile = address_list(folder, SIZES[-1], 0)
            took = interleaved(
                {
                    "fwgen": [
                        fwgen,
                        "render",
                        str(profile),
                        "-t",
                        "nftables",
                        "-o",
                        str(folder / "f"),
                    ],
                    "aerleon": aerleon_sources(folder / "aersrc", AERLEON_SOURCES),
                },
                5,
            )
            rows.append(
                (
                    f"fwgen {SIZES[-1]:,} IPv4 sources / aerleon {AERLEON_SOURCES:,}, nftables",
                    ratio(took["fwgen"], took["aerleon"]),
                    f"{took['fwgen'][1]:.0f} MiB",
                )
            )
        for size in SIZES:
            profile = address_list(folder, size)
            for target in ("nftables", "iptables"):
                out = folder / f"{target}{size}"
                seconds, mem, _ = median(
                    [fwgen, "render", str(profile), "-t", target, "-o", str(out)], runs=5
                )
                rows.append(
                    (
                        f"render {size:,} IPv4 + {V6_SIZE:,} IPv6 sources, {target}",
                        f"{seconds:.3f} s",
                        f"{mem:.0f} MiB",
                    )
                )
        profile, listed = blocklist(folder)
        took = interleaved(
            {
                "fwgen": [
                    fwgen,
                    "render",
                    str(profile),
                    "-t",
                    "nftables",
                    "-o",
                    str(folder / "block.nft"),
                ],
                "ipaddress": [
                    sys.executable,
                    "-c",
                    "import ipaddress, sys\n"
                    "nets = [ipaddress.ip_network(line) for line in open(sys.argv[1]).read().split()]",
                    str(listed),
                ],
            },
            3,
        )
        rows.append(
            (
                f"render {BLOCKLIST:,} IPv4 sources / ipaddress parsing them",
                ratio(took["fwgen"], took["ipaddress"]),
                f"{took['fwgen'][1]:.0f} MiB",
            )
        )
        loads = kernel_load(
            {
                f"{SIZES[-1]:,} + {V6_SIZE:,} entries, nftables": [
                    "nft",
                    "-f",
                    str(folder / f"nftables{SIZES[-1]}"),
                ],
                f"{SIZES[-1]:,} + {V6_SIZE:,} entries, ipset": [
                    "ipset",
                    "restore",
                    "-exist",
                    "-f",
                    str(folder / f"iptables{SIZES[-1]}" / "ipsets"),
                ],
                f"{BLOCKLIST:,} entries, nftables": ["nft", "-f", str(folder / "block.nft")],
            }
        )
        for name, seconds in loads.items():
            rows.append((f"kernel load, {name}", f"{seconds:.3f} s", ""))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'time':<44}  peak memory")
    for label, took_text, memory in rows:
        print(f"{label:<{width}}  {took_text:<44}  {memory}".rstrip())


if __name__ == "__main__":
    main()
