from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema.validators import Draft202012Validator

from engine.language.document import parse
from engine.language.schema import (
    Issue,
    check_definition,
    issues,
    module_schema,
    schema_path,
    suggest,
    template_places,
)

ROOT = Path(__file__).resolve().parents[1]
KINTO = yaml.safe_load((ROOT / "modules" / "kinto" / "module.yaml").read_text(encoding="utf-8"))

MINIMAL = """\
module: {id: demo, name: Demo, version: 1.0.0}
capabilities: {}
connection:
  baseUrl: https://api.example.com
resources:
  project:
    list:
      request: {path: /projects}
    resource:
      name: "{{ item.name }}"
"""


def shape_problems(text: str) -> list[str]:
    document, problems = parse(text, "m.yaml")
    assert problems == []
    return [str(problem).removeprefix("m.yaml:") for problem in sorted(check_definition(document))]


def test_the_published_schema_is_a_valid_draft_2020_12_schema():
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema == module_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_a_minimal_definition_and_the_kinto_module_have_no_shape_problems():
    assert shape_problems(MINIMAL) == []
    assert issues(module_schema(), KINTO) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("connection:\n", "conection:\n"),
            [
                "1:1: /: missing required key 'connection'",
                "3:1: /conection: unknown key 'conection'; did you mean 'connection'?",
            ],
        ),
        (
            ("version: 1.0.0}", "version: 1.0.0, vendr: X}"),
            ["1:48: /module/vendr: unknown key 'vendr'; did you mean 'vendor'?"],
        ),
        (
            ("{id: demo, name: Demo, version: 1.0.0}", "{name: Demo}"),
            [
                "1:1: /module: missing required key 'id'",
                "1:1: /module: missing required key 'version'",
            ],
        ),
        (
            ("capabilities: {}", "capabilities: {features: [EXPORTS]}"),
            [
                "2:27: /capabilities/features/0: 'EXPORTS' is not one of: REMOTE_STORAGE_ONLY, "
                "CROSS_SOURCE_RESTORE, ANOMALY_DETECTION, BULK_OPERATIONS, EXPORT; "
                "did you mean 'EXPORT'?"
            ],
        ),
        (
            ("capabilities: {}", "capabilities: []"),
            ["2:15: /capabilities: expected a mapping, got a list"],
        ),
        (
            ("  project:\n", "  My-Project:\n"),
            [
                "6:3: /resources/My-Project: 'My-Project' is not a valid name "
                "(expected a lowercase letter, then letters, digits or underscores)"
            ],
        ),
        (
            ("version: 1.0.0", "version: v1"),
            ["1:41: /module/version: 'v1' is invalid: expected a semantic version such as 1.0.0"],
        ),
        (
            ("      request: {path: /projects}\n", "      request: {path: /p, method: get}\n"),
            [
                "8:35: /resources/project/list/request/method: 'get' is invalid: "
                "expected an HTTP method in upper case, such as GET or PROPFIND"
            ],
        ),
        (
            ("capabilities: {}\n", "capabilities: {}\nhooks: {before: x}\n"),
            ["3:9: /hooks/before: unknown key 'before'; did you mean 'beforeTask'?"],
        ),
        (
            (
                "      request: {path: /projects}\n",
                "      request: {path: /p}\n      pagination: {kind: page, sizeParam: n}\n",
            ),
            ["9:7: /resources/project/list/pagination: 'sizeParam' needs 'size' beside it"],
        ),
        (
            ("resources:\n  project:", "resources: {}\nunused:\n  project:"),
            [
                "5:12: /resources: needs at least 1 entry(ies)",
                "6:1: /unused: unknown key 'unused'",
            ],
        ),
    ],
)
def test_each_schema_error_is_translated_into_a_short_located_message(change, expected):
    old, new = change
    assert old in MINIMAL
    assert shape_problems(MINIMAL.replace(old, new)) == expected


