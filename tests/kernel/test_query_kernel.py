"""`fwgen query` agrees with the kernel: random cells of the kernel matrix (a built-in
profile, a client, a family, a port, inbound to the server or outbound from it), each
answered by `query` and probed through the rendered ruleset loaded in the lab.

One lab per target; each example loads one profile (placeholders set to the `trusted`
client, or to both clients so that only interface groups tell them apart; interface
groups to the server's end of the `trusted` link, as the matrix does) and probes a
handful of cells at once, half of them on ports the profile opens to someone. Accepted
must mean open; dropped or rejected, blocked. A cell a rate limit decides is compared
only while its source is well within the limit's burst (the meters of ufw's rules
outlive a reload). Shrinking is off: a failure names every cell that disagrees."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from fwgen.policy.ir import Policy
from fwgen.policy.resolve import resolve_profile
from fwgen.review.packet import parse_packet
from fwgen.review.query import decide
from fwgen.targets import TARGETS
from fwgen.targets.render import render
from tests.conftest import INTERFACES_TO_SET, NETWORKS_TO_SET
from tests.kernel.conftest import require
from tests.kernel.firewalld_lab import started
from tests.kernel.lab import Lab
from tests.kernel.test_packet_truth import OPEN, REFUSED, SPECS

pytestmark = pytest.mark.kernel

# examples per target, each a profile loaded, and at most this many cells probed in each:
# ufw and firewalld load slowly (firewalld's reload takes seconds), so fewer, larger ones
EXAMPLES = {"nftables": (30, 10), "iptables": (30, 10), "ufw": (6, 20), "firewalld": (3, 24)}
WITHIN_BURST = 4  # probes of one rate-limited cell per lab (every limit here bursts 10)
Cell = tuple[str, str, str, str]  # direction, client, family, spec


@pytest.fixture(scope="module", params=sorted(EXAMPLES))
def target_lab(request: pytest.FixtureRequest) -> Iterator[tuple[str, Lab, Counter[Cell]]]:
    require("nft", "iptables-restore", "ufw", "ipset")
    with Lab() as lab:
        for name in ("trusted", "outside"):
            client = lab.add_client(name)
            lab.listen_in(client.ns, SPECS)  # what the server reaches outbound
        lab.listen(SPECS)
        if request.param == "firewalld":
            started(lab)
        yield request.param, lab, Counter()


def load(lab: Lab, target: str, profile: str, everyone: bool) -> Policy:
    """Load *profile*, its placeholder networks set to the `trusted` client (with
    *everyone*, to both clients: then only its interface groups tell them apart)."""
    trusted, outside = lab.clients["trusted"], lab.clients["outside"]
    members = [trusted.ipv4, trusted.ipv6] + ([outside.ipv4, outside.ipv6] if everyone else [])
    overrides = {name: members for name in NETWORKS_TO_SET[profile]}
    overrides |= {name: [trusted.server_device] for name in INTERFACES_TO_SET.get(profile, [])}
    policy = resolve_profile(profile, overrides)
    if target == "iptables":
        # the coexist mode (containers:) loads its own chains beside what INPUT holds: a
        # host moving to it from a plain load keeps the old rules, so each load starts
        # from empty tables here, as the matrix's fresh labs do
        for tool in ("iptables", "ip6tables"):
            lab.run(lab.server, tool, "-F")
            lab.run(lab.server, tool, "-X")
    lab.apply(target, render(policy, target))
    return policy


def packet_text(lab: Lab, cell: Cell) -> str:
    """The cell as `fwgen query` reads it: addresses, port and the server's interface."""
    direction, name, family, spec = cell
    client = lab.clients[name]
    proto, port = spec.split(":")

    def shown(address: str) -> str:
        return f"[{address}]" if family == "ipv6" else address

    peer = shown(client.ipv4 if family == "ipv4" else client.ipv6)
    server = shown(lab.address(name, family))
    if direction == "in":
        return f"{proto} {peer} -> {server}:{port} on {client.server_device}"
    return f"out {proto} {server} -> {peer}:{port} on {client.server_device}"


def probe(lab: Lab, cells: list[Cell]) -> dict[Cell, str]:
    """open | blocked for every cell, each (direction, client, family) group at once."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for direction, name, family, spec in cells:
        groups.setdefault((direction, name, family), []).append(spec)

    def one(key: tuple[str, str, str]) -> dict[Cell, str]:
        direction, name, family = key
        if direction == "in":
            found = lab.probe(name, family, groups[key])
        else:
            client = lab.clients[name]
            address = client.ipv4 if family == "ipv4" else client.ipv6
            found = lab.probe_from(lab.server, address, groups[key])
        return {(direction, name, family, spec): state for spec, state in found.items()}

    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        return {cell: state for part in pool.map(one, groups) for cell, state in part.items()}


def cells_of(profile: str) -> st.SearchStrategy[Cell]:
    """A cell; its port half the time one the profile opens to someone (where sources,
    interfaces and families decide), else any port of the matrix."""
    opened = sorted(OPEN[profile]) or SPECS
    return st.tuples(
        st.sampled_from(["in", "in", "in", "out"]),
        st.sampled_from(["trusted", "outside"]),
        st.sampled_from(["ipv4", "ipv6"]),
        st.one_of(st.sampled_from(opened), st.sampled_from(SPECS)),
    )


def test_query_agrees_with_the_kernel(target_lab: tuple[str, Lab, Counter[Cell]]) -> None:
    target, lab, probed = target_lab
    profiles = sorted(p for p in OPEN if (p, target) not in REFUSED)

    @settings(
        max_examples=EXAMPLES[target][0],
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: every cell is reported
        suppress_health_check=list(HealthCheck),
    )
    @given(profile=st.sampled_from(profiles), data=st.data())
    def agrees(profile: str, data: st.DataObject) -> None:
        size = EXAMPLES[target][1]
        drawn = data.draw(st.lists(cells_of(profile), min_size=1, max_size=size, unique=True))
        policy = load(lab, target, profile, data.draw(st.booleans(), label="everyone"))
        expected = {}
        for cell in drawn:
            packet = parse_packet(packet_text(lab, cell))
            decision = decide(policy, packet, packet.families[0], frozenset(TARGETS[target].lacks))
            limited = any(
                r.limit is not None and (r.name, r.origin) == (decision.by, decision.origin)
                for r in policy.rules
            )
            if limited:
                probed[cell] += 1
                if probed[cell] > WITHIN_BURST:
                    continue
            expected[cell] = "open" if decision.verdict == "accepted" else "blocked"
        seen = probe(lab, list(expected))
        wrong = [
            f"{packet_text(lab, c)}: query says {expected[c]}, the kernel {seen[c]}"
            for c in expected
            if seen[c] != expected[c]
        ]
        assert not wrong, f"{target}, {profile}:\n" + "\n".join(wrong)

    agrees()
