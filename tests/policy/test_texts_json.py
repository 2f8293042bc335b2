"""The admits digest encodes address lists by a join: the same text as json.dumps, for
any texts (those a join cannot encode fall back to json.dumps)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from fwgen.policy.ir import texts_json


@given(st.lists(st.text()) | st.none())
def test_the_same_text_as_json_dumps_for_any_texts(texts: list[str] | None) -> None:
    assert texts_json(texts) == json.dumps(texts)


@given(st.lists(st.sampled_from(["1.2.3.4", "10.0.0.0/8", "2001:db8::/32", "::ffff:1.2.3.4"])))
def test_the_same_text_for_addresses(texts: list[str]) -> None:
    assert texts_json(texts) == json.dumps(texts)


def test_texts_json_needs_escaping_in_each_case() -> None:
    tricky = ['a"b', "a\\b", "é", "\x7f", "\n", '", "', '"', ""]
    for text in tricky:
        for texts in ([text], ["1.2.3.4", text], [text, "::1"]):
            assert texts_json(texts) == json.dumps(texts), texts
    assert texts_json(["1.2.3.4", "::1"]) == '["1.2.3.4", "::1"]'
    assert texts_json([]) == "[]"
    assert texts_json(None) == "null"
