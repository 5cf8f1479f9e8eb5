"""End to end: the task half of the module API (backup, restore, export, cleanup, status, bulk)
against real Kinto servers and four storage backends, in process and through killed and
restarted `engine serve` processes."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from scripts import servers
from tests.taskflow import (
    S3_SECRET,
    Backend,
    Place,
    Running,
    Shape,
    assert_done,
    assert_error,
    assert_same,
    auth_of,
    backup_documents,
    check_manifest,
    count_ids,
    count_records,
    delete_buckets,
    dump_all,
    dump_buckets,
    finish,
    flip_a_byte,
    json_documents,
    kinto_client,
    new_uuid,
    readable,
    record_id,
    root_ctxs,
    run_task,
    run_tasks,
    seed,
    start_task,
    unlisted,
    without_last_modified,
)

pytestmark = [
    pytest.mark.e2e,
    # gcsfs hands aiohttp each resumable-upload chunk as raw bytes; aiohttp warns that this may
    # stall its event loop, which is fsspec's own loop thread here: harmless.
    pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning"),
]

# 3 buckets, 11 collections (one empty, one with a single record), 5,000 records, 3 groups
ROUND_TRIP = Shape(
    collections={
        "alpha": [1500, 1000, 700, 1],
        "beta": [500, 400, 300],
        "gamma": [250, 200, 149, 0],
    },
    groups={"alpha": 2, "beta": 1, "gamma": 0},
)
BIG_TIMEOUT = 180.0
KINTO_SECRET = "Kinto-Pass-Secret-5150"  # distinctive, so a leak shows up in any text


# --------------------------------------------------------------------------- 1. round trip


@pytest.mark.parametrize("backend_name", ["local", "memory", "s3", "gcs"])
def test_a_bulk_backup_restores_every_record_in_place_and_into_another_kinto(
    backend_name: str,
    storage_area: Callable[[str], Backend],
    engine_api: Callable[..., TestClient],
    kinto_factory: Callable[..., servers.KintoServer],
) -> None:
    area = storage_area(backend_name)
    place = area.place("round-trip")
    source = kinto_factory(paginate_by=50)
    target = kinto_factory(paginate_by=50)
    before = seed(source, ROUND_TRIP)
    assert sorted(before["buckets"]) == ROUND_TRIP.buckets
    assert count_records(before) == ROUND_TRIP.record_count == 5000

    api = engine_api(storage_allow=(area.allow,))
    roots = root_ctxs(api, auth_of(source))
    items = [{"ctx": roots[bucket]} for bucket in ROUND_TRIP.buckets]
    backup = {
        "auth": auth_of(source),
        "taskUuid": new_uuid(),
        "storage": place.storage(),
        "items": items,
        "options": {"with_permissions": True},
    }
    assert_done(run_task(api, "/api/bulk/backup", backup, timeout=BIG_TIMEOUT))

    manifest = check_manifest(place)
    assert unlisted(place) == []
    for entry in manifest["objects"]:
        assert entry["compression"] == "zstd" and entry["path"].endswith(".zst"), entry
    counts = count_ids(backup_documents(place), ROUND_TRIP.record_ids())
    assert set(counts.values()) == {1}, "every record is backed up exactly once"
    record = json.loads(place.read(f".engine/tasks/{backup['taskUuid']}.json"))
    assert record["status"] == "DONE"

    delete_buckets(source, ROUND_TRIP.buckets)
    assert dump_all(source) == {"buckets": {}}
    restores = [
        ("/api/bulk/restore", restore_body(source, place, items, "IN_PLACE")),
        ("/api/bulk/restore", restore_body(target, place, items, "OTHER_SOURCE")),
    ]
    # both at once, as a platform may run them: the engine must keep two tasks apart
    for result in run_tasks(api, restores, timeout=BIG_TIMEOUT):
        assert_done(result)

    with ThreadPoolExecutor(2) as pool:
        restored, copied = pool.map(dump_all, [source, target])
    assert_same(restored, before)
    assert_same(copied, before)


def restore_body(
    kinto: servers.KintoServer,
    place: Place,
    items: list[dict[str, Any]],
    scenario: str,
    **extra: Any,
) -> dict[str, Any]:
    """A bulk restore of items from place into kinto (whose auth it carries)."""
    return {
        "auth": auth_of(kinto),
        "taskUuid": new_uuid(),
        "storage": place.storage(),
        "items": items,
        "scenario": scenario,
    } | extra


# --------------------------------------------------------------------------- small backups


@dataclass
class Small:
    """A bucket of its own in the session's Kinto, an in-process engine, a local storage area."""

    kinto: servers.KintoServer
    bucket: str
    shape: Shape
    api: TestClient
    area: Backend
    ctx: dict[str, Any]
    exports: Path

    @property
    def auth(self) -> dict[str, Any]:
        return auth_of(self.kinto)

    def body(self, place: Place, **extra: Any) -> dict[str, Any]:
        """A single-resource task request for this bucket, stored at place."""
        start = {"auth": self.auth, "taskUuid": new_uuid(), "storage": place.storage()}
        return start | {"ctx": self.ctx} | extra

    def backup(self, place: Place) -> dict[str, Any]:
        body = self.body(place, options={"with_permissions": True})
        return assert_done(run_task(self.api, "/api/backup", body))

    def restore(self, place: Place, scenario: str = "IN_PLACE", **extra: Any) -> tuple[int, Any]:
        return run_task(self.api, "/api/restore", self.body(place, scenario=scenario, **extra))

    def dump(self, bucket: str | None = None) -> dict[str, Any]:
        """This bucket (or another) as Kinto holds it: {} when it does not exist."""
        name = bucket or self.bucket
        return dict(dump_buckets(self.kinto, [name])["buckets"].get(name, {}))


