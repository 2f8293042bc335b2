"""What `check` FW016-FW018 say, measured in a real kernel: a profile without neighbour
discovery loses its IPv6 neighbours, `established: false` drops the replies to the
host's own connections and `loopback: false` what its programs send each other."""

from __future__ import annotations

from pathlib import Path

import pytest

from fwgen.policy.resolve import resolve_profile
from fwgen.profile.portdb import catalogue
from fwgen.review.check import check_policy
from fwgen.targets.render import render
from tests.kernel.lab import Lab

pytestmark = pytest.mark.kernel

TARGETS = ["nftables", "iptables"]
ND = (
    "  - {icmpv6: [nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert]}\n"
    "  - {icmpv6: [mld-listener-query], from: [fe80::/10]}\n"
)


def reaches(lab: Lab, ns: str, address: str, spec: str) -> str:
    """open | blocked, from *ns*: open when one of three tries gets through (the first
    packet to a neighbour not yet resolved may take longer than a probe waits)."""
    found = [lab.probe_from(ns, address, [spec])[spec] for _ in range(3)]
    return "open" if "open" in found else "blocked"


def load(lab: Lab, target: str, path: Path, text: str) -> set[str]:
    """Write the profile, load it into the lab's server, and return its finding codes."""
    path.write_text(text)
    policy = resolve_profile(str(path))
    lab.apply(target, render(policy, target))
    return {f.code for f in check_policy(policy, catalogue())}


@pytest.mark.parametrize("target", TARGETS)
def test_without_neighbour_discovery_ipv6_dies_with_the_neighbour_cache(
    lab: Lab, target: str, tmp_path: Path
) -> None:
    lab.listen(["tcp:22"])
    trusted = lab.clients["trusted"]
    profile = "description: x\ninbound:\n  - {service: ssh}\n"
    for text, works in ((profile, False), (profile + ND, True)):
        codes = load(lab, target, tmp_path / "host.yaml", text)
        assert ("FW016" in codes) == (not works)
        for ns in (lab.server, trusted.ns):
            lab.run(ns, "ip", "-6", "neigh", "flush", "all")
        assert reaches(lab, trusted.ns, trusted.server_ipv4, "tcp:22") == "open"
        expected = "open" if works else "blocked"
        assert reaches(lab, trusted.ns, trusted.server_ipv6, "tcp:22") == expected, text


@pytest.mark.parametrize("target", TARGETS)
def test_established_and_loopback_off_cut_the_host_off(
    lab: Lab, target: str, tmp_path: Path
) -> None:
    trusted = lab.clients["trusted"]
    lab.listen_in(trusted.ns, ["tcp:80"])
    lab.listen(["tcp:3306"])
    base = "description: x\nextends: base\ninbound: [{service: ssh}]\n"
    off = base + "options: {established: false, loopback: false}\n"
    for text, works in ((base, True), (off, False)):
        codes = load(lab, target, tmp_path / "host.yaml", text)
        assert {"FW017", "FW018"} & codes == (set() if works else {"FW017", "FW018"})
        expected = "open" if works else "blocked"
        # the host's own connection out: its replies come back only as "established"
        for address in (trusted.ipv4, trusted.ipv6):
            assert reaches(lab, lab.server, address, "tcp:80") == expected, (address, text)
        # programs on the host talking to each other
        for address in ("127.0.0.1", "::1"):
            assert reaches(lab, lab.server, address, "tcp:3306") == expected, (address, text)
