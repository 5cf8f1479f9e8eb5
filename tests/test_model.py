"""The typed definition model against the JSON Schema: every class reads exactly the keys its
schema node allows, and every default the schema states is the value a definition that leaves
the key out gets (filled once, at load, from the schema)."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from engine.language import model
from engine.language.loader import load_module
from engine.language.model import build, schema_defaults, schema_properties, yaml_key

ROOT = Path(__file__).resolve().parents[1]
CLASSES = [
    cls
    for _, cls in inspect.getmembers(model, inspect.isclass)
    if dataclasses.is_dataclass(cls) and hasattr(cls, "SCHEMA")
]
# fields the loader sets from the tree, not from a YAML key of the type
COMPUTED = {
    model.ResourceType: {"name", "ctx_keys", "required_keys", "children", "depth", "recursive"}
}
# the smallest valid mapping of each class with a required key (what the schema requires)
REQUIRED: dict[type[Any], dict[str, Any]] = {
    model.Identity: {"id": "m", "name": "M", "version": "1"},
    model.ResponseRule: {"action": "fail", "status": [500]},
    model.Request: {"path": "/"},
    model.Basic: {"kind": "basic", "username": "u", "password": "p"},
    model.Bearer: {"kind": "bearer", "token": "t"},
    model.ApiKey: {"kind": "apiKey", "name": "k", "value": "v"},
    model.OAuth2ClientCredentials: {
        "kind": "oauth2ClientCredentials",
        "tokenUrl": "u",
        "clientId": "c",
    },
    model.OAuth2RefreshToken: {
        "kind": "oauth2RefreshToken",
        "tokenUrl": "u",
        "clientId": "c",
        "refreshToken": "r",
    },
    model.Session: {"kind": "session", "login": {"path": "/login"}},
    model.CredentialsHook: {"kind": "hook", "function": "f"},
    model.Connection: {"baseUrl": "https://example.com"},
    model.OffsetPaging: {"kind": "offset", "limit": 10},
    model.CursorPaging: {"kind": "cursor", "cursor": "next", "param": "c"},
    model.NextUrlPaging: {"kind": "nextUrl", "url": "next"},
    model.HeaderPaging: {"kind": "header", "header": "Next-Page"},
    model.HookPaging: {"kind": "hook", "function": "f"},
    model.Listing: {"request": {"path": "/"}},
    model.ResourceMapping: {"name": "{{ item.id }}"},
    model.Each: {"request": {"path": "/"}},
    model.ObjectStep: {"fetch": "object", "id": "o", "request": {"path": "/"}, "to": "o"},
    model.CollectionStep: {
        "fetch": "collection",
        "id": "c",
        "list": {"request": {"path": "/"}},
        "to": "c",
    },
    model.DownloadStep: {"fetch": "download", "id": "d", "request": {"path": "/"}, "to": "d"},
    model.Conflict: {"status": [412]},
    model.Multipart: {"file": "attachment"},
    model.RestoreStep: {"from": "o", "request": {"path": "/"}},
    model.ResourceType: {"list": {"request": {"path": "/"}}, "resource": {"name": "n"}},
    model.Choice: {"label": "A", "value": "a"},
    model.Field: {"id": "f", "type": "text", "label": "F"},
    model.Column: {"fields": []},
    model.Form: {"columns": [{"fields": []}], "payload": {}},
    model.Check: {"request": {"path": "/"}},
    model.Scenario: {"id": "s", "kind": "inPlace", "name": "S"},
}


def _keys(cls: type[Any]) -> set[str]:
    kept = getattr(cls, "KEEP", None)
    skipped = COMPUTED.get(cls, set()) | {kept}
    return {
        yaml_key(field.name, cls) for field in dataclasses.fields(cls) if field.name not in skipped
    }


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_each_model_class_reads_exactly_the_keys_its_schema_node_allows(cls: type[Any]):
    tag = {cls.TAG[0]} if hasattr(cls, "TAG") else set()
    assert _keys(cls) == set(schema_properties(cls)) - tag


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_each_schema_default_is_what_a_definition_leaving_the_key_out_gets(cls: type[Any]):
    built = build(cls, REQUIRED.get(cls, {}))
    by_key = {yaml_key(field.name, cls): field.name for field in dataclasses.fields(cls)}
    for key, default in schema_defaults(cls).items():
        value = getattr(built, by_key[key])
        expected = tuple(default) if isinstance(default, list) else default
        assert value == expected, f"{cls.__name__}.{key}"


def test_the_schema_states_the_defaults_the_engine_relies_on():
    """Spot checks: the defaults once restated in code now come from the schema alone."""
    connection = build(model.Connection, REQUIRED[model.Connection])
    assert connection.concurrency == 8
    assert (connection.timeouts.connect, connection.timeouts.read) == (10, 60)
    assert build(model.OffsetPaging, REQUIRED[model.OffsetPaging]).offset_param == "offset"
    assert build(model.RestoreSection, {}).conflict == "skip"
    assert build(model.HooksSection, {}).file == "hooks.py"


def test_kinds_are_chosen_by_their_tag_and_one_auth_kind_is_a_list_of_one():
    connection = build(
        model.Connection, REQUIRED[model.Connection] | {"auth": {"kind": "bearer", "token": "t"}}
    )
    assert connection.auth == (model.Bearer(token="t", when=None),)
    step = build(
        model.ResourceType,
        REQUIRED[model.ResourceType] | {"backup": [REQUIRED[model.DownloadStep]]},
    )
    assert isinstance(step.backup[0], model.DownloadStep)
    assert step.backup[0].format == "raw"


def test_a_restore_steps_from_is_always_a_tuple():
    assert build(model.RestoreStep, REQUIRED[model.RestoreStep]).from_ == ("o",)
    many = REQUIRED[model.RestoreStep] | {"from": ["a", "b"]}
    assert build(model.RestoreStep, many).from_ == ("a", "b")


@pytest.mark.parametrize("folder", sorted((ROOT / "modules").iterdir()), ids=lambda p: p.name)
def test_every_shipped_module_loads_into_the_model(folder: Path):
    definition = load_module(folder)
    assert definition.identity.id
    for kind in definition.types.values():
        assert kind.label and isinstance(kind.list, model.Listing)


def test_an_upload_is_raw_by_its_word_or_multipart_or_base64_by_its_one_key():
    def upload(value: Any) -> Any:
        step = build(model.RestoreStep, REQUIRED[model.RestoreStep] | {"upload": value})
        return step.upload

    assert upload("raw").kind == "raw"
    multipart = upload({"multipart": {"file": "attachment"}})
    assert multipart.kind == "multipart"
    assert multipart.multipart.file == "attachment"
    assert multipart.multipart.fields == {}
    assert upload({"base64": "/data/content"}).base64 == "/data/content"
    assert build(model.RestoreStep, REQUIRED[model.RestoreStep]).upload is None
