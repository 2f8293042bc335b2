"""The firewalld target's install script, run against the real firewalld.

One throw-away network namespace, and in it a private mount namespace: a tmpfs on /run
(the D-Bus socket, firewalld's runtime), a temporary copy of /etc/firewalld bind-mounted
over the machine's, `dbus-daemon --system --fork --print-pid` and `firewalld --nofork
--nopid`, both stopped by their pids. The scenario runs in one session and prints what
each step did; the test reads it.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render
from tests.conftest import BUILTIN, INTERFACES_TO_SET, NETWORKS_TO_SET
from tests.kernel.conftest import need
from tests.kernel.lab import PREFIX

pytestmark = pytest.mark.kernel
TOOLS = ("firewalld", "firewall-cmd", "firewall-offline-cmd", "dbus-daemon", "unshare", "ip")

SESSION = """
set -u
mount --bind "$ETC_COPY" /etc/firewalld
mount -t tmpfs tmpfs /run
mkdir -p /run/dbus
bus=$(dbus-daemon --system --fork --print-pid)
firewalld --nofork --nopid --log-target console >"$WORK/firewalld.log" 2>&1 &
daemon=$!
for _ in $(seq 150); do firewall-cmd --state >/dev/null 2>&1 && break; sleep 0.2; done
step() {  # NAME COMMAND...: run it, say how it ended
    out=$("${@:2}" 2>&1); echo "STEP $1 rc=$? $(echo "$out" | tr '\\n' ' ')"
}
files() { find /etc/firewalld -name 'fwgen*' -type f | sort | xargs -r sha256sum; }
firewall-cmd --permanent --new-zone=other >/dev/null
firewall-cmd --permanent --zone=other --add-port=1234/tcp >/dev/null
firewall-cmd --reload >/dev/null
step first bash "$WORK/web/fwgen-firewalld.sh"
echo "DEFAULT $(firewall-cmd --get-default-zone)"
echo "OTHER $(firewall-cmd --zone=other --list-ports)"
nft list ruleset >"$WORK/ruleset.1"; files >"$WORK/files.1"
step again bash "$WORK/web/fwgen-firewalld.sh"
nft list ruleset >"$WORK/ruleset.2"; files >"$WORK/files.2"
step bastion bash "$WORK/bastion/fwgen-firewalld.sh"
echo "POLICIES $(ls /etc/firewalld/policies | tr '\\n' ' ')"
step back bash "$WORK/web/fwgen-firewalld.sh"
echo "POLICIES $(ls /etc/firewalld/policies | tr '\\n' ' ')"
files >"$WORK/files.3"
step broken bash "$WORK/broken/fwgen-firewalld.sh"
files >"$WORK/files.4"
firewall-cmd --permanent --zone=other --add-source=198.18.9.0/24 >/dev/null
step claimed bash "$WORK/bastion/fwgen-firewalld.sh"
files >"$WORK/files.5"
kill "$daemon"; wait "$daemon"
kill "$bus"
"""


def write(files: dict[str, str], folder: Path) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def in_a_namespace(session: str, etc: Path, work: Path, tag: str) -> str:
    """Run the bash *session* in a throw-away network namespace and a private mount
    namespace, with ETC_COPY (a copy of /etc/firewalld) and WORK set; its output."""
    namespace = f"{PREFIX}{tag}{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        env = f"ETC_COPY={shlex.quote(str(etc))} WORK={shlex.quote(str(work))}"
        result = subprocess.run(
            ["ip", "netns", "exec", namespace, "unshare", "-m", "--propagation", "private",
             "bash", "-c", f"{env}; export ETC_COPY WORK; {session}"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=True)
    return result.stdout + result.stderr


def test_the_install_script_against_the_real_firewalld(tmp_path: Path) -> None:
    need(next((f"the firewalld tests need `{t}`" for t in TOOLS if not shutil.which(t)), ""))
    web = render(resolve_profile("webserver", {"admins": ["198.18.0.0/24"]}), "firewalld")
    bastion = render(resolve_profile("bastion", {"internal": ["198.18.1.0/24"]}), "firewalld")
    write(web, tmp_path / "web")
    write(bastion, tmp_path / "bastion")
    broken = dict(web)  # an ICMP type firewalld does not know: its check refuses the zone
    broken["zones/fwgen.xml"] = web["zones/fwgen.xml"].replace('"echo-request"', '"no-such"')
    write(broken, tmp_path / "broken")
    etc = tmp_path / "etc-firewalld"
    shutil.copytree("/etc/firewalld", etc, symlinks=True)
    out = in_a_namespace(SESSION, etc, tmp_path, "fi")
    steps = dict(re.findall(r"^STEP (\w+) rc=(\d+)", out, re.M))
    assert steps == {
        "first": "0",
        "again": "0",
        "bastion": "0",
        "back": "0",
        "broken": "1",
        "claimed": "1",
    }, out + (tmp_path / "firewalld.log").read_text()
    assert "DEFAULT fwgen" in out
    assert "OTHER 1234/tcp" in out  # another zone's rules survive fwgen's reload
    # A second run changes nothing: the same files, the same nftables ruleset.
    assert (tmp_path / "ruleset.1").read_text() == (tmp_path / "ruleset.2").read_text()
    assert (tmp_path / "files.1").read_text() == (tmp_path / "files.2").read_text()
    assert "STEP again rc=0 fwgen-firewalld: zone fwgen is in force" in out
    # Policies come and go with the profile; the zone file is what fwgen rendered.
    policies = re.findall(r"^POLICIES (.*)$", out, re.M)
    assert [p.split() for p in policies] == [["fwgen-outbound.xml"], []]
    assert (etc / "zones" / "fwgen.xml").read_text() == web["zones/fwgen.xml"]
    # Refused before anything changed: firewalld's own check, another zone's source.
    assert "firewalld refuses the configuration, nothing changed" in out
    assert (tmp_path / "files.4").read_text() == (tmp_path / "files.3").read_text()
    assert "nothing changed: zone other holds 198.18.9.0/24;" in out
    assert (tmp_path / "files.5").read_text() == (tmp_path / "files.3").read_text()


LOUD_CHECK = """
set -eu
mount --bind "$1" /etc/firewalld
for config in "${@:2}"; do
    firewall-offline-cmd --system-config="$config" --check-config && echo "CHECKED $config"