@pytest.fixture
def small(
    kinto: servers.KintoServer,
    storage_area: Callable[[str], Backend],
    engine_api: Callable[..., TestClient],
    tmp_path: Path,
) -> Iterator[Small]:
    bucket = f"small-{uuid.uuid4().hex[:10]}"
    shape = Shape({bucket: [120, 80, 0]}, {bucket: 1})
    seed(kinto, shape)
    area = storage_area("local")
    exports = tmp_path / "exports"
    api = engine_api(storage_allow=(area.allow, f"file://{exports}"))
    ctx = root_ctxs(api, auth_of(kinto))[bucket]
    yield Small(kinto, bucket, shape, api, area, ctx, exports)
    delete_buckets(kinto, [name for name in (bucket, f"{bucket}-copy") if exists(kinto, name)])


def exists(kinto: servers.KintoServer, bucket: str) -> bool:
    with kinto_client(kinto.url, kinto.admin) as client:
        return client.get(f"/buckets/{bucket}").status_code == 200


@pytest.fixture
def backed_up(small: Small) -> tuple[Small, Place, dict[str, Any]]:
    """small, a complete backup of its bucket, and the bucket as it was backed up."""
    original = small.dump()
    place = small.area.place("backup-1")
    small.backup(place)
    return small, place, original


# --------------------------------------------------------------------------- 2, 3. starting


def test_starting_a_backup_twice_with_one_task_uuid_runs_one_task(
    small: Small, engine_api: Callable[..., TestClient]
) -> None:
    place = small.area.place("twice")
    body = small.body(place, options={"with_permissions": True})
    first = start_task(small.api, "/api/backup", body)
    again = start_task(small.api, "/api/backup", body)
    # a retry that lands on another replica finds the task by its record
    replica = start_task(engine_api(storage_allow=(small.area.allow,)), "/api/backup", body)
    for task in (first, again, replica):
        assert task.status == 200, task.answer
        assert task.answer["workingPath"] == place.url
        assert task.answer["ctx"]["kind"] == first.answer["ctx"]["kind"] == "backup@kinto"
        assert task.answer["ctx"]["taskUuid"] == body["taskUuid"]
    finish(small.api, [again])
    assert_done((again.status, again.answer))

    assert [path for path in place.files() if path.startswith(".engine/")] == [
        f".engine/tasks/{body['taskUuid']}.json"
    ]
    assert check_manifest(place)["taskUuid"] == body["taskUuid"]
    assert unlisted(place) == []
    after = start_task(small.api, "/api/backup", body)  # its record says DONE: that answer
    assert (after.status, after.answer["status"]) == (200, "DONE")


