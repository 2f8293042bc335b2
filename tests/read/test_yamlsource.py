from __future__ import annotations

import pytest

from fwgen.errors import ProfileError
from fwgen.read.yamlsource import parse


def test_lines_are_remembered_for_keys_and_items() -> None:
    doc = parse("a: 1\nb:\n  - x\n  - y: 2\n", "f.yaml")
    assert doc.data == {"a": 1, "b": ["x", {"y": 2}]}
    assert doc.line(("a",)) == 1
    assert doc.line(("b", 1)) == 4
    assert doc.line(("b", 1, "y")) == 4
    assert doc.line(("b", 7, "nope")) == 2  # nearest enclosing value


def test_duplicate_keys_are_an_error_naming_both_lines() -> None:
    with pytest.raises(ProfileError) as err:
        parse("a: 1\nb: 2\na: 3\n", "f.yaml")
    assert str(err.value) == "f.yaml:3: duplicate key 'a' (first given on line 1)"


def test_aliases_are_refused_so_alias_bombs_cannot_expand() -> None:
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nd: [*c, *c]\n"
    with pytest.raises(ProfileError, match="aliases are not supported"):
        parse(bomb, "f.yaml")


def test_tabs_get_a_message_about_indentation() -> None:
    with pytest.raises(ProfileError) as err:
        parse("a:\n\t- b\n", "f.yaml")
    assert "f.yaml:2:" in str(err.value)
    assert "tab" in str(err.value)
