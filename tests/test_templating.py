from __future__ import annotations

import time
from typing import Any

import pytest

from engine.errors import TemplateError
from engine.language.templating import (
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


# limits -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{{ range(100001) | list }}", "a range of 100,001 items (at most 100,000)"),
        ("{{ 10 ** (10 ** 8) }}", "a power of over 4096 bits (10 ** 100000000)"),
        ("{{ 2 ** 5000 }}", "a power of over 4096 bits (2 ** 5000)"),
        (
            "{{ 'x' * 200000000 }}",
            "a repeat ('*') would build 200,000,000 characters or items (at most 8,388,608)",
        ),
        (
            "{{ 100000000 * [0] }}",
            "a repeat ('*') would build 100,000,000 characters or items (at most 8,388,608)",
        ),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "a concatenation ('~') would build 16,777,216 characters or items (at most 8,388,608)",
        ),
        (
            "{% set ns = namespace(s=[0]) %}{% for i in range(64) %}"
            "{% set ns.s = ns.s + ns.s %}{% endfor %}",
            "a concatenation ('+') would build 16,777,216 characters or items (at most 8,388,608)",
        ),
        (
            "{% set ns = namespace(n=3) %}{% for i in range(64) %}"
            "{% set ns.n = ns.n * ns.n %}{% endfor %}",
            "a product of over 4096 bits",
        ),
        (
            "{{ 'x' | center(10 ** 9) }}",
            "the filter center would build 1,000,000,001 characters or items (at most 8,388,608)",
        ),
        (
            "{{ 'x'.rjust(10 ** 9) }}",
            "str.rjust() would build 1,000,000,001 characters or items (at most 8,388,608)",
        ),
        (
            "{{ '%999999999d' % 1 }}",
            "a format ('%') would build 1,000,000,010 characters or items (at most 8,388,608)",
        ),
        (
            "{{ '{:>{w}}'.format(1, w=999999999) }}",
            "str.format() would build 1,000,000,007 characters or items (at most 8,388,608)",
        ),
        (
            "{{ ('x' * 1000000).replace('x', 'yy') * 5 }}",
            "a repeat ('*') would build 10,000,000 characters or items (at most 8,388,608)",
        ),
        (
            "{{ range(100000) | join('x' * 1000) }}",
            "a join would build 100,000,000 characters or items (at most 8,388,608)",
        ),
        (
            "{{ range(100000) | map('string') | map('center', 1000000) | join }}",
            "the render built over 33,554,432 characters or items",
        ),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "the render took over 0.25 s",
        ),
        (
            "{% for i in range(100000) %}{{ range(100000) | sum }}{% endfor %}",
            "the render took over 0.25 s",
        ),
        (
            "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
            "{{ f(40) }}",
            "the render took over 0.25 s",
        ),
        (
            "{% for i in item.many %}{% for j in item.many %}{% endfor %}{% endfor %}",
            "the render took over 0.25 s",
        ),
    ],
)
def test_a_template_past_a_limit_fails_fast_with_a_located_error(source, reason):
    names = {"item": {"many": list(range(50000))}}
    began = time.monotonic()
    with pytest.raises(TemplateError) as caught:
        render(source, names, place=PLACE)

    assert caught.value.message == f"{PLACE}: over a limit at line 1: {reason}"
    assert time.monotonic() - began < 5


def test_a_limit_error_names_the_line_of_the_template_it_came_from():
    source = "first\n{% for i in range(3) %}\n{{ 'x' * 10 ** 9 }}\n{% endfor %}"
    with pytest.raises(TemplateError, match=r"over a limit at line 3: a repeat"):
        render(source, {}, place=PLACE)


@pytest.mark.parametrize(
    ("source", "length"),
    [
        ("{{ range(100000) | list }}", 100_000),
        ("{{ 'x' * 8388608 }}", 8_388_608),
        ("{{ ('ab' ~ 'c') * 1000 }}", 3000),
        ("{{ (2 ** 4095) | string }}", 1233),
        ("{{ 'x' | center(8000000) }}", 8_000_000),
        ("{% for i in range(100000) %}{{ i % 10 }}{% endfor %}", 100_000),
    ],
)
def test_work_within_the_limits_renders(source, length):
    assert len(render(source, {}, place=PLACE)) == length


def test_a_text_output_past_the_size_limit_fails():
    names = {"item": {"text": "x" * 1_000_000}}
    source = "{% for i in range(9) %}{{ item.text }}{% endfor %}"
    with pytest.raises(TemplateError) as caught:
        render(source, names, place=PLACE)

    assert caught.value.message == (
        f"{PLACE}: over a limit: the output would build 9,000,000 characters or items"
        " (at most 8,388,608)"
    )


def test_range_still_behaves_as_a_sequence():
    assert render("{{ range(5)[1:3] | list }}", {}, place=PLACE) == [1, 2]
    assert render("{{ range(5) | length }}", {}, place=PLACE) == 5
    assert render("{{ range(5) | reverse | list }}", {}, place=PLACE) == [4, 3, 2, 1, 0]
    assert render("{{ 3 in range(5) }}", {}, place=PLACE) is True


@pytest.mark.parametrize(
    ("source", "risky"),
    [
        ("{% for i in range(3) %}{{ i }}{% endfor %}", ["range"]),
        ("{{ range(item.n) | join }}", ["range"]),
        ("{{ '-' * item.depth }}", ["repeats"]),
        ("{{ item.n * [0] }}", ["repeats"]),
        ("{{ (item.a ~ '!') * 2 }}", ["repeats"]),
        ("{% for i in range(2) %}{{ 'ab' * i }}{% endfor %}", ["range", "repeats"]),
        ("{{ item.n * 3 }}", []),
        ("{% for x in item.list %}{{ x }}{% endfor %}", []),
    ],
)
def test_inspect_names_the_risks_of_ranges_and_repeats(source, risky):
    usage = inspect(source)
    assert isinstance(usage, Usage)
    found = [word for word in ("range", "repeats") if any(word in risk for risk in usage.risks)]
    assert found == risky


def test_inspecting_a_template_never_computes_its_constants():
    began = time.monotonic()
    usage = inspect("{{ 10 ** (10 ** 8) }}{{ 'x' * 200000000 }}")
    assert isinstance(usage, Usage)
    assert time.monotonic() - began < 5


@pytest.mark.parametrize(
    "source",
    [
        "{{ item.big | default('') }}",
        "{{ item.get('big') }}",
        "{{ item.parts | first }}",
        "{{ item.big }}",
    ],
)
def test_data_a_template_only_hands_on_counts_against_no_limit(source):
    big = "x" * (9 * 2**20)
    names = {"item": {"big": big, "parts": [big]}}
    assert render(source, names, place=PLACE) is big


def test_a_template_rendered_again_sees_only_this_renders_names_beside_the_globals():
    text = "{% set seen = n %}{{ seen }}-{{ range(2) | list | length }}"
    names = {"n": 1}
    assert render(text, names, place=PLACE) == "1-2"
    assert names == {"n": 1}  # a render writes nothing into the names it was given
    assert render(text, {"n": 2}, place=PLACE) == "2-2"
    assert render("{{ range(3) | list }}", {}, place=PLACE) == [0, 1, 2]
    with pytest.raises(TemplateError, match="undefined"):
        render("{{ n }}", {}, place=PLACE)  # nothing kept from the renders before
    assert render("{{ range }}", {"range": 5}, place=PLACE) == 5  # a name shadows a global
