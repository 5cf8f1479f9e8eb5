from __future__ import annotations

from typing import Any

import pytest
import yaml

from engine.language.checks import check
from engine.language.document import parse
from engine.language.schema import issues, module_schema

BASE = """\
module: {id: demo, name: Demo, version: 1.0.0}
capabilities: {}
connection:
  baseUrl: https://api.example.com
resources:
  org:
    list: {request: {path: /orgs}}
    resource: {name: "{{ item.name }}"}
    ctx: {org: "{{ item.id }}"}
  repo:
    parent: org
    list: {request: {path: "/orgs/{{ ctx.org }}/repos"}}
    resource: {name: "{{ item.name }}"}
    ctx: {repo: "{{ item.id }}"}
"""


def problems(data: dict[str, Any], *, shape_ok: bool = True) -> list[str]:
    document, found = parse(yaml.safe_dump(data, sort_keys=False), "m.yaml")
    assert found == []
    return [str(p).split(": ", 1)[1] for p in sorted(check(document, shape_ok=shape_ok))]


def base() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(BASE)
    return data


def test_the_base_definition_has_no_semantic_problem():
    assert problems(base()) == []


def test_a_ctx_mapping_sees_its_parents_ctx_but_not_its_own_keys():
    data = base()
    data["resources"]["repo"]["ctx"]["path"] = "{{ ctx.org }}/{{ ctx.repo }}"
    assert problems(data) == ["/resources/repo/ctx/path: ctx has no key 'repo' (it has: org)"]


def test_settings_without_an_auth_form_has_no_keys_at_all():
    data = base()
    data["connection"]["headers"] = {"X-Key": "{{ settings.key }}"}
    assert problems(data) == [
        "/connection/headers/X-Key: settings has no key 'key' (it has: nothing)"
    ]


def test_under_an_unknown_parent_ctx_keys_are_not_guessed():
    data = base()
    data["resources"]["repo"]["parent"] = "organisation"
    assert problems(data) == [
        "/resources/repo/parent: unknown resource type 'organisation'",
    ]


def test_unknown_filters_and_tests_are_reported_with_the_closest_known_one():
    data = base()
    data["resources"]["org"]["list"]["filter"] = "{{ item.name | lowr is sameas 1 }}"
    assert problems(data) == [
        "/resources/org/list/filter: unknown filter 'lowr'; did you mean 'lower'?",
    ]
    data["resources"]["org"]["list"]["filter"] = "{{ item.n is od }}"
    assert problems(data) == ["/resources/org/list/filter: unknown test 'od'; did you mean 'odd'?"]


@pytest.mark.parametrize(
    ("where", "selector", "message"),
    [
        (("auth", "check"), "user..id", "/auth/check/expect: invalid JMESPath selector: "),
        (
            ("resources", "org", "list", "pagination"),
            "meta.[",
            "/resources/org/list/pagination/cursor: invalid JMESPath selector: incomplete",
        ),
    ],
)
def test_every_selector_is_checked_as_jmespath(where, selector, message):
    data = base()
    if where[0] == "auth":
        data["capabilities"] = {"auth": ["AUTH_SETTINGS"]}
        form = {"columns": [{"fields": [{"id": "k", "type": "text", "label": "K"}]}]}
        data["auth"] = {"form": form | {"payload": {"key": "k"}}}
        data["auth"]["check"] = {"request": {"path": "/me"}, "expect": selector}
    else:
        data["resources"]["org"]["list"]["pagination"] = {
            "kind": "cursor",
            "cursor": selector,
            "param": "after",
        }
    assert next(p for p in problems(data) if "JMESPath" in p).startswith(message)


@pytest.mark.parametrize(
    ("base_url", "kind", "warned"),
    [
        ("http://api.example.com", "bearer", True),
        ("HTTP://{{ settings.host }}/v1", "basic", True),
        ("http://localhost:8888", "none", False),
        ("https://api.example.com", "bearer", False),
        ("{{ settings.url }}", "bearer", False),
    ],
)
def test_credentials_to_a_plain_http_base_url_are_a_warning(base_url, kind, warned):
    data = base()
    data["connection"]["baseUrl"] = base_url
    secrets = {"basic": {"username": "u", "password": "p"}, "bearer": {"token": "t"}}
    data["connection"]["auth"] = {"kind": kind, **secrets.get(kind, {})}
    found = [p for p in problems(data) if "unencrypted" in p]
    assert found == (
        [f"/connection/baseUrl: warning: {kind} credentials would travel unencrypted; use https"]
        if warned
        else []
    )


