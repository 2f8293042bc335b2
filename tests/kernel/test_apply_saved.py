"""`fwgen apply` in a real kernel, what it saves and what its guard models: a
`--flush-ruleset` rollback gives back every table it replaced, nftables refuses to flush
the tables of iptables-nft, and without the established shortcut the guard refuses what
really cuts a TCP connection off and accepts what really carries one."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.kernel.lab import AGENT, Lab
from tests.kernel.test_apply import NEW, PARTNERS, SAVES, TRUSTED_SSH, Host

pytestmark = pytest.mark.kernel


ADMIN_TABLES = [  # an admin's NAT, marks and notrack, in both families
    ("-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "8443", "-j", "DNAT",
     "--to-destination", "{dnat}"),
    ("-t", "nat", "-A", "POSTROUTING", "-o", "lo", "-j", "MASQUERADE"),
    ("-t", "mangle", "-A", "PREROUTING", "-p", "tcp", "--dport", "80", "-j", "MARK",
     "--set-mark", "7"),
    ("-t", "raw", "-A", "PREROUTING", "-p", "udp", "--dport", "53", "-j", "NOTRACK"),
]  # fmt: skip
DNAT_TO = {"iptables": "198.18.1.2:443", "ip6tables": "[2001:db8:1::2]:443"}


def every_table(lab: Lab) -> str:
    """iptables-save and ip6tables-save of every table, counters and comments aside."""
    text = "".join(lab.run(lab.server, save) for save in SAVES)
    return re.sub(r"\[\d+:\d+\]", "[counters]", re.sub(r"(?m)^#.*\n", "", text))


def test_iptables_flush_ruleset_rollback_restores_nat_mangle_and_raw(
    lab: Lab, tmp_path: Path
) -> None:
    (tmp_path / "new.yaml").write_text(NEW.format(partners=PARTNERS["other"]))
    host = Host(lab, "iptables", tmp_path / "state", tmp_path)
    for tool, dnat in DNAT_TO.items():
        for rule in ADMIN_TABLES:
            lab.run(lab.server, tool, *(part.format(dnat=dnat) for part in rule))
    before = every_table(lab)
    assert "DNAT" in before and "MASQUERADE" in before and "MARK" in before
    assert before.count("NOTRACK") + before.count("--notrack") == 2, before
    proc = host.start(*host.apply_args("new.yaml", "--flush-ruleset", "--confirm", "3"))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + host.log()
    assert every_table(lab) == before


def test_nftables_flush_ruleset_refuses_tables_of_iptables_nft(lab: Lab, tmp_path: Path) -> None:
    (tmp_path / "new.yaml").write_text(NEW.format(partners=PARTNERS["other"]))
    host = Host(lab, "nftables", tmp_path / "state", tmp_path)
    lab.run(lab.server, "iptables", *(p.format(dnat=DNAT_TO["iptables"]) for p in ADMIN_TABLES[0]))
    lab.run(lab.server, "ip6tables", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
    before = lab.run(lab.server, "nft", "list", "ruleset") + every_table(lab)
    refused = host.run(*host.apply_args("new.yaml", "--flush-ruleset", "--yes"), ssh=TRUSTED_SSH)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "--flush-ruleset would replace ip nat, ip6 filter, which iptables-nft manages" in (
        refused.stderr
    )
    assert "nothing was loaded" in refused.stderr
    assert lab.run(lab.server, "nft", "list", "ruleset") + every_table(lab) == before
    assert not host.pending()


WITHOUT_ESTABLISHED = """\
description: no established shortcut
extends: base
options: {{established: false}}
inbound:
  - service: ssh
    from: 198.18.1.0/24
{limit}outbound: {outbound}
"""
REPLIES_OUT = "[{port: 1024-65535/tcp, name: ssh-replies, to: 198.18.1.0/24}]"
GUARD_CASES = {  # name: (limit, outbound, what the guard says is missing)
    "rate-limited": ("    limit: 10/minute\n", "accept", "has a limit, which admits new"),
    "replies-dropped": ("", "[{service: dns}]", "its replies (from port 22/tcp) are not let out"),
    "works": ("", REPLIES_OUT, ""),
}


def talks(lab: Lab) -> bool:
    """A real TCP connection from the trusted client to port 22 carries data both ways."""
    ns, address = lab.clients["trusted"].ns, lab.address("trusted", "ipv4")
    out = lab.run(
        ns, sys.executable, str(AGENT), "hold", address, "22", stdin="hello\n", check=False
    )
    return out.split() == ["connected", "ok"]


@pytest.mark.parametrize("target", ["nftables", "iptables"])
@pytest.mark.parametrize("case", GUARD_CASES)
def test_without_established_the_guard_models_every_packet_of_the_connection(
    lab: Lab, tmp_path: Path, target: str, case: str
) -> None:
    limit, outbound, missing = GUARD_CASES[case]
    (tmp_path / "p.yaml").write_text(WITHOUT_ESTABLISHED.format(limit=limit, outbound=outbound))
    host = Host(lab, target, tmp_path / "state", tmp_path)
    lab.listen(["tcp:22"])
    assert talks(lab)  # no rules yet
    done = host.run(*host.apply_args("p.yaml", "--yes"), ssh=TRUSTED_SSH)
    if missing:
        assert done.returncode == 2, done.stdout + done.stderr
        assert "would cut off a new connection from 198.18.1.2 to port 22/tcp" in done.stderr
        assert missing in done.stderr
        # what the guard refused really cuts a new connection off
        forced = host.run(*host.apply_args("p.yaml", "--yes", "--force"), ssh=TRUSTED_SSH)
        assert forced.returncode == 0, forced.stdout + forced.stderr
        assert not talks(lab)
    else:
        assert done.returncode == 0, done.stdout + done.stderr
        assert talks(lab)