done
"""


def firewalld_checks(etc: Path, configs: list[str]) -> None:
    """firewall-offline-cmd --check-config passes every configuration, printing nothing: it
    exits 0 even where it skips a rule it finds invalid (with a WARNING)."""
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "bash", "-c", LOUD_CHECK, "check", str(etc), *configs],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.stdout.splitlines() == [f"CHECKED {c}" for c in configs], (
        result.stdout + result.stderr
    )
    assert "WARNING" not in result.stderr and "ERROR" not in result.stderr, result.stderr


def test_firewalld_accepts_every_built_in_profile(tmp_path: Path) -> None:
    """firewalld's own check of the whole configuration, every built-in profile's files
    added to a copy of /etc/firewalld (in a private mount namespace, over a copy)."""
    need(next((f"the firewalld tests need `{t}`" for t in TOOLS if not shutil.which(t)), ""))
    etc = tmp_path / "etc-firewalld"
    shutil.copytree("/etc/firewalld", etc, symlinks=True)
    configs = []
    for profile in BUILTIN:
        if profile == "docker-host":  # containers: refused on firewalld
            continue
        config = tmp_path / profile
        shutil.copytree(etc, config, symlinks=True)
        sets = {n: ["198.18.0.0/24", "2001:db8:18::/48"] for n in NETWORKS_TO_SET[profile]}
        sets |= {n: ["eth1", "wg*"] for n in INTERFACES_TO_SET.get(profile, [])}
        files = render(resolve_profile(profile, sets), "firewalld")
        write({k: v for k, v in files.items() if k.endswith(".xml")}, config)
        configs.append(str(config))
    firewalld_checks(etc, configs)


def test_firewalld_accepts_deny_reject_and_blocklist_rules(tmp_path: Path) -> None:
    """firewalld's own check of the rich rules deny and reject rules, refusals, logged
    denies and a blocklist's ipsets become (firewall-offline-cmd parses and checks every
    rich rule: reject types per family, priorities, limits)."""
    need(next((f"the firewalld tests need `{t}`" for t in TOOLS if not shutil.which(t)), ""))
    etc = tmp_path / "etc-firewalld"
    shutil.copytree("/etc/firewalld", etc, symlinks=True)
    configs = []
    for profile in ("denies", "firewalld-denies"):
        config = tmp_path / profile
        shutil.copytree(etc, config, symlinks=True)
        files = render(resolve_profile(f"tests/data/good/{profile}.yaml"), "firewalld")
        assert any("<reject" in text for text in files.values())
        write({k: v for k, v in files.items() if k.endswith(".xml")}, config)
        configs.append(str(config))
    assert (tmp_path / "firewalld-denies" / "ipsets" / "fwgen-block-v4.xml").exists()
    firewalld_checks(etc, configs)
