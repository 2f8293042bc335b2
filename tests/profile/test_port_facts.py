"""The port database against the reference documents it was built from, fact by fact.

tests/data/port-facts.yaml lists every port the five documents name, with each
document's advice as written; every fact must resolve to a catalogue entry at least
as restrictive, or be a listed exception with its reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fwgen.errors import FwgenError
from fwgen.policy.ir import Rule
from fwgen.policy.resolve import resolve_profile
from fwgen.profile.portdb import Catalogue, catalogue
from fwgen.profile.portquery import DOCUMENTS, split_source
from fwgen.profile.services import Service
from fwgen.targets.render import refuse_unacknowledged_risks
from tests.conftest import REPO

FACTS_FILE = REPO / "tests" / "data" / "port-facts.yaml"
EXPOSURE = {"public": 0, "lan-only": 1, "never": 2}
RISK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
Fact = dict[str, Any]


def load() -> dict[str, Any]:
    return dict(yaml.safe_load(FACTS_FILE.read_text(encoding="utf-8")))


DATA = load()
FACTS: list[Fact] = DATA["facts"]
EXCEPTIONS: list[Fact] = DATA["exceptions"]


def span_of(fact: Fact) -> range:
    first, _, last = str(fact["port"]).partition("-")
    return range(int(first), int(last or first) + 1)


def key(fact: Fact) -> tuple[str, str, str]:
    return str(fact["port"]), fact["proto"], fact["doc"]


def why_not(service: Service, fact: Fact) -> str:
    """What keeps *service* from standing for *fact* ("" when nothing does)."""
    document = DATA["documents"][fact["doc"]]
    wrong = []
    if EXPOSURE[service.exposure] < EXPOSURE[fact["exposure"]]:
        wrong.append(f"exposure {service.exposure} < {fact['exposure']}")
    if fact["exposure"] == "never" and service.category != "malware":
        wrong.append("a never fact needs a malware entry")
    if "risk" in fact and RISK[service.risk] < RISK[fact["risk"]]:
        wrong.append(f"risk {service.risk} < {fact['risk']}")
    if "alternative" in fact and service.alternative != fact["alternative"]:
        wrong.append(f"alternative {service.alternative} != {fact['alternative']}")
    if document not in {split_source(s)[0] for s in service.sources}:
        wrong.append(f"sources do not name {document}")
    return ", ".join(wrong)


def shortfall(fact: Fact, cat: Catalogue) -> str | None:
    """None when every port of the fact has an entry naming it that follows the document's
    advice; otherwise what is missing, entry by entry. A broad range that holds a port
    without naming it (RTP's 10000-20000/udp) does not count."""
    for port in span_of(fact):
        found = cat.named_at(port, port, fact["proto"])
        if not found:
            return f"no entry names {port}/{fact['proto']}"
        reasons = {s.name: why_not(s, fact) for s in found}
        if all(reasons.values()):
            return f"{port}/{fact['proto']}: " + "; ".join(f"{n}: {r}" for n, r in reasons.items())
    return None


def unmet(cat: Catalogue) -> tuple[list[str], list[str]]:
    """Facts the catalogue does not follow and are not exceptions; exceptions no longer needed."""
    excepted = {key(e) for e in EXCEPTIONS}
    missing, stale = [], []
    for fact in FACTS:
        gap = shortfall(fact, cat)
        if gap and key(fact) not in excepted:
            missing.append(
                f"{fact['port']}/{fact['proto']} ({fact['doc']}, {fact['says']!r}): {gap}"
            )
        if not gap and key(fact) in excepted:
            stale.append(f"{fact['port']}/{fact['proto']} ({fact['doc']}) is followed now")
    return missing, stale


# ------------------------------------------------------------------ the file itself


def test_the_facts_file_is_well_formed() -> None:
    assert set(DATA) == {"documents", "facts", "exceptions"}
    # firewalld's definitions are compared whole, by tests/profile/test_firewalld_services.py
    assert set(DATA["documents"].values()) == set(DOCUMENTS) - {"firewalld"}
    for fact in FACTS:
        assert set(fact) <= {
            "port",
            "proto",
            "stated",
            "doc",
            "says",
            "exposure",
            "risk",
            "alternative",
        }, fact
        assert fact["doc"] in DATA["documents"], fact
        assert fact["proto"] in ("tcp", "udp"), fact
        assert fact["exposure"] in EXPOSURE, fact
        assert fact.get("risk", "low") in RISK, fact
        assert fact["says"], fact
        assert 1 <= span_of(fact).start <= span_of(fact).stop - 1 <= 65535, fact
    assert len({key(f) for f in FACTS}) == len(FACTS), "a fact is listed twice"
    # every document contributes; the count pins the extraction
    assert {f["doc"] for f in FACTS} == set(DATA["documents"])
    assert len(FACTS) == 269


def test_exceptions_name_a_fact_and_say_why() -> None:
    facts = {key(f) for f in FACTS}
    for exception in EXCEPTIONS:
        assert key(exception) in facts, exception
        assert len(exception.get("reason", "")) > 20, exception


# ------------------------------------------------------------------ coverage


def test_every_fact_resolves_to_an_entry_following_its_advice() -> None:
    missing, stale = unmet(catalogue())
    assert missing == []
    assert stale == [], "remove exceptions the catalogue now follows"


@pytest.mark.parametrize(
    ("removed", "fact"),
    [
        ("bagle", "8866/tcp"),
        ("netbus-pro", "20123/tcp"),
        ("tcpmux", "1/tcp"),
        ("http-alt", "8080/tcp"),
        ("steam-1725", "1725/udp"),
        ("socks-backdoors", "1080/tcp"),
    ],
)
def test_the_coverage_check_fails_when_an_entry_is_removed(removed: str, fact: str) -> None:
    cat = catalogue()
    without = Catalogue([s for s in cat.services if s.name != removed])
    missing, _ = unmet(without)
    assert any(m.startswith(f"{fact} ") for m in missing), missing


def test_the_coverage_check_fails_when_an_entry_is_weakened() -> None:
    cat = catalogue()
    weaker = [
        s.model_copy(update={"exposure": "public"}) if s.name == "whois" else s
        for s in cat.services
    ]
    missing, _ = unmet(Catalogue(weaker))
    assert [m.split(" ")[0] for m in missing] == ["43/tcp"]
    assert "exposure public < lan-only" in missing[0]


# ------------------------------------------------------------------ backdoors are refused


NEVER = sorted(
    {(port, f["proto"]) for f in FACTS if f["exposure"] == "never" for port in span_of(f)}
)


def test_every_backdoor_port_the_documents_name_is_refused_at_render(tmp_path: Path) -> None:
    assert len(NEVER) == 18
    lines = [f"  - {{port: {port}/{proto}, name: p{port}{proto}}}" for port, proto in NEVER]
    profile = tmp_path / "p.yaml"
    profile.write_text("description: x\ninbound:\n" + "\n".join(lines) + "\n")
    policy = resolve_profile(str(profile))
    opened = {(r.ports[0].start, r.proto): r for r in policy.rules if r.name.startswith("p")}
    assert set(opened) == set(NEVER)
    assert all(_risky(rule) for rule in opened.values())
    with pytest.raises(FwgenError) as refused:
        refuse_unacknowledged_risks(policy)
    assert str(refused.value).count("a known backdoor port") == len(NEVER)


def _risky(rule: Rule) -> bool:
    return bool(rule.risky) and not rule.acknowledged
