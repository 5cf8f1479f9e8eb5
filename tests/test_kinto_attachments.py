"""Kinto record attachments (the kinto-attachment plugin) both ways through modules/kinto and
the module API: files downloaded beside the records and checked against the hash Kinto names,
then, after the collection is lost, written back with multipart POSTs: the same bytes, filename
and mimetype. Against a real Kinto 26.5.0 with kinto-attachment 8.0.0."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from scripts import servers
from tests.taskflow import Backend, assert_done, auth_of, new_uuid, run_task

pytestmark = pytest.mark.e2e

FILES = {  # record id -> (filename, mimetype, bytes)
    "r1": ("pixel.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4),
    "r2": ("empty.txt", "text/plain", b""),
    "r3": ("blob.bin", "application/x-engine-test", random.Random(5).randbytes(2_500_000)),
}
COLLECTION = "/buckets/b1/collections/c1"


def seed(kinto: servers.KintoServer) -> None:
    with httpx.Client(base_url=kinto.url, auth=kinto.admin, trust_env=False) as http:
        http.put("/buckets/b1", json={"data": {}}).raise_for_status()
        http.put(COLLECTION, json={"data": {}}).raise_for_status()
        http.put(f"{COLLECTION}/records/plain", json={"data": {"n": 1}}).raise_for_status()
        for record, (name, kind, data) in FILES.items():
            answer = http.post(
                f"{COLLECTION}/records/{record}/attachment",
                files={"attachment": (name, data, kind)},
                data={"data": '{"title": "with a file"}'},
            )
            answer.raise_for_status()


def attachments(kinto: servers.KintoServer) -> dict[str, tuple[dict[str, Any], bytes]]:
    """Each record's attachment field and the bytes at its location."""
    found = {}
    with httpx.Client(base_url=kinto.url, auth=kinto.admin, trust_env=False) as http:
        records = http.get(f"{COLLECTION}/records").raise_for_status().json()["data"]
        for record in records:
            if record.get("attachment"):
                field = record["attachment"]
                data = http.get(field["location"]).raise_for_status().content
                found[record["id"]] = (field, data)
    return found


def test_record_attachments_round_trip_byte_exact_with_their_filename_and_mimetype(
    kinto_factory: Callable[..., servers.KintoServer],
    engine_api: Callable[..., TestClient],
    storage_area: Callable[[str], Backend],
):
    kinto = kinto_factory(attachments=True)
    seed(kinto)
    before = attachments(kinto)
    assert {record: data for record, (_, data) in before.items()} == {
        record: data for record, (_, _, data) in FILES.items()
    }
    area = storage_area("local")
    api = engine_api(storage_allow=(area.allow,))
    place = area.place(new_uuid())
    ctx = {"kind": "root@kinto", "type": "bucket", "values": {"bucket": "b1"}}
    common = {"auth": auth_of(kinto), "storage": place.storage(), "ctx": ctx}
    options = {"with_permissions": True, "with_attachments": True}

    assert_done(run_task(api, "/api/backup", common | {"taskUuid": new_uuid(), "options": options}))

    objects = {obj["path"]: obj for obj in place.manifest()["objects"]}
    for record, (name, kind, data) in FILES.items():
        stored = objects[f"b1/collections/c1/attachments/{record}.zst"]
        assert place.contents(stored["path"], "zstd") == data
        assert stored["meta"]["filename"] == name and stored["meta"]["contentType"] == kind
        assert stored["meta"]["sha256"] == hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=kinto.url, auth=kinto.admin, trust_env=False) as http:
        http.delete(COLLECTION).raise_for_status()

    restore = common | {"taskUuid": new_uuid(), "scenario": "IN_PLACE"}
    assert_done(run_task(api, "/api/restore", restore))

    after = attachments(kinto)
    assert set(after) == set(FILES)
    for record, (name, kind, data) in FILES.items():
        field, got = after[record]
        assert got == data, record
        assert (field["filename"], field["mimetype"], field["size"]) == (name, kind, len(data))
        assert field["hash"] == before[record][0]["hash"]
        assert field["location"] != before[record][0]["location"]  # a new file, written anew
    with httpx.Client(base_url=kinto.url, auth=kinto.admin, trust_env=False) as http:
        plain = http.get(f"{COLLECTION}/records/plain").raise_for_status().json()["data"]
        titled = http.get(f"{COLLECTION}/records/r1").raise_for_status().json()["data"]
    assert plain["n"] == 1 and titled["title"] == "with a file"
