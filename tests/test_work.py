"""Guards of speed that do not depend on the clock: the work fwgen does, counted.

Timings belong to the benchmark (tests/benchmarks/bench.py); these tests count what a
regression would multiply: how often an address is parsed, how often a file is read,
parsed and validated, and how many steps check and diff take as a profile grows.
"""

from __future__ import annotations

import ipaddress
import math
import socket
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import Any

import pytest
import yaml

import fwgen
from fwgen.build.manifest import plan
from fwgen.policy.ir import Rule
from fwgen.policy.placeholders import policy_warnings
from fwgen.policy.resolve import PROTO_ORDER, resolve_profile
from fwgen.profile.portdb import catalogue
from fwgen.read import yamlsource
from fwgen.read.once import forget
from fwgen.review import netneeds
from fwgen.review.check import check_policy
from fwgen.review.diff import diff_policies
from fwgen.targets.render import render_with_warnings

PACKAGE = str(Path(fwgen.__file__).parent)


@contextmanager
def parsed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Every address text turned into a number, by fwgen's parser (``inet_pton``) or by
    ``ipaddress`` (whose every text parse goes through ``_ip_int_from_string``)."""
    seen: Counter[str] = Counter()
    pton = socket.inet_pton

    def counted_pton(family: int, text: str) -> bytes:
        seen[text] += 1
        return pton(family, text)

    monkeypatch.setattr(socket, "inet_pton", counted_pton)
    for base in (ipaddress._BaseV4, ipaddress._BaseV6):
        original = base.__dict__["_ip_int_from_string"].__func__

        def counted(cls: type, text: str, original: Callable[..., int] = original) -> int:
            seen[text] += 1
            return original(cls, text)

        monkeypatch.setattr(base, "_ip_int_from_string", classmethod(counted))
    yield seen


def _feed(folder: Path, v4: int, v6: int = 0, name: str = "feed") -> Path:
    """A profile admitting ssh from a list of *v4* public IPv4 addresses (none adjacent, so
    nothing merges) and *v6* IPv6 documentation addresses; and http from the IPv6 ones."""
    lines = [f"{11 + (i >> 14)}.{(i >> 6) & 255}.{(i << 2) & 255}.7" for i in range(v4)]
    docs = [f"2001:db8:{i:x}::1" for i in range(v6)]
    (folder / f"{name}.txt").write_text("\n".join(lines) + "\n")
    (folder / f"{name}-docs.txt").write_text("\n".join(docs) + "\n")
    profile = folder / f"{name}.yaml"
    networks = f"networks:\n  feed: [{{file: {name}.txt}}]\n"
    inbound = "inbound:\n  - {service: ssh, from: feed}\n"
    if v6:
        networks += f"  docs: [{{file: {name}-docs.txt}}]\n"
        inbound += "  - {service: http, from: docs}\n"
    profile.write_text(f"description: feed\nextends: base\n{networks}{inbound}")
    return profile


def _render_and_review(profile: Path) -> list[str]:
    """What `fwgen render` and `fwgen check` do with a profile; the warnings."""
    policy = resolve_profile(str(profile))
    passing, refused = netneeds.warnings(policy)
    files, approximations = render_with_warnings(policy, "nftables")
    assert files
    check_policy(policy, catalogue())
    return [*policy_warnings(policy), *passing, *refused, *approximations]


def test_each_address_of_a_list_is_parsed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = _feed(tmp_path, 3000, 2000)
    entries = [
        line
        for name in ("feed.txt", "feed-docs.txt")
        for line in (tmp_path / name).read_text().split()
    ]
    with parsed(monkeypatch) as seen:
        warnings = _render_and_review(profile)
    # the IPv6 list is all documentation addresses: the warning needed every one of them
    assert any("only its documentation addresses" in w for w in warnings), warnings
    assert {seen[e] for e in entries} == {1}, [(e, seen[e]) for e in entries if seen[e] != 1][:5]


def test_parser_calls_grow_with_the_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {}
    for size in (10_000, 100_000):
        profile = _feed(tmp_path, size, name=f"feed{size}")
        with parsed(monkeypatch) as seen:
            _render_and_review(profile)
        calls[size] = sum(seen.values())
        assert calls[size] <= size + 100, (size, calls[size])
    assert 9.5 <= calls[100_000] / calls[10_000] <= 10.5, calls


@contextmanager
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Counter[str]]]:
    """Files read (by real path), YAML texts parsed and profiles validated."""
    counts: dict[str, Counter[str]] = {"read": Counter(), "parsed": Counter()}
    read_regular = yamlsource._read_regular
    compose = yaml.compose

    def counted_read(path: Path, *args: Any) -> bytes:
        counts["read"][str(Path(path).resolve())] += 1
        return read_regular(path, *args)

    def counted_compose(text: str, *args: Any, **kwargs: Any) -> Any:
        counts["parsed"][text] += 1
        return compose(text, *args, **kwargs)

    monkeypatch.setattr(yamlsource, "_read_regular", counted_read)
    monkeypatch.setattr(yaml, "compose", counted_compose)
    yield counts


def _site(folder: Path, hosts: int) -> Path:
    (folder / "web.yaml").write_text(
        "description: site web server\nextends: webserver\n"
        "inbound:\n  - {service: intranet-web, from: admins}\n"
    )
    (folder / "ports.yaml").write_text(
        "- name: intranet-web\n  title: Intranet web\n  ports: [8443/tcp]\n  risk: low\n"
        "  exposure: lan-only\n  category: web\n"
    )
    lines = ["hosts:"]
    for i in range(hosts):
        lines += [
            f"  web{i}:",
            "    profile: web.yaml",
            "    ports: [ports.yaml]",
            f"    set: {{admins: [10.{i}.0.0/24]}}",
            f"    targets: {{nftables: out/web{i}.nft}}",
        ]
    manifest = folder / "fwgen.yaml"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def test_a_build_reads_each_profile_and_port_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _site(tmp_path, 30)
    forget()  # what earlier tests parsed
    with reads(monkeypatch) as counts:
        site = plan(manifest)
    assert len(site.outputs) == 30
    profiles = Path(fwgen.__file__).resolve().parents[2] / "profiles"
    read = {Path(p).name: n for p, n in counts["read"].items()}
    assert read["web.yaml"] == 1 and read["ports.yaml"] == 1, read
    builtins = {p: n for p, n in counts["read"].items() if Path(p).parent == profiles.resolve()}
    assert builtins and set(builtins.values()) == {1}, builtins
    # the manifest, the site profile, its two parents and the port file: each parsed once
    assert sorted(counts["parsed"].values()) == [1] * 5, counts["parsed"].values()


def test_an_edited_profile_is_never_served_from_the_cache(tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    for port in (8001, 8002):
        profile.write_text(
            f"description: p\nextends: base\ninbound:\n  - {{port: {port}/tcp, name: p}}\n"
        )
        policy = resolve_profile(str(profile))
        assert [r.ports[0].start for r in policy.rules if r.proto == "tcp"] == [port]


def steps(action: Callable[[], object]) -> int:
    """Lines run in fwgen's own code by *action* (each pass of a loop counts): a measure of
    work that does not depend on the clock or the machine."""
    count = 0

    def local(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local

    def global_(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code.co_filename.startswith(PACKAGE) else None

    sys.settrace(global_)
    try:
        action()
    finally:
        sys.settrace(None)
    return count


def _many_rules(folder: Path, n: int, shift: int) -> Path:
    """A profile of *n* inbound rules: half of them ssh, each from its own address (rules of
    one name, which diff pairs up), half each on its own port from its own network."""
    rules = []
    for i in range(n):
        address = f"10.{(i + shift) >> 8 & 255}.{(i + shift) & 255}.0/24"
        if i % 2:
            rules.append(f"  - {{service: ssh, from: [{address}]}}")
        else:
            rules.append(f"  - {{port: {2000 + i}/tcp, from: [{address}], name: p{i}}}")
    path = folder / f"many{n}-{shift}.yaml"
    path.write_text("description: many\nextends: base\ninbound:\n" + "\n".join(rules) + "\n")
    return path


@pytest.mark.parametrize("review", ["check", "diff"])
def test_check_and_diff_grow_no_faster_than_n_log_n(tmp_path: Path, review: str) -> None:
    ports = catalogue()
    work = {}
    for n in (1000, 5000):
        old = resolve_profile(str(_many_rules(tmp_path, n, 0)))
        new = resolve_profile(str(_many_rules(tmp_path, n, 1)))  # every address moved
        if review == "check":
            work[n] = steps(lambda old=old: check_policy(old, ports))
        else:
            work[n] = steps(lambda old=old, new=new: diff_policies(old, new, ports))
    bound = 5 * math.log(5000) / math.log(1000)  # n·log n from 1,000 to 5,000 rules
    assert work[5000] / work[1000] <= 1.2 * bound, work


@pytest.mark.parametrize("target", ["nftables", "iptables"])
def test_the_input_chain_does_not_grow_with_the_list(tmp_path: Path, target: str) -> None:
    def input_rules(size: int) -> list[str]:
        policy = resolve_profile(str(_feed(tmp_path, size, name=f"feed{size}")))
        files = fwgen.render(policy, target)
        if target == "nftables":
            chain = files["fwgen.nft"].split("chain input {")[1].split("\n\t}")[0]
            return [line for line in chain.splitlines() if line.strip()]
        return [line for line in files["rules.v4"].splitlines() if line.startswith("-A")]

    small, large = input_rules(100), input_rules(10_000)  # iptables: in an ipset above 16
    assert len(small) == len(large) and len(small) > 5


def test_the_lockout_guard_parses_no_address_of_a_blocklist_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`apply`'s guard asks whether the admin's address is in a deny rule's blocklist: a
    lookup in the runs the list was read into, not every entry parsed once more."""
    from fwgen.host.guard import from_keep, lockouts

    entries = [f"{11 + (i >> 14)}.{(i >> 6) & 255}.{(i << 2) & 255}.7" for i in range(3000)]
    (tmp_path / "bl.txt").write_text("\n".join(entries) + "\n")
    profile = tmp_path / "p.yaml"
    profile.write_text(
        "description: x\nextends: base\nnetworks:\n  abuse: [{file: bl.txt}]\n"
        "inbound:\n  - {service: ssh, from: 10.20.0.0/26}\n  - {from: abuse, action: deny}\n"
    )
    with parsed(monkeypatch) as seen:
        policy = resolve_profile(str(profile))
        found = lockouts(policy, [from_keep("10.20.0.5"), from_keep(entries[-1])])
    assert len(found) == 1 and "the deny rule 'deny'" in found[0], found
    assert {seen[e] for e in entries[:-1]} == {1}  # the last: the --keep address too