def test_a_discriminated_kind_is_checked_against_its_own_branch_only():
    text = MINIMAL.replace(
        "  baseUrl: https://api.example.com\n",
        "  baseUrl: https://api.example.com\n  auth: {kind: basic, username: u, pasword: p}\n",
    )
    assert shape_problems(text) == [
        "5:3: /connection/auth: missing required key 'password'",
        "5:36: /connection/auth/pasword: unknown key 'pasword'; did you mean 'password'?",
    ]


def test_issues_translate_any_schema_and_pass_untranslated_keywords_through_verbatim():
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 2}, "s": {"maxLength": 1}},
        "not": {"required": ["x"]},
    }
    found = issues(schema, {"n": 1, "s": "ab", "x": {"a": 1}})
    assert Issue("/n", "1 is less than the minimum 2") in found
    assert Issue("/s", "'ab' is too long (at most 1 characters)") in found
    assert any(issue.pointer == "" and "{'a': 1}" in issue.message for issue in found)


def test_a_key_pattern_without_words_for_it_names_the_pattern():
    schema = {"type": "object", "propertyNames": {"pattern": "^[a-z]+$"}}
    assert issues(schema, {"A": 1}) == [
        Issue("/A", "'A' is not a valid name (expected a match for ^[a-z]+$)", at_key=True)
    ]


@pytest.mark.parametrize(
    ("word", "candidates", "hint"),
    [
        ("pasword", ["password", "username"], "; did you mean 'password'?"),
        ("zzz", ["password"], ""),
        ("x", [], ""),
    ],
)
def test_suggest_offers_the_closest_candidate_or_nothing(word, candidates, hint):
    assert suggest(word, candidates) == hint


def names_by_pointer(data: Any) -> dict[str, tuple[str, ...]]:
    return {place.pointer: place.names for place in template_places(data)}


@pytest.mark.parametrize(
    ("pointer", "names"),
    [
        ("/connection/baseUrl", ("settings", "platform")),
        ("/connection/auth/2/password", ("settings", "platform")),
        ("/connection/auth/0/when", ("settings", "platform")),
        ("/connection/headers/Accept", ("settings", "platform")),
        ("/auth/check/request/path", ("settings",)),
        ("/resources/collection/list/request/path", ("settings", "ctx")),
        ("/resources/collection/resource/id", ("ctx", "item")),
        ("/resources/group/resource/labels/0/value", ("ctx", "item")),
        ("/resources/bucket/ctx/bucket", ("ctx", "item")),
    ],
)
def test_template_places_give_each_place_the_names_the_schema_lists(pointer, names):
    assert names_by_pointer(KINTO)[pointer] == names


def test_a_list_request_a_filter_and_a_resource_mapping_provide_different_names():
    data = yaml.safe_load(MINIMAL)
    listing = data["resources"]["project"]["list"]
    listing["request"]["query"] = {"q": "{{ ctx.x }}"}
    listing["request"]["body"] = {"deep": ["{{ ctx.y }}"]}
    listing["filter"] = "{{ item.open }}"
    found = names_by_pointer(data)
    assert found["/resources/project/list/request/query/q"] == ("settings", "ctx")
    assert found["/resources/project/list/request/body/deep/0"] == ("settings", "ctx")
    assert found["/resources/project/list/filter"] == ("ctx", "item")
    assert found["/resources/project/resource/name"] == ("ctx", "item")


def test_strings_that_are_not_templates_by_the_schema_are_not_template_places():
    found = names_by_pointer(KINTO)
    for pointer in (
        "/module/name",
        "/resources/bucket/list/records",
        "/resources/bucket/list/pagination/header",
        "/auth/check/expect",
        "/resources/bucket/label",
        "/restore/scenarios/0/name",
    ):
        assert pointer not in found


def test_template_places_follow_only_the_chosen_kind_of_a_discriminated_object():
    data = yaml.safe_load(MINIMAL)
    data["connection"]["auth"] = {"kind": "bearer", "token": "{{ settings.t }}"}
    assert names_by_pointer(data)["/connection/auth/token"] == ("settings", "platform")
    data["connection"]["auth"]["kind"] = "unknown"
    assert "/connection/auth/token" not in names_by_pointer(data)
