"""`fwgen apply` in a real kernel: confirmation keeps the new rules, silence and a killed
apply bring the old ones back byte for byte, the guard refuses to cut the SSH client off,
and a connection established before survives all of it.

Every apply runs inside the server namespace (`ip netns exec`), its state in a temporary
folder (FWGEN_STATE_DIR); ufw over private copies of its files (see `Lab.ufw_root`).
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.kernel.lab import AGENT, Lab

pytestmark = pytest.mark.kernel

TARGETS = ["nftables", "iptables", "ufw"]
OLD = """\
description: Before the change
extends: base
inbound:
  - service: ssh
    from: 198.18.1.0/24
  - port: 8080/tcp
    name: old-app
"""
# 21 separate networks: more than 16, so iptables puts them into an ipset. ufw, which
# has no sets, gets two (one ufw command per address is slow).
PARTNERS = {
    "ufw": "198.18.1.0/24, 10.0.1.1",
    "other": ", ".join(["198.18.1.0/24", *(f"10.0.{i}.1" for i in range(1, 21))]),
}
NEW = """\
description: After the change
extends: base
networks:
  partners: [{partners}]
inbound:
  - service: ssh
    from: 198.18.1.0/24
  - port: 9090/tcp
    name: new-app
    from: partners
"""
TRUSTED_SSH = "198.18.1.2 40000 198.18.1.1 22"
OUTSIDE_SSH = "198.18.2.2 40000 198.18.2.1 22"
PROMPT = "Open a NEW session"
FWGEN_SCRIPT = Path(sys.executable).with_name("fwgen")


@dataclass
class Host:
    lab: Lab
    target: str
    state: Path
    profiles: Path

    cwd: Path | None = None  # where fwgen is started (the installed `fwgen` script then)
    extra_env: dict[str, str] = field(default_factory=dict)

    def command(self, *args: str) -> list[str]:
        wrap = self.lab.ufw_root() if self.target == "ufw" else []
        if self.target == "firewalld":
            assert self.lab.firewalld is not None
            wrap = self.lab.firewalld.wrap()
        # `python -m` would itself import from the working directory: the script does not
        fwgen = [str(FWGEN_SCRIPT)] if self.cwd else [sys.executable, "-m", "fwgen"]
        return ["ip", "netns", "exec", self.lab.server, *wrap, *fwgen, *args]

    def env(self, ssh: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "SSH_CONNECTION"}
        env["FWGEN_STATE_DIR"] = str(self.state)
        if ssh is not None:
            env["SSH_CONNECTION"] = ssh
        return env | self.extra_env

    def apply_args(self, profile: str, *extra: str) -> list[str]:
        return ["apply", str(self.profiles / profile), "--target", self.target, *extra]

    def run(self, *args: str, ssh: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            env=self.env(ssh),
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    def start(self, *args: str, ssh: str | None = TRUSTED_SSH) -> subprocess.Popen[str]:
        """An apply that waits for confirmation; returns once it shows its prompt."""
        proc = subprocess.Popen(
            self.command(*args),
            env=self.env(ssh),
            cwd=self.cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lab.listeners.append(proc)  # killed and reaped with the lab if a test fails
        assert proc.stdout is not None
        seen = []
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            end = time.time() + 180  # loading can take a minute on a busy 2-core machine
            while time.time() < end and sel.select(end - time.time()):
                line = proc.stdout.readline()
                seen.append(line)
                if not line or PROMPT in line:
                    break
        assert seen and PROMPT in seen[-1], "".join(seen)
        assert any(line.startswith("fwgen: loaded: ") for line in seen), "".join(seen)
        return proc

    def snapshot(self) -> str:
        """What the target's own listing says is loaded, counters and dated comments aside."""
        run = self.lab.run
        if self.target == "nftables":  # -s: no counter values; and no timers of set elements
            text = run(self.lab.server, "nft", "-s", "list", "table", "inet", "fwgen", check=False)
            return re.sub(r" expires [0-9dhms]+", "", text)
        text = "".join(run(self.lab.server, save, "-t", "filter") for save in SAVES)
        if self.target == "iptables":
            text += run(self.lab.server, "ipset", "list", "-n")
        else:
            root = Path(str(self.lab.ufw_dir), "etc-ufw")
            for name in ("user.rules", "user6.rules", "ufw.conf", "../default-ufw"):
                text += (root / name).read_text()
        return re.sub(r"\[\d+:\d+\]", "[counters]", re.sub(r"(?m)^#.*\n", "", text))

    def log(self) -> str:
        """What the state folder says happened, for failure messages."""
        found = [self.state / "rollback.log", self.state / "last/meta.json"]
        return "".join(f"\n{p}: {p.read_text()}" for p in found if p.exists())

    def pending(self) -> bool:
        return (self.state / "pending").exists()

    def connect(self) -> subprocess.Popen[str]:
        """A new SSH connection from the trusted client (to sshd's stand-in), made now."""
        ns, address = self.lab.clients["trusted"].ns, self.lab.address("trusted", "ipv4")
        agent = [sys.executable, str(AGENT), "session", address, "22"]
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *agent],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lab.listeners.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "connected"
        return proc


