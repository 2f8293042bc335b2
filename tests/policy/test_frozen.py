"""The Policy's frozen classes: fields, defaults, immutability, copies and their JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fwgen.policy.ir import AddressSet, Defaults, Limit, Policy, PortRange, Rule
from fwgen.policy.resolve import resolve_profile
from fwgen.profile.load import builtin_profiles


def test_fields_are_keyword_only_with_defaults_and_checked() -> None:
    limit = Limit(rate=5, unit="second", burst=10)
    assert (limit.rate, limit.unit, limit.burst) == (5, "second", 10)
    assert Defaults() == Defaults(inbound="drop", outbound="accept", forward="drop")
    with pytest.raises(TypeError, match="missing field 'burst'"):
        Limit(rate=5, unit="second")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"unknown fields \['brust'\]"):
        Limit(rate=5, unit="second", burst=1, brust=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Limit(5, "second", 10)  # type: ignore[call-arg]


def test_objects_are_frozen_equal_by_value_and_hashable() -> None:
    one = PortRange(start=80, end=80)
    with pytest.raises(AttributeError, match="frozen"):
        one.start = 81  # type: ignore[misc]
    with pytest.raises(AttributeError, match="frozen"):
        del one.start
    assert one == PortRange(start=80, end=80)
    assert one != PortRange(start=80, end=81)
    assert len({one, PortRange(start=80, end=80)}) == 1
    # same values, another class: not equal
    assert Defaults(outbound="accept") != Limit(rate=1, unit="second", burst=1)


def test_a_copy_changes_only_what_it_is_given() -> None:
    rule = resolve_profile("webserver", {"admins": ["10.0.0.0/24"]}).rules[0]
    copy = rule.replace(log=True, comment="changed")
    assert (copy.log, copy.comment) == (True, "changed")
    assert copy.replace(log=rule.log, comment=rule.comment) == rule
    with pytest.raises(TypeError, match="unknown fields"):
        rule.replace(lgo=True)


def test_a_copy_keeps_a_cached_value_only_while_what_it_is_made_of_is_unchanged() -> None:
    policy = resolve_profile("webserver", {"admins": ["10.0.0.0/24"]})
    admins = policy.address_set("admins")
    parsed = admins.by_version
    assert admins.replace(name="ops").by_version is parsed  # renamed: not parsed again
    other = admins.replace(ipv4=("192.0.2.0/24",), ipv6=())
    assert other.by_version is not parsed
    assert other.runs("ipv4").texts() == ("192.0.2.0/24",)
    assert policy.sets_by_name["admins"] is admins
    renamed = policy.replace(sets=tuple(s.replace(name=f"n_{s.name}") for s in policy.sets))
    assert "admins" not in renamed.sets_by_name and "n_admins" in renamed.sets_by_name


def test_the_json_leaves_out_excluded_fields_and_a_rule_s_defaults() -> None:
    written = AddressSet(name="a", ipv4=("10.0.0.0/8",), origin="p:1", written=("a",))
    assert json.loads(written.json()) == {
        "name": "a",
        "ipv4": ["10.0.0.0/8"],
        "ipv6": [],
        "origin": "p:1",
    }
    rule = Rule(direction="in", proto="tcp", families=("ipv4",), name="x", origin="p:2")
    shown = json.loads(rule.json())
    assert "action" not in shown and "connlimit" not in shown and "on" not in shown
    assert list(shown)[:3] == ["direction", "proto", "ports"]  # in the order written
    denied = rule.replace(action="reject", connlimit=3)
    assert json.loads(denied.json())["action"] == "reject"
    assert json.loads(denied.json())["connlimit"] == 3
    text = Rule(
        direction="in", proto="tcp", families=("ipv4",), name="é\u2028\n", origin="p:3"
    ).json()
    assert '"name":"é\u2028\\n"' in text  # compact, UTF-8 kept, controls escaped


def test_a_policy_holds_tuples_where_its_fields_say_tuples() -> None:
    """Nothing validates the Policy, so every maker must hand it tuples (a list would make
    it unhashable and unequal to its own copy): checked over every built-in profile."""

    def walk(value: object) -> None:
        if isinstance(value, (Policy, Rule, AddressSet, PortRange, Limit, Defaults)):
            for name in value.FIELDS:
                walk(getattr(value, name))
        assert not isinstance(value, (list, dict, set)), value
        if isinstance(value, tuple):
            for item in value:
                walk(item)

    for name in builtin_profiles():
        policy = resolve_profile(name)
        walk(policy)
        assert hash(policy) == hash(policy.replace())


def _mutable_fields(value: object, where: str) -> list[str]:
    from fwgen.policy.frozen import Frozen

    if isinstance(value, (list, dict, set)):
        return [where]
    if isinstance(value, Frozen):
        return [
            found
            for name in value.FIELDS
            for found in _mutable_fields(getattr(value, name), f"{where}.{name}")
        ]
    if isinstance(value, tuple):
        return [f for i, v in enumerate(value) for f in _mutable_fields(v, f"{where}[{i}]")]
    return []


@pytest.mark.parametrize("name", [*builtin_profiles(), "every-feature.yaml", "denies.yaml"])
def test_a_resolved_policy_holds_tuples_never_lists(name: str) -> None:
    """pydantic turned a list into a tuple; `Frozen` checks nothing. A list in a Policy
    makes it unhashable, unequal to the same policy with tuples, and (`denies=[]` is not
    OPTIONAL's `()`) changes its digest: nothing that makes a Policy may pass one."""
    good = Path(__file__).parents[1] / "data" / "good"
    policy = resolve_profile(name if name in builtin_profiles() else str(good / name))
    assert _mutable_fields(policy, "policy") == []
    assert hash(policy) == hash(policy.replace())
