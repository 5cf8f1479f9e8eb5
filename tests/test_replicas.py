"""One runner per task across replicas: `engine serve` processes sharing one S3 bucket (moto)
and one Kinto. Many status calls for a stale task resume it once; an owner paused past
staleness while another replica takes over writes nothing more when it wakes."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import fsspec.asyn
import httpx
import pytest

from scripts import servers
from tests.taskflow import (
    Backend,
    Place,
    Running,
    Shape,
    assert_done,
    auth_of,
    backup_documents,
    check_manifest,
    count_ids,
    finish,
    new_uuid,
    post,
    root_ctxs,
    seed,
    start_task,
    status_body,
)
from tests.test_tasks_api import wait_until_mid_way

pytestmark = pytest.mark.e2e

SHAPE = Shape({"replicas": [300] * 6}, {"replicas": 1})
STALE_SECONDS = 2.0
ENV = {"ENGINE_HEARTBEAT_SECONDS": "0.5", "ENGINE_TASK_STALE_SECONDS": str(STALE_SECONDS)}
STATUS_CALLS = 6  # per replica, all at once
TIMEOUT = 180.0


@contextmanager
def http(server: servers.Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, trust_env=False, timeout=60) as client:
        yield client


def seeded(
    kinto_factory: Callable[..., servers.KintoServer],
    storage_area: Callable[[str], Backend],
) -> tuple[servers.KintoServer, Backend, dict[str, str]]:
    """A Kinto holding SHAPE, a fresh bucket, and the replicas' environment to use it."""
    source = kinto_factory(paginate_by=50)
    seed(source, SHAPE)
    area = storage_area("s3")
    return source, area, ENV | {"ENGINE_STORAGE_ALLOW": area.allow}


def start_backup(
    server: servers.Server, source: servers.KintoServer, place: Place
) -> tuple[Running, dict[str, Any]]:
    """A backup of SHAPE's bucket started on server, polled until it is mid-way."""
    with http(server) as client:
        body = {
            "auth": auth_of(source),
            "taskUuid": new_uuid(),
            "storage": place.storage(),
            "ctx": root_ctxs(client, auth_of(source))["replicas"],
        }
        task = start_task(client, "/api/backup", body)
        wait_until_mid_way(client, task)
    return task, body


def resumes(*engines: servers.Server) -> int:
    """How many times the engines' logs say they resumed a task."""
    return sum(engine.log_path.read_text().count("resuming task") for engine in engines)


def stored_record(place: Place, task_uuid: str) -> dict[str, Any]:
    data = json.loads(place.read(f".engine/tasks/{task_uuid}.json"))
    assert isinstance(data, dict)
    return data


def wait_for_units(place: Place, task_uuid: str, timeout: float = 60.0) -> None:
    """Wait until the stored record lists finished units (a resume then finds them)."""
    deadline = time.monotonic() + timeout
    while not stored_record(place, task_uuid)["units"]:
        assert time.monotonic() < deadline, "no unit was ever recorded"
        time.sleep(0.05)


def check_complete(place: Place, task_uuid: str) -> None:
    """A complete backup of SHAPE, each record once, its record counting each byte once."""
    manifest = check_manifest(place)
    counts = count_ids(backup_documents(place), SHAPE.record_ids())
    assert set(counts.values()) == {1}, "every record is backed up exactly once"
    stored = sum(entry["size"] for entry in manifest["objects"])
    assert stored_record(place, task_uuid)["progress"]["bytes"] == stored


def test_many_status_calls_at_two_replicas_resume_a_stale_task_exactly_once(
    kinto_factory: Callable[..., servers.KintoServer],
    engine_process: Callable[..., servers.Server],
    storage_area: Callable[[str], Backend],
) -> None:
    source, area, env = seeded(kinto_factory, storage_area)
    place = area.place("stale")
    first = engine_process(**env)
    task, body = start_backup(first, source, place)
    wait_for_units(place, body["taskUuid"])
    first.process.kill()
    first.process.wait()
    replicas = [engine_process(**env), engine_process(**env)]
    time.sleep(STALE_SECONDS + 0.5)  # other processes: their clocks cannot be injected

    status = status_body(body, task.answer)
    clients = [httpx.Client(base_url=r.url, trust_env=False, timeout=60) for r in replicas]
    with ThreadPoolExecutor(2 * STATUS_CALLS) as pool:
        calls = [pool.submit(post, c, "/api/status", status) for c in clients * STATUS_CALLS]
        answers = [call.result() for call in calls]
    for client in clients:
        client.close()

    assert [code for code, _ in answers] == [200] * len(answers), answers
    with http(replicas[0]) as client:
        finish(client, [task], timeout=TIMEOUT)
    assert_done((task.status, task.answer))
    assert resumes(*replicas) == 1
    record = stored_record(place, body["taskUuid"])
    assert (record["status"], record["epoch"]) == ("DONE", 2)
    check_complete(place, body["taskUuid"])


def enable_versions(area: Backend) -> None:
    area.fs.call_s3(
        "put_bucket_versioning",
        Bucket=area.base,
        VersioningConfiguration={"Status": "Enabled"},
    )


def versions(area: Backend, place: Place, relative: str) -> list[bytes]:
    """Every stored version of an object, oldest first."""
    key = f"{place.root}/{relative}".removeprefix(f"{area.base}/")
    listed = area.fs.call_s3("list_object_versions", Bucket=area.base, Prefix=key)
    found = [v for v in listed.get("Versions", []) if v["Key"] == key]
    contents = []
    for version in reversed(found):  # S3 lists a key's versions newest first
        which = {"Bucket": area.base, "Key": key, "VersionId": version["VersionId"]}
        got = area.fs.call_s3("get_object", **which)
        contents.append(fsspec.asyn.sync(area.fs.loop, got["Body"].read))
    return contents


def test_an_owner_paused_past_staleness_writes_nothing_after_another_replica_took_over(
    kinto_factory: Callable[..., servers.KintoServer],
    engine_process: Callable[..., servers.Server],
    storage_area: Callable[[str], Backend],
) -> None:
    source, area, env = seeded(kinto_factory, storage_area)
    enable_versions(area)
    place = area.place("paused")
    paused, replica = engine_process(**env), engine_process(**env)
    task, body = start_backup(paused, source, place)
    record_path = f".engine/tasks/{body['taskUuid']}.json"
    os.kill(paused.process.pid, signal.SIGSTOP)
    try:
        time.sleep(STALE_SECONDS + 0.5)
        with http(replica) as client:
            finish(client, [task], timeout=TIMEOUT)
        assert_done((task.status, task.answer))
    finally:
        os.kill(paused.process.pid, signal.SIGCONT)
    # its heartbeat is overdue, its fetches go on: whatever it would still write lands by now
    time.sleep(2 * STALE_SECONDS + 1)

    records = [json.loads(data) for data in versions(area, place, record_path)]
    statuses = [record["status"] for record in records]
    assert statuses[-1] == "DONE" and statuses.count("DONE") == 1, statuses
    taken = next(i for i, record in enumerate(records) if record["epoch"] == 2)
    first_owner = records[0]["owner"]
    assert all(record["owner"] != first_owner for record in records[taken:])
    assert all(record["epoch"] == 2 for record in records[taken:])
    assert len(versions(area, place, "manifest.json")) == 1
    assert resumes(paused, replica) == 1
    check_complete(place, body["taskUuid"])
    assert "another process took it over" in paused.log_path.read_text()