def test_a_new_backup_task_at_a_url_holding_a_complete_backup_is_refused(
    backed_up: tuple[Small, Place, dict[str, Any]],
) -> None:
    small, place, _ = backed_up
    manifest, files = place.read("manifest.json"), place.files()
    result = run_task(small.api, "/api/backup", small.body(place))
    assert_error(result, 400, "BACKUP_EXISTS")
    assert place.read("manifest.json") == manifest
    assert [path for path in place.files() if not path.startswith(".engine/")] == [
        path for path in files if not path.startswith(".engine/")
    ]


# --------------------------------------------------------------------------- 4. damaged backups


def corrupt_the_biggest_object(place: Place) -> str:
    entry = max(place.manifest()["objects"], key=lambda entry: entry["size"])
    flip_a_byte(place, entry["path"])
    return str(entry["path"])


def remove_the_manifest(place: Place) -> str:
    place.remove("manifest.json")
    return "manifest.json"


def garble_the_manifest(place: Place) -> str:
    place.write("manifest.json", b'{"format": 1, "objects": [')
    return "manifest.json"


def remove_the_biggest_object(place: Place) -> str:
    entry = max(place.manifest()["objects"], key=lambda entry: entry["size"])
    place.remove(entry["path"])
    return str(entry["path"])


def name_an_unknown_type(place: Place) -> str:
    document = place.manifest()
    document["objects"][-1]["type"] = "folder"
    place.write("manifest.json", json.dumps(document).encode())
    return str(document["objects"][-1]["path"])


@pytest.mark.parametrize(
    ("damage", "code"),
    [
        (corrupt_the_biggest_object, "CHECKSUM_MISMATCH"),
        (remove_the_biggest_object, "BACKUP_DAMAGED"),
        (name_an_unknown_type, "BACKUP_DAMAGED"),
        (remove_the_manifest, "INCOMPLETE_BACKUP"),
        (garble_the_manifest, "INCOMPLETE_BACKUP"),
    ],
)
def test_a_damaged_backup_is_refused_before_anything_is_written(
    backed_up: tuple[Small, Place, dict[str, Any]],
    damage: Callable[[Place], str],
    code: str,
) -> None:
    small, place, _ = backed_up
    delete_buckets(small.kinto, [small.bucket])  # so that any write at all would show
    named = damage(place)
    status, answer = small.restore(place)
    assert (status, answer["error"]["code"]) == (400, code), answer
    assert named in answer["error"]["description"]
    assert small.dump() == {}


# --------------------------------------------------------------------------- 5, 9. storage, secrets


