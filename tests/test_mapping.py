"""Mapping one listed item to the platform's resource fields and to its ctx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.errors import EngineError, MappingError, TemplateError
from engine.language.definition import ResourceType
from engine.language.loader import build
from engine.language.schema import issues, module_schema
from engine.saas.mapping import keep, map_item, resource_body

ITEM = {
    "id": 7,
    "title": "Seven",
    "flag": "false",
    "tags": ["a", "b"],
    "size": 2.5,
    "region": "eu-west-1",
}


def types(
    bucket: dict[str, Any] | None = None, record: dict[str, Any] | None = None
) -> dict[str, ResourceType]:
    """A bucket type with a child record type, each with the given resource mapping changes."""
    raw = {
        "module": {"id": "store", "name": "Store", "version": "1.0.0"},
        "capabilities": {"auth": [], "features": [], "storage": ["STORAGE_SERVICE"]},
        "connection": {"baseUrl": "https://store.example/api"},
        "resources": {
            "bucket": {
                "list": {"request": {"path": "/buckets"}},
                "resource": {"id": "{{ item.id }}", "name": "{{ item.title }}"} | (bucket or {}),
                "ctx": {"bucket": "{{ item.id }}"},
            },
            "record": {
                "parent": "bucket",
                "list": {
                    "request": {"path": "/buckets/{{ ctx.bucket }}/records"},
                    "filter": "{{ item.id > 5 }}",
                },
                "resource": {"name": "{{ item.title }}"} | (record or {}),
                "ctx": {"record": "{{ item.id }}", "path": "{{ ctx.bucket }}/{{ item.id }}"},
            },
        },
    }
    assert issues(module_schema(), raw) == []
    return dict(build(raw, Path()).types)


def bucket(item: Any = ITEM, **mapping: Any) -> dict[str, Any]:
    return resource_body(map_item("store", types(bucket=mapping)["bucket"], item, {}))


def record(
    item: Any = ITEM, parent: dict[str, Any] | None = None, **mapping: Any
) -> dict[str, Any]:
    kind = types(record=mapping)["record"]
    return resource_body(map_item("store", kind, item, parent or {"bucket": 3}))


# ---------------------------------------------------------------------------- fields


def test_an_item_maps_to_every_resource_field_with_the_defaults():
    assert bucket() == {
        "id": "7",
        "name": "Seven",
        "type": "bucket",
        "hasSubresources": True,
        "canBackup": True,
        "backupSeqGroup": None,
        "restoreSeqGroup": None,
        "ctx": {"kind": "root@store", "type": "bucket", "values": {"bucket": 7}},
        "displayCtx": {},
    }


def test_a_type_without_children_has_no_subresources_by_default():
    assert record()["hasSubresources"] is False


def test_a_child_type_without_an_id_mapping_has_a_null_id():
    assert record()["id"] is None


def test_the_resource_type_is_the_type_key_unless_the_mapping_names_one():
    assert bucket()["type"] == "bucket"
    assert bucket(type="STORE_BUCKET")["type"] == "STORE_BUCKET"


@pytest.mark.parametrize(
    ("template", "value"),
    [
        ("{{ item.size }}", 2.5),
        ("{{ item.id * 2 }}", 14),
        ("{{ item.tags }}", ["a", "b"]),
        ("group-{{ item.id }}", "group-7"),
        (3, 3),
    ],
)
def test_sequence_groups_keep_their_native_types(template: Any, value: Any):
    assert bucket(backupSeqGroup=template)["backupSeqGroup"] == value


@pytest.mark.parametrize(
    ("template", "text"),
    [
        ("{{ item.id }}", "7"),
        ("{{ item.size }}", "2.5"),
        ("{{ item.tags }}", '["a", "b"]'),
        ("{{ item.title }}", "Seven"),
    ],
)
def test_ids_names_and_display_values_become_text(template: str, text: str):
    mapped = bucket(id=template, name=template, displayCtx={"Shown": template})

    assert (mapped["id"], mapped["name"], mapped["displayCtx"]) == (text, text, {"Shown": text})


@pytest.mark.parametrize(
    ("template", "value"),
    [
        (False, False),
        ("{{ item.id > 5 }}", True),
        ("{{ item.flag }}", False),
        ("{% if item.id %}true{% else %}false{% endif %}", True),
        (" FALSE ", False),
    ],
)
def test_has_subresources_and_can_backup_accept_booleans_and_their_text(template: Any, value: bool):
    mapped = bucket(hasSubresources=template, canBackup=template)

    assert (mapped["hasSubresources"], mapped["canBackup"]) == (value, value)


@pytest.mark.parametrize("template", ["yes", "{{ item.id }}", "{{ none }}", "{{ item.tags }}"])
def test_a_flag_that_is_not_true_or_false_is_a_mapping_error_naming_its_place(template: str):
    with pytest.raises(
        MappingError, match=r"^/resources/bucket/resource/canBackup: must be true or false"
    ):
        bucket(canBackup=template)


def test_a_location_passes_through_with_its_region_rendered():
    location = {"cloud": {"type": "AMAZON", "region": "{{ item.region }}"}}

    assert bucket(location=location)["location"] == {
        "cloud": {"type": "AMAZON", "region": "eu-west-1"}
    }


@pytest.mark.parametrize("template", ["{{ item.missing }}", "{{ '' }}"])
def test_a_name_that_renders_to_nothing_is_an_error(template: str):
    with pytest.raises(EngineError, match=r"^/resources/bucket/resource/name: "):
        bucket(name=template)


def test_a_failing_template_is_a_template_error_naming_its_place():
    with pytest.raises(
        TemplateError, match=r"^/resources/bucket/resource/displayCtx/Shown: undefined"
    ):
        bucket(displayCtx={"Shown": "{{ item.nope }}"})


# ---------------------------------------------------------------------------- labels


def test_labels_render_to_text_keys_and_values_and_may_repeat_a_key():
    labels = [
        {"key": "tag", "value": "{{ item.tags[0] }}"},
        {"key": "tag", "value": "{{ item.id }}"},
    ]

    assert bucket(labels=labels)["labels"] == [
        {"key": "tag", "value": "a"},
        {"key": "tag", "value": "7"},
    ]


def test_labels_may_come_from_one_template_giving_the_list():
    mapped = bucket(labels="{{ [{'key': 'size', 'value': item.size}] }}")

    assert mapped["labels"] == [{"key": "size", "value": "2.5"}]


@pytest.mark.parametrize(
    "labels",
    [
        "{{ item.title }}",
        "{{ [{'key': 'k'}] }}",
        "{{ [1, 2] }}",
        "{{ {'key': 'k', 'value': 'v'} }}",
    ],
    ids=["text", "no value", "not mappings", "one mapping"],
)
def test_labels_that_are_not_a_list_of_key_and_value_are_a_mapping_error(labels: str):
    with pytest.raises(
        MappingError, match=r"^/resources/bucket/resource/labels: labels must be a list"
    ):
        bucket(labels=labels)


def test_a_label_key_may_have_255_characters_but_not_more():
    assert bucket(labels=[{"key": "k" * 255, "value": "v"}])["labels"][0]["key"] == "k" * 255
    with pytest.raises(MappingError, match="longer than 255 characters"):
        bucket(labels=[{"key": "k" * 256, "value": "v"}])


# ---------------------------------------------------------------------------- ctx


def test_a_child_ctx_inherits_its_parents_values_beside_its_own():
    mapped = record({"id": 9, "title": "Nine"}, parent={"bucket": "b3"})

    assert mapped["ctx"] == {
        "kind": "resource@store",
        "type": "record",
        "values": {"bucket": "b3", "record": 9, "path": "b3/9"},
    }


def test_ctx_values_keep_their_native_json_types():
    assert bucket({"id": [1, {"a": None}], "title": "t"})["ctx"]["values"] == {
        "bucket": [1, {"a": None}]
    }


@pytest.mark.parametrize("ratio", ["nan", "inf"])
def test_a_ctx_value_that_is_not_json_is_a_mapping_error(ratio: str):
    kind = types()["bucket"]
    spec = kind.ctx | {"ratio": "{{ item.ratio | float }}"}
    changed = ResourceType(**{**kind.__dict__, "ctx": spec})

    with pytest.raises(
        MappingError, match=r"^/resources/bucket/ctx: a ctx value is not plain JSON$"
    ):
        map_item("store", changed, ITEM | {"ratio": ratio}, {})


def test_a_ctx_value_of_a_type_json_does_not_know_is_a_mapping_error():
    kind = types()["bucket"]
    changed = ResourceType(**{**kind.__dict__, "ctx": {"keys": "{{ item.keys() }}"}})

    with pytest.raises(MappingError, match="a ctx value is not plain JSON"):
        map_item("store", changed, ITEM, {})


def test_a_resource_field_json_cannot_hold_is_a_mapping_error():
    with pytest.raises(
        MappingError, match=r"^/resources/bucket/resource: a resource field is not plain JSON$"
    ):
        bucket({"id": 1, "title": "t", "seq": "nan"}, backupSeqGroup="{{ item.seq | float }}")


# ---------------------------------------------------------------------------- filter


@pytest.mark.parametrize(("item_id", "kept"), [(9, True), (2, False)])
def test_the_filter_keeps_only_the_items_it_renders_truthy_for(item_id: int, kept: bool):
    kind = types()["record"]

    assert keep(kind, {"id": item_id}, {"bucket": 1}, "/resources/record") is kept


def test_a_type_without_a_filter_keeps_every_item():
    assert keep(types()["bucket"], {"id": 0}, {}, "/resources/bucket") is True
