"""The wire shapes of spec/module-api.md: request parsing, ctx parsing, and every builder."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.api import wire
from engine.ctx import ROLES, build_ctx, parse_ctx, task_ctx
from engine.errors import Code, CtxError, RequestError, SaasError, entry_of, error_entry
from engine.language import model
from engine.language.schema import issues
from engine.redaction import guarding
from engine.saas.access import settings_of
from engine.saas.mapping import ResourceFields, resource_body
from engine.tasks.answers import task_body

MODULE = "kinto"
ROOT_CTX = {"kind": "root@kinto", "type": "bucket", "values": {"bucket": "b1"}}
FORM = {
    "columns": [{"fields": [{"id": "user", "type": "text", "label": "User"}]}],
    "payload": {"u": "user"},
}


def body(endpoint: str, value: Any) -> dict[str, Any]:
    return wire.parse_body(endpoint, json.dumps(value).encode())


# ---------------------------------------------------------------------------- parse_body


@pytest.mark.parametrize("raw", [b"", b"  \n\t "])
def test_an_empty_body_is_an_empty_request(raw: bytes):
    assert wire.parse_body("roots", raw) == {}


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"not json",
        b'{"a": 1,}',
        b"\xff\xfe\xfa",
        b'{"n": NaN}',
        b'{"n": -Infinity}',
        b"[" * 100_000,
    ],
    ids=["truncated", "text", "trailing comma", "bad utf-8", "NaN", "Infinity", "deep"],
)
def test_a_body_that_is_not_json_is_a_request_error(raw: bytes):
    with pytest.raises(RequestError, match=r"^the request body is not valid JSON$"):
        wire.parse_body("roots", raw)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [(b"[]", "a list"), (b'"x"', "a string"), (b"1", "an integer"), (b"null", "null")],
)
def test_a_body_that_is_not_an_object_is_a_request_error(raw: bytes, kind: str):
    with pytest.raises(RequestError, match=f"^request body /: expected a mapping, got {kind}$"):
        wire.parse_body("roots", raw)


@pytest.mark.parametrize(
    ("endpoint", "value", "message"),
    [
        ("roots", {"auth": []}, "/auth: expected a mapping or null, got a list"),
        (
            "roots",
            {"auth": {"settings": 1}},
            "/auth/settings: expected a mapping or null, got an integer",
        ),
        (
            "roots",
            {"auth": {"awsSessionToken": "x"}},
            "/auth/awsSessionToken: expected a mapping or null",
        ),
        (
            "roots",
            {"paginationCtx": "next"},
            "/paginationCtx: expected a mapping or null, got a string",
        ),
        ("resources", {}, "/: missing required key 'ctx'"),
        ("resources", {"ctx": {}}, "/ctx: missing required key 'kind'"),
        ("resources", {"ctx": {"kind": 3}}, "/ctx/kind: expected a string, got an integer"),
        (
            "scenariosRestore",
            {"ctx": ROOT_CTX, "types": [1]},
            "/types/0: expected a string, got an integer",
        ),
        ("configRestore", {"ctx": ROOT_CTX, "scenario": 5}, "/scenario: expected a string or null"),
        ("authValidate", {"settings": []}, "/settings: expected a mapping or null, got a list"),
    ],
)
def test_a_field_of_the_wrong_type_is_a_request_error_naming_it(
    endpoint: str, value: Any, message: str
):
    with pytest.raises(RequestError) as raised:
        body(endpoint, value)
    assert message in str(raised.value)
    assert str(raised.value).startswith("request body /")


def test_every_problem_of_a_body_is_reported_in_pointer_order():
    with pytest.raises(RequestError) as raised:
        body("scenariosRestore", {"types": "x", "ctx": 1})
    assert str(raised.value) == (
        "request body /ctx: expected a mapping, got an integer;"
        " /types: expected a list or null, got a string"
    )


def test_a_wrong_type_under_auth_does_not_echo_the_value():
    with pytest.raises(RequestError) as raised:
        body("roots", {"auth": {"settings": "hunter2-secret"}})
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(
    ("endpoint", "value"),
    [
        (
            "roots",
            {"extra": 1, "auth": {"settings": {"a": 1}, "other": [1]}, "paginationCtx": {"x": 1}},
        ),
        ("resources", {"ctx": ROOT_CTX | {"unknown": {"deep": [1]}}, "future": True}),
        (
            "configRestore",
            {"ctx": {"kind": "root@kinto", "extra": None}, "scenario": None, "x": {}},
        ),
        ("version", {"anything": "goes"}),
    ],
)
def test_unknown_fields_are_ignored_at_any_depth(endpoint: str, value: dict[str, Any]):
    assert body(endpoint, value) == value


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"scenario": "\\ud800"}', "request body /scenario: holds a lone surrogate"),
        (b'{"ctx": {"values": {"b": ["x", "\\udfff"]}}}', "request body /ctx/values/b/1: holds"),
        (b'{"a/b": {"\\ud83dx~": 1}}', "request body /a~1b/\\ud83dx~0: its key holds a lone"),
        (b'"\\udc00"', "request body /: holds a lone surrogate"),
        (b"[" * 70 + b"]" * 70, "request body /0/0/0/"),
    ],
    ids=["in a value", "deep in a list", "in a key", "the whole body", "nested too deep"],
)
def test_a_body_that_could_never_be_encoded_back_is_a_request_error_naming_where(
    raw: bytes, message: str
):
    with pytest.raises(RequestError) as raised:
        wire.parse_body("restore", raw)
    assert raised.value.message.startswith(message)
    json.dumps(wire.error_body(raised.value)).encode()  # its own answer encodes


def test_a_valid_surrogate_pair_is_text():
    assert body("version", {"name": "\U0001f600"}) == {"name": "\U0001f600"}


@pytest.mark.parametrize(
    "rules",
    [[{"ctx": "x"}], [{"ctx": {"type": {"a": 1}}}], [{"id": ["bucket"]}], ["bucket"]],
)
def test_exclusion_rules_are_shaped_as_the_config_offers_them(rules: Any):
    start = {"taskUuid": "t", "storage": {"url": "memory://x"}, "ctx": ROOT_CTX}
    with pytest.raises(RequestError, match=r"^request body /excludes/0"):
        body("backup", start | {"excludes": rules})


@pytest.mark.parametrize(
    ("value", "trees"),
    [
        ({"storage": "x", "destination": 1, "auth": "a"}, ("a",)),
        ({"storage": {"options": {"k": "s"}}, "destination": {"options": None}}, ({"k": "s"},)),
        ({"settings": {"p_secret": "v"}, "auth": None}, ({"p_secret": "v"},)),
        ([1, 2], ()),
        ("text", ()),
    ],
)
def test_the_secrets_of_any_body_are_gathered_whatever_its_shape(value: Any, trees: Any):
    assert wire.secret_trees(value) == trees


def _forbids_extra_keys(schema: Any) -> bool:
    if isinstance(schema, dict):
        if schema.get("additionalProperties") is False or "unevaluatedProperties" in schema:
            return True
        return any(_forbids_extra_keys(each) for each in schema.values())
    if isinstance(schema, list):
        return any(_forbids_extra_keys(each) for each in schema)
    return False


@pytest.mark.parametrize("endpoint", wire.REQUESTS)
def test_no_request_shape_forbids_extra_keys(endpoint: str):
    assert not _forbids_extra_keys(wire.REQUESTS[endpoint])


def test_top_level_settings_win_over_auth_settings():
    assert settings_of({"settings": {"a": 1}, "auth": {"settings": {"a": 2}}}) == {"a": 1}
    assert settings_of({"settings": None, "auth": {"settings": {"a": 2}}}) == {"a": 2}
    assert settings_of({"auth": None}) is None
    assert settings_of({}) is None


# ---------------------------------------------------------------------------- ctx


def test_a_built_ctx_parses_back_to_its_role_type_and_values():
    ctx = build_ctx(MODULE, "resource", "collection", {"bucket": "b", "collection": "c"})

    assert ctx == {
        "kind": "resource@kinto",
        "type": "collection",
        "values": {"bucket": "b", "collection": "c"},
    }
    parsed = parse_ctx(ctx, MODULE, ["resource"])
    assert (parsed.role, parsed.type, dict(parsed.values)) == (
        "resource",
        "collection",
        ctx["values"],
    )


@pytest.mark.parametrize(
    ("ctx", "message"),
    [
        (ROOT_CTX | {"kind": "root@other"}, "ctx belongs to module 'other', not 'kinto'"),
        (ROOT_CTX | {"kind": "root"}, "ctx belongs to module '?', not 'kinto'"),
        (ROOT_CTX | {"kind": "root@kinto@x"}, "ctx belongs to module 'kinto@x', not 'kinto'"),
        (
            ROOT_CTX | {"kind": "owner@kinto"},
            "ctx has role 'owner'; this endpoint takes: root, resource",
        ),
        (
            ROOT_CTX | {"kind": "backup@kinto"},
            "ctx has role 'backup'; this endpoint takes: root, resource",
        ),
        ({"kind": "root@kinto", "values": {}}, "ctx needs a string 'type' and an object 'values'"),
        (
            {"kind": "root@kinto", "type": "bucket"},
            "ctx needs a string 'type' and an object 'values'",
        ),
        (ROOT_CTX | {"values": []}, "ctx needs a string 'type' and an object 'values'"),
        (ROOT_CTX | {"type": 3}, "ctx needs a string 'type' and an object 'values'"),
        ({"type": "bucket"}, "ctx must be an object with a string 'kind'"),
        ("root@kinto", "ctx must be an object with a string 'kind'"),
        (None, "ctx must be an object with a string 'kind'"),
    ],
)
def test_a_ctx_that_does_not_fit_is_a_ctx_error(ctx: Any, message: str):
    with pytest.raises(CtxError) as raised:
        parse_ctx(ctx, MODULE, ["root", "resource"])
    assert str(raised.value) == message
    assert raised.value.code == "BAD_CTX"
    assert raised.value.status == 400


def test_a_ctx_error_names_the_field_it_came_from():
    with pytest.raises(CtxError, match=r"^paginationCtx belongs to module 'other'"):
        parse_ctx({"kind": "pagination@other"}, MODULE, ["pagination"], field="paginationCtx")


def test_the_ctx_roles_are_the_specs():
    assert ROLES == ("root", "resource", "backup", "restore", "export", "cleanup")


# ---------------------------------------------------------------------------- builders


def test_the_version_body_is_the_manifest():
    identity = model.build(
        model.Identity, {"id": "kinto", "name": "Kinto", "version": "1.0.0", "vendor": "Mozilla"}
    )
    caps = model.build(
        model.Capabilities, {"auth": ["AUTH_SETTINGS"], "storage": ["STORAGE_SERVICE"]}
    )

    assert wire.version_body(identity, caps, "0.1.0") == {
        "id": "kinto",
        "name": "Kinto",
        "version": "1.0.0",
        "description": "",
        "vendor": "Mozilla",
        "engineVersion": "0.1.0",
        "capabilities": {
            "auth": ["AUTH_SETTINGS"],
            "features": [],
            "supportedStorageTypes": ["STORAGE_SERVICE"],
        },
    }


def test_the_auth_schema_body_is_a_hycu_layout_form():
    assert wire.auth_schema_body(model.build(model.Form, FORM)) == {
        "schemaType": "hycu-layout",
        "schema": FORM,
    }


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        ([], {"valid": True, "errors": []}),
        (
            [{"code": "X", "description": "d"}],
            {"valid": False, "errors": [{"code": "X", "description": "d"}]},
        ),
    ],
)
def test_the_validate_body_is_valid_exactly_when_there_are_no_errors(
    errors: list[Any], expected: Any
):
    assert wire.validate_body(errors) == expected


def test_an_error_entry_carries_resource_and_field_only_when_given():
    assert error_entry(Code.SAAS_ERROR, "boom") == {
        "code": "SAAS_ERROR",
        "description": "boom",
    }
    assert error_entry(Code.INVALID_SETTINGS, "bad", resource="r", field="user") == {
        "code": "INVALID_SETTINGS",
        "description": "bad",
        "resource": "r",
        "field": "user",
    }


def test_an_entry_of_an_exception_carries_its_code_message_and_resource():
    error = SaasError("GET /x: the SaaS answered HTTP 500", resource="item-1")

    assert entry_of(error) == {
        "code": "SAAS_ERROR",
        "description": "GET /x: the SaaS answered HTTP 500",
        "resource": "item-1",
    }


def test_the_error_body_carries_a_payload_only_when_given():
    error = CtxError("ctx is bad")

    assert wire.error_body(error) == {"error": {"code": "BAD_CTX", "description": "ctx is bad"}}
    assert wire.error_body(error, {"taskUuid": "t"}) == {
        "error": {"code": "BAD_CTX", "description": "ctx is bad", "payload": {"taskUuid": "t"}}
    }


def test_error_entries_and_bodies_mask_the_requests_secrets():
    with guarding({"settings": {"password_secret": "s3cret-value"}}):
        entry = error_entry(Code.SAAS_ERROR, "login as s3cret-value failed")
        fatal = wire.error_body(SaasError("token s3cret-value refused"))

    assert entry["description"] == "login as *** failed"
    assert fatal["error"]["description"] == "token *** refused"


def _resource(**changes: Any) -> ResourceFields:
    fields: dict[str, Any] = {
        "id": "b1",
        "name": "Bucket 1",
        "type": "bucket",
        "has_subresources": True,
        "can_backup": True,
        "ctx": ROOT_CTX,
        "display_ctx": {"Bucket": "b1"},
    }
    return ResourceFields(**(fields | changes))


def test_a_resource_has_every_public_field_and_no_optional_one_unless_given():
    assert resource_body(_resource()) == {
        "id": "b1",
        "name": "Bucket 1",
        "type": "bucket",
        "hasSubresources": True,
        "canBackup": True,
        "backupSeqGroup": None,
        "restoreSeqGroup": None,
        "ctx": ROOT_CTX,
        "displayCtx": {"Bucket": "b1"},
    }


def test_a_resource_carries_labels_location_and_sequence_groups_when_given():
    body = resource_body(
        _resource(
            id=None,
            labels=[{"key": "env", "value": "prod"}, {"key": "env", "value": "eu"}],
            location={"cloud": {"type": "AMAZON", "region": "eu-west-1"}},
            backup_seq_group=2,
            restore_seq_group="first",
        )
    )

    assert body["id"] is None
    assert body["labels"] == [{"key": "env", "value": "prod"}, {"key": "env", "value": "eu"}]
    assert body["location"] == {"cloud": {"type": "AMAZON", "region": "eu-west-1"}}
    assert (body["backupSeqGroup"], body["restoreSeqGroup"]) == (2, "first")


def test_a_listing_carries_a_pagination_ctx_only_while_more_pages_remain():
    errors = [{"code": "SAAS_ERROR", "description": "d"}]
    more = {"kind": "pagination@kinto", "type": "bucket", "values": {}}

    assert wire.listing_body([_resource()], errors, None) == {
        "resources": [resource_body(_resource())],
        "errors": errors,
    }
    assert wire.listing_body([], [], more) == {"resources": [], "errors": [], "paginationCtx": more}


def test_an_exclusion_rule_carries_sub_resources_only_when_it_has_children():
    child = wire.exclusion_rule("record", "Records", ROOT_CTX, [])

    assert child == {"id": "record", "name": "Records", "ctx": ROOT_CTX}
    assert wire.exclusion_rule("collection", "Collections", ROOT_CTX, [child]) == {
        "id": "collection",
        "name": "Collections",
        "ctx": ROOT_CTX,
        "subResources": [child],
    }


def test_the_backup_config_carries_options_only_when_the_module_has_them():
    rule = wire.exclusion_rule("group", "Groups", ROOT_CTX, [])

    assert wire.config_backup_body([rule], None) == {"possibleExcludes": [rule]}
    assert wire.config_backup_body([], model.build(model.Form, FORM)) == {
        "possibleExcludes": [],
        "possibleOptions": FORM,
    }


def test_the_scenarios_body_lists_type_name_and_description():
    assert wire.scenarios_body([("IN_PLACE", "In place", "Writes back")]) == {
        "restoreScenarios": [{"type": "IN_PLACE", "name": "In place", "description": "Writes back"}]
    }


def test_the_restore_config_is_empty_without_options():
    assert wire.config_restore_body(None) == {}
    assert wire.config_restore_body(model.build(model.Form, FORM)) == {"possibleOptions": FORM}


# ---------------------------------------------------------------------------- answer shapes

TASK_CTX = task_ctx(MODULE, "backup", "t-1")
FULL_FORM = FORM | {"columns": [{"fields": [{"id": "p", "type": "password", "label": "P"}]}]}
ANSWERS: list[tuple[str, dict[str, Any]]] = [
    (
        "version",
        wire.version_body(
            model.build(model.Identity, {"id": "kinto", "name": "Kinto", "version": "1"}),
            model.build(
                model.Capabilities, {"auth": ["AUTH_SETTINGS"], "storage": ["STORAGE_SERVICE"]}
            ),
            "0.1.0",
        ),
    ),
    ("authSchema", wire.auth_schema_body(model.build(model.Form, FULL_FORM))),
    (
        "authValidate",
        wire.validate_body([error_entry(Code.SAAS_AUTH_FAILED, "no", field="p")]),
    ),
    (
        "roots",
        wire.listing_body(
            [
                _resource(
                    labels=[{"key": "k", "value": "v"}], location={"cloud": {"type": "AMAZON"}}
                )
            ],
            [error_entry(Code.SAAS_ERROR, "one failed", resource="b2")],
            build_ctx(MODULE, "pagination", "bucket", {"page": 2}),
        ),
    ),
    ("resources", wire.listing_body([_resource(id=None)], [], None)),
    (
        "configBackup",
        wire.config_backup_body(
            [
                wire.exclusion_rule(
                    "c", "Collections", ROOT_CTX, [wire.exclusion_rule("r", "R", ROOT_CTX, [])]
                )
            ],
            model.build(model.Form, FORM),
        ),
    ),
    ("scenariosRestore", wire.scenarios_body([("IN_PLACE", "In place", "Back where it was")])),
    ("configRestore", wire.config_restore_body(None)),
    ("backup", task_body("PENDING", "t-1", TASK_CTX, [], None, workingPath="memory://x")),
    (
        "status",
        task_body("DONE", "t-1", TASK_CTX, [], {"done": 3, "total": 3, "bytes": 10})
        | {"authUpdate": {"settings": {"token_secret": "new"}}},
    ),
    ("bulkRestore", task_body("RUNNING", "t-1", TASK_CTX, [], None, dryRun={"writes": 0})),
]


@pytest.mark.parametrize(("endpoint", "answer"), ANSWERS, ids=[name for name, _ in ANSWERS])
def test_every_builder_makes_an_answer_that_fits_its_endpoints_shape(
    endpoint: str, answer: dict[str, Any]
):
    assert issues(wire.RESPONSES[endpoint], answer) == []


@pytest.mark.parametrize(
    ("endpoint", "answer", "pointer"),
    [
        ("version", {"id": "kinto"}, ""),
        ("roots", {"resources": [{"id": 1}], "errors": []}, "/resources/0"),
        ("backup", task_body("FAILED", "t", TASK_CTX, [], None), "/status"),
        ("status", task_body("DONE", "t", {"kind": "x"}, [], None), "/ctx"),
    ],
)
def test_an_answer_off_its_shape_is_caught_where_it_strays(
    endpoint: str, answer: Any, pointer: str
):
    assert pointer in {issue.pointer for issue in issues(wire.RESPONSES[endpoint], answer)}


def test_every_error_body_fits_the_error_answer():
    error = RequestError("bad")
    assert issues(wire.ERROR_ANSWER, wire.error_body(error, {"taskUuid": "t"})) == []
    assert issues(wire.ERROR_ANSWER, {"error": {"code": "NOPE", "description": "x"}}) != []


def test_the_answer_shapes_cover_every_request_shape():
    assert set(wire.RESPONSES) == set(wire.REQUESTS)
