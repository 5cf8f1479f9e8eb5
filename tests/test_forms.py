import json
import math
from typing import Any

import pytest

from engine.language.forms import (
    FieldProblem,
    defaults,
    form_problems,
    payload_fields,
    secret_keys,
    validate_values,
)
from engine.language.model import Form, build

SECRET = "S3cr3t-VALUE-xyz"


def field(field_id: str = "f", kind: str = "text", **rules: Any) -> dict[str, Any]:
    return {"id": field_id, "type": kind, "label": field_id.title(), **rules}


def form_of(*form_fields: dict[str, Any], payload: dict[str, Any] | None = None) -> Form:
    """A one-column form; by default each field has the payload key of its id (+ _secret)."""
    if payload is None:
        payload = {
            f["id"] + ("_secret" if f["type"] == "password" else ""): f["id"] for f in form_fields
        }
    return build(Form, {"columns": [{"fields": list(form_fields)}], "payload": payload})


def check(one_field: dict[str, Any], value: Any) -> list[FieldProblem]:
    return validate_values(form_of(one_field, payload={"k": one_field["id"]}), {"k": value})


DROPDOWN_ITEMS = [{"label": "Europe", "value": "eu"}, {"label": "Two", "value": 2}]

ACCEPTED = [
    (field(required=True), "a"),
    (field(kind="password", required=True), "hunter2"),
    (field(minLength=3), "abc"),
    (field(maxLength=3), "abc"),
    (field(pattern="^[a-z]+$"), "abc"),
    (field(pattern="[a-z]+"), "abc"),
    (field(format="url"), "https://example.com"),
    (field(format="url"), "http://user@api.example.com:8080/v1?q=1#top"),
    (field(format="url"), "HTTPS://Example.COM"),
    (field(format="url"), "http://10.0.0.1/"),
    (field(format="url"), "http://[::1]:8443/"),
    (field(format="url"), "http://localhost"),
    (field(format="email"), "a.b+c@mail.example.co.uk"),
    (field(format="email"), "x@example.io"),
    (field(format="hostname"), "example.com"),
    (field(format="hostname"), "localhost"),
    (field(format="hostname"), "a-b.c0.example"),
    (field(format="hostname"), "10.0.0.1"),
    (field(format="hostname"), "2001:db8::1"),
    (field(kind="switch"), True),
    (field(kind="switch"), False),
    (field(kind="number"), 5),
    (field(kind="number"), -1.5),
    (field(kind="number", minimum=1), 1),
    (field(kind="number", maximum=10), 10),
    (field(kind="number", minimum=0.5, maximum=1.5), 1),
    (field(kind="dropdown", items=DROPDOWN_ITEMS), "eu"),
    (field(kind="dropdown", items=DROPDOWN_ITEMS), 2),
    (field(kind="dropdown", items=DROPDOWN_ITEMS), 2.0),
    (field(kind="dropdown", items=[{"label": "On", "value": True}]), True),
]


@pytest.mark.parametrize(("one_field", "value"), ACCEPTED)
def test_a_value_that_meets_every_rule_has_no_problem(one_field, value):
    assert check(one_field, value) == []