def test_storage_refusals_and_a_failed_restore_never_show_a_secret(
    kinto_factory: Callable[..., servers.KintoServer],
    storage_area: Callable[[str], Backend],
    engine_api: Callable[..., TestClient],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    kinto = kinto_factory(admin_password=KINTO_SECRET)
    shape = Shape({"secrets": [40, 20]}, {"secrets": 1})
    seed(kinto, shape)
    area = storage_area("s3")  # its options carry S3_SECRET
    missing = f"s3://missing-{uuid.uuid4().hex[:12]}"
    api = engine_api(storage_allow=(area.allow, missing, f"file://{tmp_path}/allowed"))
    ctx = root_ctxs(api, auth_of(kinto))["secrets"]
    trail: list[Any] = []

    def task(path: str, storage: dict[str, Any], **extra: Any) -> tuple[int, Any]:
        body = {"auth": auth_of(kinto), "taskUuid": new_uuid(), "storage": storage, "ctx": ctx}
        return run_task(api, path, body | extra, trail=trail)

    url = f"{missing}/backups/one"
    description = assert_error(
        task("/api/backup", {"url": url, "options": area.options}), 503, "STORAGE_ERROR"
    )
    assert url in description
    assert not area.fs.exists(missing.removeprefix("s3://")), "the engine made the bucket"

    outside = tmp_path / "elsewhere" / "one"
    assert_error(task("/api/backup", {"url": f"file://{outside}"}), 403, "STORAGE_NOT_ALLOWED")
    assert not outside.parent.exists()

    place = area.place("secret-flow")
    assert_done(task("/api/backup", place.storage(), options={"with_permissions": True}))
    delete_buckets(kinto, ["secrets"])
    path = corrupt_the_biggest_object(place)
    failed = task("/api/restore", place.storage(), scenario="IN_PLACE")
    assert path in assert_error(failed, None, "CHECKSUM_MISMATCH")
    assert dump_all(kinto) == {"buckets": {}}

    assert any(record.name.startswith("engine") for record in caplog.records)
    logs = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    stored = area.everything()
    assert any(name.endswith(".json") and "/.engine/tasks/" in name for name in stored)
    for secret in (KINTO_SECRET, S3_SECRET):
        assert secret not in logs
        assert secret not in json.dumps(trail)
        for name, data in stored.items():
            assert secret not in readable(name, data), name


# --------------------------------------------------------------------------- 6. restore options


def test_in_place_restore_skips_or_overwrites_a_changed_record_and_brings_back_a_deleted_one(
    backed_up: tuple[Small, Place, dict[str, Any]],
) -> None:
    small, place, original = backed_up
    records = f"/buckets/{small.bucket}/collections/c00/records"
    changed, deleted = record_id(small.bucket, 0, 3), record_id(small.bucket, 0, 4)
    with kinto_client(small.kinto.url, small.kinto.admin) as client:
        client.put(f"{records}/{changed}", json={"data": {"title": "changed"}}).raise_for_status()
        client.delete(f"{records}/{deleted}").raise_for_status()
    edited = small.dump()

    assert_done(small.restore(place, options={"conflict": "skip"}))
    skipped = small.dump()
    kept = skipped["collections"]["c00"]["records"]
    assert_same(kept[changed], edited["collections"]["c00"]["records"][changed])
    assert_same(kept[deleted], original["collections"]["c00"]["records"][deleted])
    kept[changed] = original["collections"]["c00"]["records"][changed]
    assert_same(skipped, original)

    assert_done(small.restore(place, options={"conflict": "overwrite"}))
    overwritten = small.dump()
    # Kinto keeps a supplied last_modified when a PUT creates an object, but gives an update a
    # new one: an overwritten object carries the backed-up data with a fresh last_modified
    assert_same(without_last_modified(overwritten), without_last_modified(original))


def test_as_new_restore_writes_the_bucket_under_the_new_name(
    backed_up: tuple[Small, Place, dict[str, Any]],
) -> None:
    small, place, original = backed_up
    new = f"{small.bucket}-copy"
    assert_done(small.restore(place, "AS_NEW", options={"new_bucket": new}))
    copy = small.dump(new)
    assert copy, f"no bucket {new}"
    assert copy["data"]["id"] == new
    assert sorted(copy["groups"]) == sorted(original["groups"])
    assert sorted(copy["collections"]) == sorted(original["collections"])
    for cid, collection in original["collections"].items():
        want = {rid: record["data"] for rid, record in collection["records"].items()}
        got = {rid: record["data"] for rid, record in copy["collections"][cid]["records"].items()}
        assert_same(without_last_modified(got), without_last_modified(want))
        for rid, record in collection["records"].items():
            copied = copy["collections"][cid]["records"][rid]
            assert copied["permissions"].get("read") == record["permissions"].get("read")
    assert_same(small.dump(), original)  # the backed-up bucket is left alone


def test_a_dry_run_restore_reports_its_writes_and_writes_nothing(
    backed_up: tuple[Small, Place, dict[str, Any]],
) -> None:
    small, place, _ = backed_up
    delete_buckets(small.kinto, [small.bucket])
    answer = assert_done(small.restore(place, dryRun=True))
    report = answer["dryRun"]
    assert report["writes"] >= small.shape.record_count
    assert report["requests"]
    for request in report["requests"]:
        assert {"method", "path", "resource", "resourceType"} <= request.keys(), request
    # named as error entries name it: the mapped name, not the ctx values joined
    collections = [r for r in report["requests"] if r["resourceType"] == "collection"]
    assert collections and all("/" not in r["resource"] for r in collections), collections
    assert "PUT" in {request["method"] for request in report["requests"]}
    assert any(small.bucket in request["path"] for request in report["requests"])
    assert small.dump() == {}


# --------------------------------------------------------------------------- 7. export, cleanup


def test_export_writes_plain_json_and_cleanup_removes_the_backup_and_nothing_beside_it(
    backed_up: tuple[Small, Place, dict[str, Any]],
) -> None:
    small, place, _ = backed_up
    destination = small.exports / "export-1"
    body = small.body(place, destination={"url": f"file://{destination}"})
    assert_done(run_task(small.api, "/api/export", body))

    files = [path for path in destination.rglob("*") if path.is_file()]
    exported = sorted(path.relative_to(destination).as_posix() for path in files)
    assert "manifest.json" in exported
    assert not [path for path in exported if path.startswith(".engine")]
    documents: list[Any] = []
    for relative in exported:
        assert relative.endswith((".json", ".jsonl")), relative
        documents += json_documents((destination / relative).read_bytes(), relative)
    counts = count_ids(documents, small.shape.record_ids())
    assert set(counts.values()) == {1}, "every record is exported exactly once"

    sibling = small.area.place("backup-1-sibling")
    sibling.write("keep.txt", b"another backup's file")
    assert_done(run_task(small.api, "/api/cleanup", small.body(place)))
    assert place.files() == []
    assert sibling.read("keep.txt") == b"another backup's file"
    assert (destination / "manifest.json").is_file()


# --------------------------------------------------------------------------- 8. kill and resume


def test_a_backup_killed_mid_way_is_resumed_by_another_engine_process(
    kinto_factory: Callable[..., servers.KintoServer],
    engine_process: Callable[..., servers.Server],
    storage_area: Callable[[str], Backend],
) -> None:
    shape = Shape({"resume": [500] * 6}, {"resume": 1})
    source = kinto_factory(paginate_by=50, admin_password=KINTO_SECRET)
    target = kinto_factory(paginate_by=50, admin_password=KINTO_SECRET)
    before = seed(source, shape)
    area = storage_area("local")
    place = area.place("resume")
    env = {
        "ENGINE_STORAGE_ALLOW": area.allow,
        "ENGINE_HEARTBEAT_SECONDS": "0.5",
        "ENGINE_TASK_STALE_SECONDS": "2",
        "ENGINE_LOG_LEVEL": "DEBUG",
    }
    first = engine_process(**env)
    with httpx.Client(base_url=first.url, trust_env=False, timeout=30) as http:
        ctx = root_ctxs(http, auth_of(source))["resume"]
        body: dict[str, Any] = {
            "auth": auth_of(source),
            "taskUuid": new_uuid(),
            "storage": place.storage(),
            "ctx": ctx,
            "options": {"with_permissions": True},
        }
        task = start_task(http, "/api/backup", body)
        wait_until_mid_way(http, task)
    first.process.kill()
    first.process.wait()

    second = engine_process(**env)
    with httpx.Client(base_url=second.url, trust_env=False, timeout=30) as http:
        finish(http, [task], timeout=BIG_TIMEOUT)
        assert_done((task.status, task.answer))
        check_manifest(place)
        counts = count_ids(backup_documents(place), shape.record_ids())
        assert set(counts.values()) == {1}, "every record is backed up exactly once"
        restore = {
            "auth": auth_of(target),
            "taskUuid": new_uuid(),
            "storage": place.storage(),
            "ctx": ctx,
            "scenario": "OTHER_SOURCE",
        }
        trail: list[Any] = [answer for _, answer in task.answers]
        assert_done(run_task(http, "/api/restore", restore, timeout=BIG_TIMEOUT, trail=trail))

    after = dump_buckets(target, ["resume"])  # fails on an id listed twice
    assert_same(after, before)
    assert count_records(after) == shape.record_count
    logs = first.log_path.read_text() + second.log_path.read_text()
    assert body["taskUuid"] in logs  # the task's lines were logged, and carry its id
    assert KINTO_SECRET not in logs
    assert KINTO_SECRET not in json.dumps(trail)
    for name, data in area.everything().items():
        assert KINTO_SECRET not in readable(name, data), name
    # the killed process's half-written objects must not outlive the resumed task
    assert unlisted(place) == []


def wait_until_mid_way(http: httpx.Client, task: Running, timeout: float = 60.0) -> None:
    """Poll until the task runs with at least one resource done and not all of them."""
    for _ in range(int(timeout / 0.05)):
        assert not task.finished, f"the backup ended before it could be killed: {task.answer}"
        progress = task.answer.get("progress") or {}
        done, total = progress.get("done", 0), progress.get("total")
        if task.answer["status"] == "RUNNING" and done >= 1 and (total is None or done < total):
            return
        time.sleep(0.05)
        task.poll(http)
    raise AssertionError(f"the backup never got mid-way: {task.answer}")
