"""engine.tasks.manifest: the manifest built from a backup's entries and parsed back, malformed ones
refused as IncompleteBackup (the whole) or BackupDamaged (an object's entry), stored objects
verified against it, and entries grouped by the resource they belong to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.errors import BackupDamaged, ChecksumMismatch, Code, IncompleteBackup
from engine.language import model
from engine.storage import Storage
from engine.tasks import manifest
from engine.tasks.manifest import Entry, build, by_resource, parse, resource_key
from tests.taskparts import SHELF, entry, local_storage, shelf, write_object

pytestmark = pytest.mark.anyio

UUID = "backup-7f3a"
B1 = {"bucket": "b1"}
C1 = {"bucket": "b1", "collection": "c1"}
OTHER_C1 = {"bucket": "b2", "collection": "c1"}
G1 = {"bucket": "b1", "group": "g1"}


def entries() -> list[Entry]:
    meta_entry = entry("collection", "records", C1)
    return [
        entry("bucket", "bucket", B1, data_format="json"),
        entry("collection", "collection", C1, data_format="json"),
        Entry(meta_entry.info, "collection", "records", C1, "jsonl", {"schema": 2}),
        entry("group", "group", G1, data_format="json"),
        entry("collection", "collection", OTHER_C1, data_format="json"),
    ]


def document(**changes: Any) -> dict[str, Any]:
    built = build(
        task_uuid=UUID,
        module=model.build(model.Identity, SHELF["module"]),
        engine_version="0.1.0",
        request={"items": [{"type": "bucket", "values": B1}], "options": {"x": 1}},
        entries=entries(),
        errors=[{"code": "SAAS_ERROR", "description": "GET /groups: HTTP 500"}],
        started="2025-01-01T00:00:00.000Z",
        finished="2025-01-01T00:01:00.000Z",
    )
    return built | changes


def test_a_built_manifest_names_the_module_task_request_and_every_object():
    built = document()

    assert built["format"] == manifest.FORMAT
    assert built["module"] == {"id": "shelf", "version": "1.2.3"}
    assert built["taskUuid"] == UUID
    assert built["items"] == [{"type": "bucket", "values": B1}]
    assert built["options"] == {"x": 1}
    assert built["excludes"] == []
    assert [item["path"] for item in built["objects"]] == [e.path for e in entries()]
    assert built["objects"][2]["meta"] == {"schema": 2}
    assert "meta" not in built["objects"][0]


def test_a_manifest_round_trips_through_json_to_the_same_entries():
    stored = json.loads(json.dumps(document()))

    parsed = parse(stored, "shelf")

    assert parsed.entries == entries()
    assert parsed.task_uuid == UUID
    assert parsed.module == {"id": "shelf", "version": "1.2.3"}
    assert parsed.items == [{"type": "bucket", "values": B1}]
    assert parsed.raw == stored


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in data.items() if name != key}


def _object_with(**changes: Any) -> dict[str, Any]:
    first: dict[str, Any] = document()["objects"][0]
    return first | changes


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "at '/': expected a mapping, got a list"),
        (_without(document(), "objects"), "at '/': missing required key 'objects'"),
        (document(module={"version": "1"}), "at '/module': missing required key 'id'"),
        (document(format=0), "at '/format': "),
        (document(objects={}), "at '/objects': "),
        (document(taskUuid=7, objects=[_object_with(size=-1)]), "at '/taskUuid': "),
    ],
    ids=[
        "not a mapping",
        "no objects",
        "module without id",
        "format zero",
        "objects a mapping",
        "whole before entries",
    ],
)
def test_a_malformed_manifest_is_an_incomplete_backup_naming_the_place(data: Any, message: str):
    with pytest.raises(IncompleteBackup) as caught:
        parse(data, "shelf")
    assert caught.value.message.startswith(f"manifest.json is malformed {message}")


PATH = "b1/bucket.jsonl.zst"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            _without(_object_with(), "sha256"),
            f"object 0 ({PATH}) of manifest.json is malformed at '/objects/0': ",
        ),
        (
            _object_with(sha256="ABC"),
            f"object 0 ({PATH}) of manifest.json is malformed at '/objects/0/sha256': ",
        ),
        (
            _object_with(size=-1),
            f"object 0 ({PATH}) of manifest.json is malformed at '/objects/0/size': ",
        ),
        (
            _object_with(format="xml"),
            f"object 0 ({PATH}) of manifest.json is malformed at '/objects/0/format': ",
        ),
        (
            _object_with(compression="lz9"),
            f"object 0 ({PATH}) of manifest.json is malformed at '/objects/0/compression': ",
        ),
        (_object_with(path=5), "object 0 of manifest.json is malformed at '/objects/0/path': "),
        ("b1/bucket.json", "object 0 of manifest.json is malformed at '/objects/0': "),
        (_object_with(path="../up.json"), "object 0 of manifest.json has an unsafe path: "),
        (
            _object_with(path=".engine/tasks/x.json"),
            "object 0 of manifest.json has an unsafe path: ",
        ),
        (
            _object_with(type="folder"),
            f"object 0 ({PATH}) of manifest.json has type 'folder', which this module does not",
        ),
    ],
    ids=[
        "object without checksum",
        "checksum not hex",
        "negative size",
        "unknown format",
        "unknown compression",
        "path not a string",
        "entry not a mapping",
        "path leaving the root",
        "path in the engine's place",
        "unknown type",
    ],
)
def test_a_malformed_object_entry_is_a_damaged_backup_naming_the_object(entry: Any, message: str):
    with pytest.raises(BackupDamaged) as caught:
        parse(document(objects=[entry]), "shelf", shelf().types)
    assert caught.value.message.startswith(message)
    assert caught.value.code == Code.BACKUP_DAMAGED
    assert caught.value.status == 400


def test_an_unknown_type_is_only_checked_against_the_types_given():
    assert parse(document(objects=[_object_with(type="folder")]), "shelf").entries


def test_a_manifest_of_a_newer_format_is_an_incomplete_backup():
    with pytest.raises(IncompleteBackup) as caught:
        parse(document(format=manifest.FORMAT + 1), "shelf")
    assert caught.value.message == (
        f"manifest.json has format {manifest.FORMAT + 1}, newer than this engine reads "
        f"({manifest.FORMAT})"
    )


def test_a_manifest_of_another_module_is_an_incomplete_backup():
    with pytest.raises(IncompleteBackup) as caught:
        parse(document(), "kinto")
    assert caught.value.message == "manifest.json belongs to module 'shelf', not 'kinto'"


# --------------------------------------------------------------------------- reading, verifying


async def test_reading_a_stored_manifest_parses_it(tmp_path: Path):
    storage = local_storage(tmp_path)
    await storage.write_json("manifest.json", document(), engine=True)

    found = await manifest.read(storage, "shelf")

    assert found.entries == entries()


async def test_a_backup_without_a_manifest_is_incomplete(tmp_path: Path):
    storage = local_storage(tmp_path)
    await write_object(storage, "b1/bucket.json.zst", b"{}")

    with pytest.raises(IncompleteBackup) as caught:
        await manifest.read(storage, "shelf")
    assert caught.value.message == (
        f"no manifest.json at {storage.url}: the backup is incomplete (or there is none)"
    )


async def test_a_manifest_that_is_not_json_is_an_incomplete_backup(tmp_path: Path):
    storage = local_storage(tmp_path)
    async with storage.writer("manifest.json", compress=None, engine=True) as writer:
        await writer.write(b'{"format": 1, "objects": [')

    with pytest.raises(IncompleteBackup) as caught:
        await manifest.read(storage, "shelf")
    assert caught.value.message == f"manifest.json at {storage.url} is not valid JSON"


async def _stored_entries(storage: Storage) -> list[Entry]:
    objects = {"b1/bucket.json.zst": b'{"id": "b1"}', "b1/c1/records.jsonl.zst": b"{}\n" * 500}
    found = []
    for path, data in objects.items():
        info = await write_object(storage, path, data)
        found.append(entry("bucket", "bucket", B1, info=info))
    return found


async def test_objects_that_match_their_entries_verify(tmp_path: Path):
    storage = local_storage(tmp_path)
    await manifest.verify(storage, await _stored_entries(storage), concurrency=2)


async def test_verify_names_an_object_whose_bytes_changed(tmp_path: Path):
    storage = local_storage(tmp_path)
    stored = await _stored_entries(storage)
    await write_object(storage, "b1/c1/records.jsonl.zst", b"{}\n" * 499)

    with pytest.raises(ChecksumMismatch) as caught:
        await manifest.verify(storage, stored, concurrency=2)

    assert (caught.value.code, caught.value.status) == (Code.CHECKSUM_MISMATCH, 400)
    assert caught.value.path == "b1/c1/records.jsonl.zst"
    assert caught.value.message.startswith(
        f"cannot verify b1/c1/records.jsonl.zst under {storage.url}: "
    )
    assert f"where its record says {stored[1].info.size} bytes" in caught.value.message


async def test_verify_names_an_object_that_is_missing_as_a_damaged_backup(tmp_path: Path):
    storage = local_storage(tmp_path)
    stored = await _stored_entries(storage)
    await storage.remove("b1/bucket.json.zst")

    with pytest.raises(BackupDamaged) as caught:
        await manifest.verify(storage, stored, concurrency=2)

    assert (caught.value.code, caught.value.status) == (Code.BACKUP_DAMAGED, 400)
    assert caught.value.path == "b1/bucket.json.zst"
    assert caught.value.message == (
        "the backup is damaged: b1/bucket.json.zst is listed in manifest.json but missing "
        f"under {storage.url}"
    )


# --------------------------------------------------------------------------- resources


def test_a_resource_key_is_its_type_and_its_own_and_ancestors_ctx_values():
    types = shelf().types

    assert resource_key(types["collection"], C1 | {"extra": 1}) == (
        "collection",
        '{"bucket": "b1", "collection": "c1"}',
    )
    # a child's values name its parent too
    assert resource_key(types["bucket"], C1) == resource_key(types["bucket"], B1)
    assert resource_key(types["collection"], C1) != resource_key(types["collection"], OTHER_C1)


def test_entries_are_grouped_by_resource_in_their_order():
    every = entries()

    groups = by_resource(shelf(), every)

    assert list(groups.values()) == [[every[0]], [every[1], every[2]], [every[3]], [every[4]]]
    assert list(groups) == [
        ("bucket", '{"bucket": "b1"}'),
        ("collection", '{"bucket": "b1", "collection": "c1"}'),
        ("group", '{"bucket": "b1", "group": "g1"}'),
        ("collection", '{"bucket": "b2", "collection": "c1"}'),
    ]


ROW = {"id": 1, "type": "bucket", "name": "b1", "values": B1, "parent": None, "depth": 0}


def test_a_format_two_manifest_round_trips_its_resources_table_and_each_objects_row():
    named = [Entry(e.info, e.type, e.step, e.values, e.format, e.meta, 1) for e in entries()]
    data = json.loads(json.dumps(document(objects=[e.to_json() for e in named], resources=[ROW])))
    found = parse(data, "shelf")
    assert found.resources == [ROW]
    assert [e.resource for e in found.entries] == [1] * len(named)
    old = document(format=1)
    del old["resources"]
    assert parse(old, "shelf").resources == []


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (ROW | {"extra": 1}, "at '/resources/0/extra': unknown key 'extra'"),
        (ROW | {"depth": -1}, "at '/resources/0/depth'"),
        (
            {k: v for k, v in ROW.items() if k != "parent"},
            "at '/resources/0': missing required key 'parent'",
        ),
    ],
)
def test_a_malformed_resources_row_is_an_incomplete_backup(row: Any, message: str):
    with pytest.raises(IncompleteBackup) as caught:
        parse(document(resources=[row]), "shelf")
    assert message in caught.value.message


def test_an_object_naming_a_row_the_table_lacks_is_a_damaged_backup():
    objects = document()["objects"]
    objects[0]["resource"] = 7
    with pytest.raises(BackupDamaged) as caught:
        parse(document(objects=objects, resources=[ROW]), "shelf")
    assert "names resource 7, which its resources table lacks" in caught.value.message