REJECTED = [
    (field(), 987654321, "must be text"),
    (field(kind="password"), ["list"], "must be text"),
    (field(kind="password"), {SECRET: 1}, "must be text"),
    (field(minLength=40), SECRET, "must be at least 40 characters"),
    (field(maxLength=5), SECRET, "must be at most 5 characters"),
    (field(maxLength=1), SECRET, "must be at most 1 character"),
    (field(pattern="^[a-z]+$"), SECRET, "does not match the pattern ^[a-z]+$"),
    (field(pattern="[a-z]+"), SECRET.lower() + "!", "does not match the pattern [a-z]+"),
    (field(pattern="[a-z]+"), SECRET.lower() + "\n", "does not match the pattern [a-z]+"),
    (field(format="url"), SECRET, "must be a URL"),
    (field(format="url"), f"ftp://{SECRET}.example", "must be a URL"),
    (field(format="url"), f"https://{SECRET}.example:99999/", "must be a URL"),
    (field(format="url"), f"https://{SECRET} .example/", "must be a URL"),
    (field(format="url"), f"https://[{SECRET}]/", "must be a URL"),
    (field(format="url"), f"https:///{SECRET}", "must be a URL"),
    (field(format="url"), f"https://{SECRET}_x.example/", "must be a URL"),
    (field(format="email"), SECRET, "must be an email address"),
    (field(format="email"), f"{SECRET}@localhost", "must be an email address"),
    (field(format="email"), f"{SECRET}@example.c0m", "must be an email address"),
    (field(format="email"), f"a b@{SECRET}.example", "must be an email address"),
    (field(format="email"), f"{SECRET}..x@example.com", "must be an email address"),
    (field(format="hostname"), f"{SECRET}..example", "must be a hostname or an IP address"),
    (field(format="hostname"), f"-{SECRET}.example", "must be a hostname or an IP address"),
    (field(format="hostname"), f"{SECRET}_x.example", "must be a hostname or an IP address"),
    (field(format="hostname"), f"{SECRET}." + "a" * 64, "must be a hostname or an IP address"),
    (field(format="hostname"), f"{SECRET}." * 20 + "com", "must be a hostname or an IP address"),
    (field(format="hostname"), "999.12.34.56", "must be a hostname or an IP address"),
    (field(kind="switch"), SECRET, "must be true or false"),
    (field(kind="switch"), 987654321, "must be true or false"),
    (field(kind="number"), SECRET, "must be a number"),
    (field(kind="number"), True, "must be a number"),
    (field(kind="number"), math.nan, "must be a number"),
    (field(kind="number"), math.inf, "must be a number"),
    (field(kind="number", minimum=1), -987654.321, "must be a number at least 1"),
    (field(kind="number", maximum=10.5), 987654.321, "must be a number at most 10.5"),
    (field(kind="dropdown", items=DROPDOWN_ITEMS), SECRET, "must be one of: eu, 2"),
    (field(kind="dropdown", items=[{"label": "One", "value": 1}]), True, "must be one of: 1"),
    (field(kind="dropdown", items=[{"label": "On", "value": True}]), 1, "must be one of: true"),
    (field(kind="dropdown", items=[]), SECRET, "cannot be chosen: the form offers no choices"),
    (field(pattern="(unclosed"), SECRET, "cannot be checked: the form's pattern is not a valid"),
]


@pytest.mark.parametrize(("one_field", "value", "predicate"), REJECTED)
def test_a_value_that_breaks_a_rule_is_reported_with_that_rule(one_field, value, predicate):
    [problem] = check(one_field, value)
    assert problem.message.startswith(predicate)


@pytest.mark.parametrize(("one_field", "value", "predicate"), REJECTED)
def test_no_problem_message_contains_the_submitted_value(one_field, value, predicate):
    shown = value if isinstance(value, str) else json.dumps(value)
    for problem in check(one_field, value):
        assert SECRET not in problem.message
        assert shown not in problem.message


def test_a_dropdown_value_must_match_an_item_value_in_type_too():
    [problem] = check(field(kind="dropdown", items=DROPDOWN_ITEMS), "2")
    assert problem.message == "must be one of: eu, 2"


def test_a_problem_names_the_field_by_its_id_and_payload_key():
    form = form_of(field("token", "password", minLength=40), payload={"api_secret": "token"})
    assert validate_values(form, {"api_secret": SECRET}) == [
        FieldProblem("token", "api_secret", "must be at least 40 characters")
    ]


@pytest.mark.parametrize("values", [{}, {"f": None}, {"f": ""}, None])
def test_a_missing_required_field_is_reported_by_its_id(values):
    assert validate_values(form_of(field(required=True)), values) == [
        FieldProblem("f", "f", "is required")
    ]


@pytest.mark.parametrize("values", [{}, {"f": None}, {"f": ""}, None])
def test_an_empty_optional_field_skips_its_other_rules(values):
    optional = field(minLength=3, pattern="[a-z]+", format="email")
    assert validate_values(form_of(optional), values) == []


def test_nothing_submitted_reports_every_required_field_and_no_optional_one():
    form = form_of(
        field("a", required=True),
        field("b"),
        field("c", "password", required=True),
        field("d", "switch", required=True),
    )
    assert [(p.field, p.key) for p in validate_values(form, None)] == [
        ("a", "a"),
        ("c", "c_secret"),
        ("d", "d"),
    ]


