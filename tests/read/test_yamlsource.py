from __future__ import annotations

import pytest

from fwgen.errors import ProfileError
from fwgen.read.yamlsource import first_unsafe, parse


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


@pytest.mark.parametrize("code", [*range(0x80), 0x85, 0xA0, 0x2028, 0x202E, 0xFEFF, 0x1F600])
def test_first_unsafe_finds_every_character_that_is_not_printable_tab_or_newline(
    code: int,
) -> None:
    """Its shortcut for ASCII text (what is left once every safe byte is deleted) and
    its search agree: the same answer, at the same place, for every ASCII character."""
    char = chr(code)
    safe = char in "\t\n" or char.isprintable()
    for text in (f"ab{char}", f"ab{char}cd\n" * 3, "x" * 1000 + char):
        assert first_unsafe(text) == (None if safe else text.index(char))
