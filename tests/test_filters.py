"""engine.language.filters, through templates as modules use them: base64 both ways, omit, and
the errors that name the template's place and never the value."""

from __future__ import annotations

from typing import Any

import pytest

from engine.errors import TemplateError
from engine.language.templating import FILTERS, Usage, inspect, render

PLACE = "/resources/note/restore/0/request/body"
SECRET = "s3cr3t-Value-never-shown"


@pytest.mark.parametrize(
    ("source", "names", "expected"),
    [
        ("{{ text | b64encode }}", {"text": "café"}, "Y2Fmw6k="),
        ("{{ data | b64encode }}", {"data": b"\xff\x00"}, "/wA="),
        ("{{ '' | b64encode }}", {}, ""),
        ("Basic {{ (user ~ ':' ~ word) | b64encode }}", {"user": "a", "word": "b"}, "Basic YTpi"),
        ("{{ text | b64decode }}", {"text": "Y2Fmw6k="}, "café"),
        ("{{ text | b64encode | b64decode }}", {"text": "line\r\nnext ☃"}, "line\r\nnext ☃"),
    ],
)
def test_base64_filters_encode_text_as_utf8_and_decode_back_to_text(
    source: str, names: dict[str, Any], expected: str
):
    assert render(source, names, place=PLACE) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("not base64!", "the filter b64decode was given text that is not base64"),
        ("Y2Fmw6k", "the filter b64decode was given text that is not base64"),
        ("/wA=", "the filter b64decode decoded bytes that are not UTF-8 text"),
        (7, "the filter b64decode takes base64 text, not int"),
    ],
)
def test_b64decode_of_anything_but_base64_utf8_text_is_an_error_at_the_place(
    value: Any, reason: str
):
    with pytest.raises(TemplateError) as caught:
        render("{{ value | b64decode }}", {"value": value}, place=PLACE)
    assert caught.value.message == f"{PLACE}: failed at line 1: {reason}"


def test_a_filter_error_names_the_line_and_never_the_value():
    source = '{\n  "a": 1,\n  "token": "{{ secret | b64decode }}"\n}'
    with pytest.raises(TemplateError) as caught:
        render(source, {"secret": SECRET}, place=PLACE)
    assert "at line 3" in caught.value.message
    assert SECRET not in caught.value.message


def test_b64encode_refuses_what_is_neither_text_nor_bytes():
    with pytest.raises(TemplateError) as caught:
        render("{{ value | b64encode }}", {"value": {"a": 1}}, place=PLACE)
    assert caught.value.message.endswith("the filter b64encode takes text or bytes, not dict")


RECORD = {"id": "n1", "last_modified": 17, "title": "x", "schema": 3}


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("omit('last_modified')", {"id": "n1", "title": "x", "schema": 3}),
        ("omit(['last_modified', 'schema'])", {"id": "n1", "title": "x"}),
        ("omit('last_modified', 'schema', 'absent')", {"id": "n1", "title": "x"}),
        ("omit([])", RECORD),
    ],
)
def test_omit_leaves_out_the_given_keys_and_keeps_the_record_itself_unchanged(
    call: str, expected: dict[str, Any]
):
    record = dict(RECORD)
    assert render(f"{{{{ record | {call} }}}}", {"record": record}, place=PLACE) == expected
    assert record == RECORD


def test_omit_refuses_a_value_that_is_not_a_mapping():
    with pytest.raises(TemplateError) as caught:
        render("{{ items | omit('a') }}", {"items": ["a"]}, place=PLACE)
    assert caught.value.message.endswith("the filter omit takes a mapping, not list")


def test_the_new_filters_are_known_to_the_checks():
    assert {"b64encode", "b64decode", "omit", "urlquote"} <= FILTERS
    usage = inspect("{{ record | omit('id') | tojson | b64encode }}")
    assert isinstance(usage, Usage)
    assert usage.names == frozenset({"record"})