def test_resolving_turns_a_rule_into_json_only_to_break_a_tie(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repeated rules are found by a key of their fields, and rules are ordered by their
    JSON only where everything else ties: a build of many hosts no longer serialises each
    rule twice. The order is still the one the whole key gives."""
    dumped: Counter[str] = Counter()
    dump = Rule.json

    def counted(self: Rule, **kwargs: Any) -> str:
        dumped[self.name] += 1
        return dump(self, **kwargs)

    monkeypatch.setattr(Rule, "json", counted)
    policy = resolve_profile("webserver", {"admins": ["10.0.0.0/24"]})
    assert len(policy.rules) > 5
    assert not dumped, dumped  # no two of its rules tie
    profiles = Path(fwgen.__file__).resolve().parents[2] / "profiles"
    tied = tmp_path / "tied.yaml"
    tied.write_text(
        "description: ssh twice from one network, logged once\nextends: base\n"
        "networks:\n  ops: [192.0.2.0/24]\ninbound:\n"
        "  - {service: ssh, from: ops, log: true}\n  - {service: ssh, from: ops, limit: 5/minute}\n"
    )
    for path in [*sorted(profiles.glob("*.yaml")), tied]:
        policy = resolve_profile(str(path))
        for rules in (list(policy.rules), list(policy.denies)):
            whole = sorted(
                rules,
                key=lambda r: (
                    r.direction != "in",
                    PROTO_ORDER[r.proto],
                    r.ports[0].start if r.ports else -1,
                    r.remote or "",
                    r.name,
                    dump(r),
                ),
            )
            assert rules == whole, path.name
    assert dumped == {"ssh": 2}  # the two ssh rules tie: each is dumped once, no other rule


def test_a_rule_is_compared_only_with_the_backdoor_ports_of_its_protocol() -> None:
    ports = catalogue()
    protos = Counter(p.proto for s in ports.backdoors for p in s.ports)
    assert len(ports.backdoors) >= 10 and "esp" not in protos, protos
    everything = (SimpleNamespace(start=1, end=65535),)
    esp = SimpleNamespace(proto="esp", ports=everything)
    assert ports.backdoors_in(esp) == []
    assert steps(lambda: ports.backdoors_in(esp)) <= 10  # no backdoor port looked at (was 499)
    udp = SimpleNamespace(proto="udp", ports=everything)
    found = ports.backdoors_in(udp)
    assert found and all(any(p.proto == "udp" for p in s.ports) for s in found)
    # some steps for each udp port of a backdoor (443 when every backdoor was scanned)
    assert steps(lambda: ports.backdoors_in(udp)) <= 12 * protos["udp"] + 10