def confirm_over(connection: subprocess.Popen[str]) -> str:
    """Run `fwgen apply --confirm-pending` over *connection*; what it printed."""
    out, _ = connection.communicate("go\n", timeout=120)
    return out


SAVES = ("iptables-save", "ip6tables-save")


@pytest.fixture(params=TARGETS)
def host(lab: Lab, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Host]:
    """The server with the OLD rules loaded (by `fwgen apply --yes`) and listeners."""
    (tmp_path / "old.yaml").write_text(OLD)
    partners = PARTNERS["ufw" if request.param == "ufw" else "other"]
    (tmp_path / "new.yaml").write_text(NEW.format(partners=partners))
    state = tmp_path / "state"
    found = Host(lab, request.param, state, tmp_path)
    done = found.run(*found.apply_args("old.yaml", "--yes"), ssh=TRUSTED_SSH)
    assert done.returncode == 0, done.stdout + done.stderr
    lab.listen(["tcp:8080", "tcp:9090"])
    # sshd's stand-in on port 22: a process per connection, which confirms on request
    confirm = ["env", f"FWGEN_STATE_DIR={state}", sys.executable, "-m", "fwgen", "apply"]
    lab.sshd(22, [*confirm, "--confirm-pending"])
    yield found
    assert not found.pending()


def held(lab: Lab) -> list[subprocess.Popen[str]]:
    """Connections to the old rules' port 8080, which the new rules no longer open."""
    return [lab.hold("trusted", family, 8080) for family in ("ipv4", "ipv6")]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")


def still_up(connections: list[subprocess.Popen[str]]) -> list[str]:
    answers = []
    for proc in connections:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("still there?\n")
        proc.stdin.flush()
        answers.append(proc.stdout.readline().strip())
    return answers


def new_rules_in(host: Host, before: str) -> bool:
    """The new rules replaced the old ones (what they admit: the confirmed tests). On a
    machine so busy that the 3 s ran out before the listing, only the apply's word is left."""
    seen = host.snapshot()
    return seen != before or not host.pending()


NEW_RULES = {"tcp:9090": "open", "tcp:8080": "blocked"}


def loaded(host: Host) -> dict[str, str]:
    """What a new connection from the trusted client finds: NEW_RULES once they are in."""
    return host.lab.probe("trusted", "ipv4", ["tcp:9090", "tcp:8080"])


@pytest.mark.parametrize("how", ["prompt", "second-session"])
def test_confirmed_apply_keeps_the_new_rules(host: Host, how: str) -> None:
    connections = held(host.lab)
    # Long enough for a busy machine: the confirmation ends the wait anyway.
    proc = host.start(*host.apply_args("new.yaml", "--confirm", "90"))
    # The confirming session is a new connection: the new rules must let it in.
    if how == "prompt":
        connections.append(host.lab.hold("trusted", "ipv4", 22))
        out, _ = proc.communicate("yes\n", timeout=60)
        assert "a new connection from 198.18.1.2 port " in out
    else:
        confirmed = confirm_over(host.connect())
        assert "fwgen: applied: the new rules stay" in confirmed, confirmed + host.log()
        out, _ = proc.communicate("", timeout=60)
    assert proc.returncode == 0, out
    assert "applied: the new rules stay" in out
    kept = host.snapshot()
    watcher = int(json.loads((host.state / "last/meta.json").read_text())["watcher"])
    end = time.time() + 10
    while alive(watcher) and time.time() < end:
        time.sleep(0.1)
    assert not alive(watcher)  # the rollback process is gone: nothing comes back
    time.sleep(1)
    assert host.snapshot() == kept
    assert loaded(host) == NEW_RULES
    assert still_up(connections) == ["ok"] * len(connections)


