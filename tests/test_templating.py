from __future__ import annotations

from typing import Any

import pytest

from engine.errors import TemplateError
from engine.templating import (
    FILTERS,
    TESTS,
    SyntaxProblem,
    Usage,
    inspect,
    is_template,
    render,
    render_tree,
)

PLACE = "/resources/project/resource/name"


@pytest.mark.parametrize(
    ("source", "names", "expected"),
    [
        ("{{ n }}", {"n": 3}, 3),
        ("{{ flag }}", {"flag": False}, False),
        ("{{ item.tags }}", {"item": {"tags": ["a", "b"]}}, ["a", "b"]),
        ("{{ item }}", {"item": {"a": None}}, {"a": None}),
        ("{{ item.gone }}", {"item": {"gone": None}}, None),
        ("{{ n + 1 }}", {"n": 1}, 2),
        ("  {{ n }}", {"n": 3}, "  3"),
        ("{{ a }}{{ b }}", {"a": 1, "b": 2}, "12"),
        ("id-{{ n }}", {"n": 7}, "id-7"),
        ("{% if n %}yes{% endif %}", {"n": 1}, "yes"),
        ("no template here", {}, "no template here"),
    ],
)
def test_one_expression_keeps_its_native_type_and_anything_else_renders_text(
    source, names, expected
):
    assert render(source, names, place=PLACE) == expected


@pytest.mark.parametrize(
    ("source", "names", "reason"),
    [
        ("{{ nope }}", {}, "undefined: 'nope' is undefined"),
        ("a {{ nope }} b", {}, "undefined: 'nope' is undefined"),
        ("{{ item.missing }}", {"item": {}}, "undefined: 'dict object' has no attribute"),
        ("{{ [item.missing] }}", {"item": {}}, "undefined: 'dict object' has no attribute"),
        ("{{ {'a': [1, item.x]} }}", {"item": {}}, "undefined: 'dict object' has no attribute"),
        ("{{ dict(item, id=item.x) }}", {"item": {}}, "undefined: 'dict object' has no attribute"),
        ("{{ 1 / 0 }}", {}, "failed: ZeroDivisionError"),
    ],
)
def test_a_failing_template_raises_a_template_error_naming_its_place(source, names, reason):
    with pytest.raises(TemplateError) as caught:
        render(source, names, place=PLACE)
    assert caught.value.place == PLACE
    assert caught.value.message.startswith(f"{PLACE}: {reason}")


@pytest.mark.parametrize(
    "source",
    [
        "{{ item.__class__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ item.__class__ }} as text",
        "{{ {'k': item.__class__} }}",
        "{{ fn.__globals__ }}",
        "{{ item.pop('a') }}",
    ],
)
def test_the_sandbox_refuses_attribute_escapes_and_mutation(source):
    names: dict[str, Any] = {"item": {"a": 1}, "fn": render}
    with pytest.raises(TemplateError, match="not allowed in the sandbox"):
        render(source, names, place=PLACE)
    assert names["item"] == {"a": 1}


def test_urlquote_quotes_every_reserved_character_including_the_slash():
    rendered = render("/b/{{ v | urlquote }}", {"v": "a b/c?d=é&"}, place=PLACE)
    assert rendered == "/b/a%20b%2Fc%3Fd%3D%C3%A9%26"
    assert render("{{ 5 | urlquote }}", {}, place=PLACE) == "5"


def test_render_tree_renders_leaves_keeps_keys_and_names_the_failing_leaf():
    tree = {"{{ k }}": ["{{ n }}", "n={{ n }}", 4], "flag": True}
    assert render_tree(tree, {"n": 1}, place="/body") == {"{{ k }}": [1, "n=1", 4], "flag": True}
    with pytest.raises(TemplateError) as caught:
        render_tree({"a": ["ok", "{{ nope }}"]}, {}, place="/body")
    assert caught.value.place == "/body/a/1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("{{ x }}", True), ("{% if x %}{% endif %}", True), ("{# note #}", True), ("a { b }", False)],
)
def test_is_template_looks_for_jinja_markers(value, expected):
    assert is_template(value) is expected


@pytest.mark.parametrize(
    ("source", "names", "attributes"),
    [
        ("{{ settings.token }}", {"settings"}, {("settings", "token")}),
        ("{{ ctx['bucket'] }}/{{ item.id }}", {"ctx", "item"}, {("ctx", "bucket"), ("item", "id")}),
        (
            "{% for t in item.tags %}{{ t.name }}{% endfor %}",
            {"item"},
            {("item", "tags"), ("t", "name")},
        ),
        ("{% set x = 1 %}{{ x }}", set(), set()),
        ("{{ item.a.b }}", {"item"}, {("item", "a")}),
        ("{{ ctx[key] }}", {"ctx", "key"}, set()),
    ],
)
def test_inspect_lists_free_names_and_the_lookups_made_directly_on_a_name(
    source, names, attributes
):
    usage = inspect(source)
    assert isinstance(usage, Usage)
    assert usage.names == names
    assert set(usage.attributes) == attributes


def test_inspect_lists_the_filters_and_tests_a_template_calls_even_unknown_ones():
    usage = inspect("{{ item.id | urlqoute | upper }}{% if item is odd_thing %}{{ x }}{% endif %}")
    assert isinstance(usage, Usage)
    assert usage.names == {"item", "x"}
    assert usage.filters == {"urlqoute", "upper"}
    assert usage.tests == {"odd_thing"}
    assert "urlquote" in FILTERS
    assert "urlqoute" not in FILTERS
    assert "odd_thing" not in TESTS


@pytest.mark.parametrize(
    ("source", "line", "message"),
    [
        ("{{ item.name }", 1, "unexpected '}'"),
        ("line one\n{% if x %}", 2, "Unexpected end of template"),
        ("{{ }}", 1, "Expected an expression"),
    ],
)
def test_inspect_reports_a_syntax_error_with_its_line_in_the_template(source, line, message):
    problem = inspect(source)
    assert isinstance(problem, SyntaxProblem)
    assert problem.line == line
    assert problem.message.startswith(message)