def test_false_and_zero_are_values_not_missing():
    form = form_of(field("on", "switch", required=True), field("n", "number", required=True))
    assert validate_values(form, {"on": False, "n": 0}) == []


def test_a_wrong_type_is_reported_once_without_the_other_rules():
    problems = check(field(minLength=3, pattern="[a-z]+", format="url"), 12)
    assert [p.message for p in problems] == ["must be text"]


def test_every_broken_rule_of_a_field_is_reported():
    problems = check(field(maxLength=3, pattern="[0-9]+", format="email"), SECRET)
    assert [p.message for p in problems] == [
        "must be at most 3 characters",
        "does not match the pattern [0-9]+",
        "must be an email address",
    ]


def test_problems_come_in_field_order_across_columns():
    form = build(
        Form,
        {
            "columns": [
                {"fields": [field("b", required=True), field("a", required=True)]},
                {"fields": [field("c", required=True)]},
            ],
            "payload": {"c": "c", "a": "a", "b": "b"},
        },
    )
    assert [p.field for p in validate_values(form, {})] == ["b", "a", "c"]


def test_every_payload_key_of_a_field_is_checked():
    form = form_of(field("host", required=True), payload={"primary": "host", "backup": "host"})
    problems = validate_values(form, {"primary": "x"})
    assert [(p.field, p.key) for p in problems] == [("host", "backup")]


def test_a_literal_in_the_payload_is_not_checked():
    form = form_of(field("f"), payload={"f": "f", "region": "eu", "limit": 5})
    assert validate_values(form, {"region": 123, "limit": None}) == []


def test_a_submitted_key_the_payload_does_not_declare_is_ignored():
    form = form_of(field(required=True))
    assert validate_values(form, {"f": "x", "extra": SECRET, "f_secret": None}) == []


def test_values_are_read_by_payload_key_not_by_field_id():
    form = form_of(field("pw", "password", required=True), payload={"pw_secret": "pw"})
    assert validate_values(form, {"pw_secret": "x"}) == []
    assert [p.key for p in validate_values(form, {"pw": "x"})] == ["pw_secret"]


def test_a_field_that_the_payload_does_not_use_is_not_checked():
    form = form_of(field("shown", required=True), payload={"other": "literal"})
    assert validate_values(form, {}) == []


def test_values_that_are_not_an_object_are_one_problem_without_a_field():
    malformed: Any = [SECRET]  # a request body can hold anything where an object belongs
    assert validate_values(form_of(field()), malformed) == [
        FieldProblem(None, None, "the submitted values must be an object")
    ]


def test_an_invalid_pattern_in_the_form_is_a_problem_not_a_crash():
    [problem] = check(field(pattern="[z-a]"), "abc")
    assert problem.field == "f"
    assert "pattern is not a valid regular expression" in problem.message


TWO_COLUMNS = build(
    Form,
    {
        "columns": [
            {"fields": [field("user"), field("pw", "password")]},
            {"fields": [field("region", "dropdown", items=DROPDOWN_ITEMS, default="eu")]},
        ],
        "payload": {"login": "user", "pw_secret": "pw", "region": "region", "kind": "basic"},
    },
)


def test_fields_lists_every_field_in_column_order():
    assert [f.id for f in TWO_COLUMNS.fields] == ["user", "pw", "region"]


def test_payload_fields_maps_each_key_to_its_field_and_leaves_literals_out():
    assert payload_fields(TWO_COLUMNS) == {"login": "user", "pw_secret": "pw", "region": "region"}


def test_a_non_string_payload_value_is_always_a_literal():
    form = form_of(field("1"), payload={"n": 1, "s": "1"})
    assert payload_fields(form) == {"s": "1"}


def test_secret_keys_are_the_secret_suffixed_keys_and_the_password_keys():
    form = form_of(
        field("pw", "password"),
        field("token"),
        payload={"pw": "pw", "token_secret": "token", "static_secret": "abc", "user": "token"},
    )
    assert secret_keys(form) == {"pw", "token_secret", "static_secret"}