def test_unconfirmed_apply_restores_the_old_rules_byte_for_byte(host: Host) -> None:
    before = host.snapshot()
    connections = held(host.lab)
    proc = host.start(*host.apply_args("new.yaml", "--confirm", "3"))
    assert new_rules_in(host, before)
    out, _ = proc.communicate(timeout=60)  # stdin closed, no answer
    assert proc.returncode == 1, out
    assert "rolled back" in out
    assert host.snapshot() == before
    assert host.lab.probe("trusted", "ipv4", ["tcp:8080", "tcp:9090"]) == {
        "tcp:8080": "open",
        "tcp:9090": "blocked",
    }
    assert still_up(connections) == ["ok", "ok"]


def test_killed_apply_still_rolls_back(host: Host) -> None:
    before = host.snapshot()
    connections = held(host.lab)
    proc = host.start(*host.apply_args("new.yaml", "--confirm", "3"))
    assert new_rules_in(host, before)
    proc.send_signal(signal.SIGKILL)  # the terminal, the shell and fwgen gone at once
    proc.communicate(timeout=30)
    end = time.time() + 30
    while host.pending() and time.time() < end:
        time.sleep(0.2)
    assert not host.pending()
    assert host.snapshot() == before
    assert still_up(connections) == ["ok", "ok"]


def test_guard_refuses_to_cut_the_ssh_client_off_and_changes_nothing(host: Host) -> None:
    before = host.snapshot()
    refused = host.run(*host.apply_args("new.yaml", "--yes"), ssh=OUTSIDE_SSH)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "would cut off a new connection from 198.18.2.2 to port 22/tcp" in refused.stderr
    assert "needed: 198.18.2.2 in the `from:` of rule 'ssh'" in refused.stderr
    assert "nothing was loaded" in refused.stderr
    assert host.snapshot() == before
    assert not host.pending()
    kept = host.run(*host.apply_args("new.yaml", "--yes", "--keep", "198.18.2.2"))
    assert kept.returncode == 2 and "(--keep 198.18.2.2)" in kept.stderr
    assert host.snapshot() == before


BLOCKED = """\
description: A blocklist that holds the admin's own address
extends: base
networks:
  abuse: [{file: abuse.txt}]
inbound:
  - service: ssh
    from: 198.18.1.0/24
  - from: abuse
    action: deny
"""


def test_guard_refuses_a_blocklist_that_holds_the_ssh_client(host: Host) -> None:
    """Only the admin's own address of the SSH network is in the list (no FW021): the
    guard refuses to load it over SSH from that address, and nothing changes; with
    --strict, a list that holds the whole network is refused before the guard."""
    (host.profiles / "blocked.yaml").write_text(BLOCKED)
    (host.profiles / "abuse.txt").write_text("203.0.113.0/24\n198.18.1.2\n")
    before = host.snapshot()
    refused = host.run(*host.apply_args("blocked.yaml", "--yes"), ssh=TRUSTED_SSH)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert (
        "would cut off a new connection from 198.18.1.2 to port 22/tcp (SSH_CONNECTION): "
        "the deny rule 'deny'" in refused.stderr
    )
    assert "nothing was loaded" in refused.stderr
    (host.profiles / "abuse.txt").write_text("198.18.0.0/16\n")
    strict = host.run(*host.apply_args("blocked.yaml", "--yes", "--strict"), ssh=TRUSTED_SSH)
    assert strict.returncode == 2 and "FW021: ssh: every connection" in strict.stderr
    assert host.snapshot() == before
    assert not host.pending()


def test_an_apply_started_in_a_hostile_site_folder_runs_nothing_from_it(
    host: Host, tmp_path: Path
) -> None:
    """A site repository with its own `fwgen` package, and BASH_ENV/ENV naming a script:
    neither the rollback process nor any command fwgen starts may run them."""
    marker = tmp_path / "marker"
    site = tmp_path / "site"
    (site / "fwgen").mkdir(parents=True)
    for name in ("__init__.py", "__main__.py", "apply.py"):
        (site / "fwgen" / name).write_text(f"open({str(marker)!r}, 'a').write('{name}')\n")
    (tmp_path / "env.sh").write_text(f"echo shell >> {marker}\n")
    before = host.snapshot()
    host.cwd = site
    host.extra_env = {"BASH_ENV": str(tmp_path / "env.sh"), "ENV": str(tmp_path / "env.sh")}
    proc = host.start(*host.apply_args("new.yaml", "--confirm", "3"))
    out, _ = proc.communicate(timeout=60)  # no answer: the real rollback must restore
    assert proc.returncode == 1, out + host.log()
    assert "rolled back" in out
    assert host.snapshot() == before
    assert not marker.exists(), marker.read_text()


