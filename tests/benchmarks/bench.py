"""fwgen benchmarks: start-up, large address lists, kernel load times. Prints a table.

    python tests/benchmarks/bench.py            # needs fwgen installed; root for the kernel rows

Every figure is a fresh process (what config management pays per call): wall time
is the median of several runs, memory the peak resident set of that process.
"""

from __future__ import annotations

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
# What any program built on these libraries pays before doing anything: the floor,
# plus PyYAML and the first pydantic model a process defines.
LIBRARIES = "import typer, pydantic, jinja2, yaml\nclass M(pydantic.BaseModel): x: int"


def timed(argv: list[str]) -> tuple[float, float]:
    """(seconds, peak MiB) of one fresh process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(
            f"failed: {' '.join(argv)}: {proc.stderr.read().decode() if proc.stderr else ''}"
        )
    return elapsed, usage.ru_maxrss / 1024


def median(argv: list[str], runs: int = RUNS) -> tuple[float, float]:
    """(median seconds, peak MiB) over several fresh processes."""
    return interleaved({"": argv}, runs)[""]


def interleaved(
    commands: dict[str, list[str]], rounds: int = 3 * RUNS
) -> dict[str, tuple[float, float]]:
    """`median` of each command, taking them in turn so a busy moment slows them all alike."""
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, argv in commands.items():
            results[name].append(timed(argv))
    return {
        name: (statistics.median(r[0] for r in runs), max(r[1] for r in runs))
        for name, runs in results.items()
    }


def address_list(folder: Path, v4_count: int) -> Path:
    """Distinct, non-adjacent IPv4 /32s (nothing collapses) and IPv6 /64s."""
    rng = random.Random(v4_count)
    v4 = sorted(rng.sample(range(1 << 30), v4_count))
    lines = [f"{(x >> 23) + 1}.{(x >> 15) & 255}.{(x >> 7) & 255}.{(x << 1) & 255}" for x in v4]
    lines += [f"2001:db8:{i * 2:x}::/64" for i in range(V6_SIZE)]
    (folder / f"feed{v4_count}.txt").write_text("\n".join(lines) + "\n")
    profile = folder / f"feed{v4_count}.yaml"
    profile.write_text(
        f"description: {v4_count} sources\nextends: base\nnetworks:\n  feed: [{{file: feed{v4_count}.txt}}]\n"
        "inbound:\n  - {service: ssh, from: feed}\n"
    )
    return profile


def manifest(folder: Path) -> Path:
    """A build manifest for HOSTS hosts, each with its own admin network."""
    lines = ["hosts:"]
    for i in range(HOSTS):
        profile = ("webserver", "mailserver", "workstation")[i % 3]
        lines += [
            f"  host{i}:",
            f"    profile: {profile}",
            f"    set: {{admins: [10.{i}.0.0/24]}}" if profile != "workstation" else "",
            f"    targets: {{nftables: out/host{i}.nft}}",
        ]
    path = folder / "fwgen.yaml"
    path.write_text("\n".join(line for line in lines if line) + "\n")
    return path


def kernel_load(files: dict[str, Path]) -> dict[str, float]:
    """Seconds for the kernel to load the nftables file and the ipset input, in a namespace."""
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ipset"):
        return {}
    ns = f"fwgbench{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        out = {}
        for name, argv in (
            ("nftables", ["nft", "-f", str(files["nftables"])]),
            ("ipset", ["ipset", "restore", "-exist", "-f", str(files["ipset"])]),
        ):
            out[name] = timed(["ip", "netns", "exec", ns, *argv])[0]
        return out
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def main() -> None:
    fwgen = shutil.which("fwgen") or str(Path(sys.executable).with_name("fwgen"))
    rows: list[tuple[str, str, str]] = []
    startup = interleaved(
        {
            "floor": [sys.executable, "-c", "import typer, pydantic, jinja2"],
            "libraries": [sys.executable, "-c", LIBRARIES],
            "version": [fwgen, "--version"],
            "render": [fwgen, "render", "webserver", "--target", "nftables"],
        }
    )
    floor, libraries, version = (startup[k][0] for k in ("floor", "libraries", "version"))
    cold, cold_mem = startup["render"]
    rows.append(("import floor: python -c 'import typer, pydantic, jinja2'", f"{floor:.3f} s", ""))
    rows.append(
        ("floor + yaml + one pydantic model", f"{libraries:.3f} s ({libraries / floor:.2f}x)", "")
    )
    rows.append(("fwgen --version", f"{version:.3f} s ({version / floor:.2f}x)", ""))
    rows.append(
        (
            "fwgen render webserver --target nftables",
            f"{cold:.3f} s ({cold / floor:.2f}x floor)",
            f"{cold_mem:.0f} MiB",
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seconds, mem = median([fwgen, "build", str(manifest(folder))], runs=3)
        rows.append(
            (
                f"fwgen build, {HOSTS} hosts in one process",
                f"{seconds:.3f} s ({seconds / HOSTS * 1000:.1f} ms a host)",
                f"{mem:.0f} MiB",
            )
        )
        for size in SIZES:
            profile = address_list(folder, size)
            for target in ("nftables", "iptables"):
                out = folder / f"{target}{size}"
                seconds, mem = median(
                    [fwgen, "render", str(profile), "-t", target, "-o", str(out)], runs=5
                )
                rows.append(
                    (
                        f"render {size:,} IPv4 + {V6_SIZE:,} IPv6 sources, {target}",
                        f"{seconds:.3f} s",
                        f"{mem:.0f} MiB",
                    )
                )
        loads = kernel_load(
            {
                "nftables": folder / f"nftables{SIZES[-1]}",
                "ipset": folder / f"iptables{SIZES[-1]}" / "ipsets",
            }
        )
        for name, seconds in loads.items():
            rows.append(
                (
                    f"kernel load, {SIZES[-1]:,} + {V6_SIZE:,} entries, {name}",
                    f"{seconds:.3f} s",
                    "",
                )
            )
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'time':<22}  peak memory")
    for label, took, memory in rows:
        print(f"{label:<{width}}  {took:<22}  {memory}")


if __name__ == "__main__":
    main()