def test_defaults_fill_field_defaults_and_literals_and_leave_other_fields_out():
    assert defaults(TWO_COLUMNS) == {"region": "eu", "kind": "basic"}


def test_defaults_keep_falsy_defaults():
    form = form_of(field("on", "switch", default=False), field("n", "number", default=0))
    assert defaults(form) == {"on": False, "n": 0}


def test_a_consistent_form_has_no_form_problems():
    assert form_problems(TWO_COLUMNS) == []


FORM_PROBLEMS = [
    (
        form_of(field("pw", "password"), payload={"password": "pw"}),
        "/payload/password",
        "payload key 'password' holds password field 'pw': its name must end in _secret",
    ),
    (
        form_of(field("pw", "password"), payload={"a/b~c": "pw"}),
        "/payload/a~1b~0c",
        "payload key 'a/b~c' holds password field 'pw': its name must end in _secret",
    ),
    (
        form_of(field("x"), payload={"k": "literal"}),
        "/columns/0/fields/0/id",
        "field 'x' is not used by the payload",
    ),
    (
        form_of(field(pattern="(unclosed")),
        "/columns/0/fields/0/pattern",
        "field 'f' has a pattern that does not compile",
    ),
    (
        form_of(field(minLength=5, maxLength=3)),
        "/columns/0/fields/0/minLength",
        "field 'f' has minLength 5 above maxLength 3",
    ),
    (
        form_of(field(kind="number", minimum=2.5, maximum=1)),
        "/columns/0/fields/0/minimum",
        "field 'f' has minimum 2.5 above maximum 1",
    ),
    (
        form_of(field(kind="dropdown")),
        "/columns/0/fields/0/type",
        "dropdown 'f' has no items",
    ),
    (
        form_of(field(kind="dropdown", items=[])),
        "/columns/0/fields/0/items",
        "dropdown 'f' has no items",
    ),
    (
        form_of(field(maxLength=2, default="abc")),
        "/columns/0/fields/0/default",
        "the default of field 'f' must be at most 2 characters",
    ),
    (
        form_of(field(pattern="[a-z]+", default="ABC")),
        "/columns/0/fields/0/default",
        "the default of field 'f' does not match the pattern [a-z]+",
    ),
    (
        form_of(field(format="url", default="example.com")),
        "/columns/0/fields/0/default",
        "the default of field 'f' must be a URL",
    ),
    (
        form_of(field(kind="number", maximum=3, default=4)),
        "/columns/0/fields/0/default",
        "the default of field 'f' must be a number at most 3",
    ),
    (
        form_of(field(kind="dropdown", items=DROPDOWN_ITEMS, default="us")),
        "/columns/0/fields/0/default",
        "the default of field 'f' must be one of: eu, 2",
    ),
    (
        form_of(field(kind="switch", default="yes")),
        "/columns/0/fields/0/default",
        "the default of field 'f' must be true or false",
    ),
]


@pytest.mark.parametrize(("form", "pointer", "message"), FORM_PROBLEMS)
def test_an_author_mistake_is_a_form_problem_at_its_pointer(form, pointer, message):
    [(at, text)] = form_problems(form)
    assert at == pointer
    assert message in text


def test_form_problems_point_into_the_right_column_and_field():
    columns = [{"fields": [field("a")]}, {"fields": [field("b"), field("c")]}]
    form = build(Form, {"columns": columns, "payload": {"a": "a", "b": "b"}})
    assert form_problems(form) == [
        ("/columns/1/fields/1/id", "field 'c' is not used by the payload")
    ]


def test_an_invalid_pattern_with_a_default_is_reported_once_at_the_pattern():
    form = form_of(field(pattern="[z-a]", default="abc"))
    assert [at for at, _ in form_problems(form)] == ["/columns/0/fields/0/pattern"]


def test_an_empty_default_is_not_checked_against_the_rules():
    assert form_problems(form_of(field(required=True, minLength=3, default=""))) == []


def test_form_problems_list_fields_first_and_the_payload_last():
    form = form_of(field("pw", "password"), field("unused"), payload={"pw": "pw"})
    assert [at for at, _ in form_problems(form)] == ["/columns/0/fields/1/id", "/payload/pw"]