def read_until(proc: subprocess.Popen[str], text: str, seconds: float = 60) -> str:
    assert proc.stdout is not None
    seen = ""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        end = time.time() + seconds
        while text not in seen and time.time() < end and sel.select(end - time.time()):
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
    assert text in seen, seen
    return seen


def test_only_a_connection_made_after_the_load_confirms(host: Host) -> None:
    before_load = host.connect()  # an SSH connection the admin had open all along
    proc = host.start(*host.apply_args("new.yaml", "--confirm", "90"))
    # the apply's own connection (ssh ControlMaster, tmux): same SSH_CONNECTION
    same = host.run("apply", "--confirm-pending", ssh=TRUSTED_SSH)
    assert same.returncode == 2, same.stdout + same.stderr
    assert f"this is the apply's own connection ({TRUSTED_SSH})" in same.stderr
    old = confirm_over(before_load)
    assert "was not established after the load" in old, old
    assert host.pending()
    # 'yes' at the prompt waits for a new connection from the admin
    assert proc.stdin is not None
    proc.stdin.write("yes\n")
    proc.stdin.flush()
    read_until(proc, "no new connection from 198.18.1.2 since the load")
    assert host.pending()
    confirmed = confirm_over(host.connect())
    assert "fwgen: applied: the new rules stay" in confirmed, confirmed + host.log()
    out, _ = proc.communicate("", timeout=60)
    assert proc.returncode == 0, out
    assert loaded(host) == NEW_RULES


def test_a_rolled_back_first_ufw_apply_leaves_before_init_as_it_was(
    lab: Lab, tmp_path: Path
) -> None:
    """The first apply on ufw makes before.init executable (its block loads the rate
    limits' trackers at every start of ufw); rolling it back puts the file's bytes and
    its mode back, so ufw no longer runs it."""
    (tmp_path / "old.yaml").write_text(OLD)
    host = Host(lab, "ufw", tmp_path / "state", tmp_path)
    lab.ufw_root()
    assert lab.ufw_dir is not None
    init = Path(lab.ufw_dir) / "etc-ufw" / "before.init"
    before = (init.stat().st_mode & 0o7777, init.read_bytes())
    assert not before[0] & 0o111
    proc = host.start(*host.apply_args("old.yaml", "--confirm", "3"))
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    assert (init.stat().st_mode & 0o7777, init.read_bytes()) == before


def test_iptables_apply_refuses_to_delete_other_programs_chains(lab: Lab, tmp_path: Path) -> None:
    """The whole-table load would delete Docker's and fail2ban's chains (the bans lifted, the
    containers cut off) and print "applied": refused, unless --flush-ruleset takes over."""
    (tmp_path / "old.yaml").write_text(OLD)
    host = Host(lab, "iptables", tmp_path / "state", tmp_path)
    for save in ("iptables", "ip6tables"):
        for chain in ("DOCKER-USER", "f2b-sshd"):
            lab.run(lab.server, save, "-N", chain)
        lab.run(lab.server, save, "-I", "FORWARD", "-j", "DOCKER-USER")
        lab.run(lab.server, save, "-I", "INPUT", "-p", "tcp", "--dport", "22", "-j", "f2b-sshd")
    before = host.snapshot()
    refused = host.run(*host.apply_args("old.yaml", "--yes"), ssh=TRUSTED_SSH)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "chains of other programs (DOCKER-USER, f2b-sshd)" in refused.stderr, refused.stderr
    assert "nothing was loaded" in refused.stderr or "refused" in refused.stderr
    assert host.snapshot() == before
    assert not host.pending()
    taken = host.run(*host.apply_args("old.yaml", "--yes", "--flush-ruleset"), ssh=TRUSTED_SSH)
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert "DOCKER-USER" not in host.snapshot()