def test_a_template_for_has_subresources_is_trusted_without_a_warning():
    data = base()
    data["resources"]["org"]["resource"]["hasSubresources"] = "{{ item.repos > 0 }}"
    assert problems(data) == []


def test_checks_that_trip_over_a_part_the_schema_reported_are_skipped_not_raised():
    data = base()
    data["resources"]["repo"]["list"] = ["not", "a", "mapping"]
    data["restore"] = {"scenarios": [{"kind": "inPlace"}]}
    data["auth"] = None
    assert problems(data, shape_ok=False) == []
    with pytest.raises((KeyError, TypeError, AttributeError)):
        problems(data, shape_ok=True)


@pytest.mark.parametrize(
    ("flag", "warned"),
    [(False, False), ("false", False), (True, True), ("TRUE", True), ("{{ item.n > 0 }}", True)],
)
def test_has_subresources_that_can_be_true_on_a_type_without_children_is_a_warning(flag, warned):
    data = base()
    data["resources"]["repo"]["resource"]["hasSubresources"] = flag
    expected = "/resources/repo/resource/hasSubresources: warning: hasSubresources can be true"
    assert [p.startswith(expected) for p in problems(data)] == ([True] if warned else [])


def test_a_resource_flag_that_is_no_boolean_text_or_template_is_an_error():
    data = base()
    data["resources"]["org"]["resource"]["canBackup"] = "yes"
    assert problems(data) == [
        "/resources/org/resource/canBackup: canBackup must be true, false or a template, not 'yes'"
    ]


def with_restore(step: dict[str, Any]) -> dict[str, Any]:
    """The base definition whose org type is backed up as one object and written back by step."""
    data = base()
    org = data["resources"]["org"]
    org["backup"] = [{"id": "org", "fetch": "object", "request": {"path": "/o"}, "to": "o.json"}]
    org["restore"] = [{"from": "org"} | step]
    return data


POST = {"method": "POST", "path": "/orgs", "body": {"id": "{{ record.id }}"}}
AT_LEAST_ONCE = (
    "/resources/org/restore/0/request/method: warning: a POST write is at-least-once: a resumed"
    " restore may create some objects twice (prefer PUT by id, or a create with If-None-Match;"
    " a POST that carries its own id may say idempotent: true)"
)


def test_a_post_restore_step_is_warned_about_unless_it_says_it_is_idempotent():
    assert problems(with_restore({"request": POST})) == [AT_LEAST_ONCE]
    assert problems(with_restore({"request": POST, "idempotent": False})) == [AT_LEAST_ONCE]
    assert problems(with_restore({"request": POST, "idempotent": True})) == []


def test_every_restore_template_may_name_the_scenario_by_its_id_and_kind():
    step = {
        "when": "{{ scenario.kind != 'asNew' }}",
        "request": {
            "method": "PUT",
            "path": "/orgs/{{ target.org }}",
            "headers": {"X-Scenario": "{{ scenario.id or 'none' }}"},
        },
        "remember": {"org": "{{ answer.id ~ scenario.kind }}"},
    }
    data = with_restore(step)
    data["restore"] = {
        "conflict": "{{ 'overwrite' if scenario.kind == 'asNew' else 'skip' }}",
        "scenarios": [
            {"id": "NEW", "kind": "asNew", "name": "N", "target": {"org": "{{ scenario.id }}"}}
        ],
    }
    assert problems(data) == []
    data["resources"]["org"]["restore"][0]["when"] = "{{ scenario.type }}"
    assert problems(data) == [
        "/resources/org/restore/0/when: scenario has no key 'type' (it has: id, kind)"
    ]


def test_a_backup_template_knows_no_scenario():
    data = base()
    data["resources"]["org"]["resource"]["name"] = "{{ scenario.id }}"
    assert problems(data) == [
        "/resources/org/resource/name: unknown name 'scenario' (this place provides: ctx, item)"
    ]


@pytest.mark.parametrize(
    ("conflict", "valid"),
    [
        ({"body": "duplicate id"}, True),
        ({"status": [500], "body": "duplicate id"}, True),
        ({"status": [412], "headers": {"If-None-Match": "*"}}, True),
        ({"headers": {"If-None-Match": "*"}}, False),
        ({"body": ""}, False),
    ],
)
def test_a_conflict_names_a_status_or_a_body_fragment_or_both(conflict, valid):
    data = with_restore({"request": POST, "idempotent": True, "conflict": conflict})
    assert (issues(module_schema(), data) == []) is valid
    assert problems(data) == []
