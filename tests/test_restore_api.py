"""End to end through the module API: what a restore tells the platform and its templates. Its
counts by outcome in every status answer (a resumed restore's included), `scenario` in restore
templates, `conflict.body` telling a "duplicate id" 500 from a real one, `idempotent` steps, and
error entries naming a resource by its name and type; against a real Kinto (412 conflicts) and
the notes server (tests/notes_server.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient

from engine.api.app import create_app
from engine.api.wire import RESPONSES
from engine.language.definition import Definition
from engine.language.loader import load_module, validate
from engine.settings import Settings
from engine.tasks.restore import OUTCOMES
from scripts import servers
from tests import notes_server
from tests.notes_server import NotesServer
from tests.taskflow import (
    KINTO_MODULE,
    Backend,
    Place,
    Shape,
    assert_done,
    auth_of,
    delete_buckets,
    kinto_client,
    new_uuid,
    post,
    record_id,
    root_ctxs,
    run_module_task,
    run_task,
    seed,
    status_body,
)

pytestmark = pytest.mark.e2e

NOTES_MODULE: dict[str, Any] = yaml.safe_load(
    """
module: {id: notes, name: Notes, version: 1.0.0}
capabilities: {auth: [AUTH_SETTINGS], features: [BULK_OPERATIONS], storage: [STORAGE_SERVICE]}
auth:
  form:
    columns: [{fields: [{id: url, type: text, label: Server URL, required: true}]}]
    payload: {url: url}
  check: {request: {path: /shelves}}
connection:
  baseUrl: "{{ settings.url }}"
  # a real 500 is retried, so a conflict taken at once shows in the server's count of POSTs
  retry: {attempts: 2, statuses: [500, 503], backoff: {initial: 0.01, max: 0.02}}
resources:
  shelf:
    list: {request: {path: /shelves}, records: items}
    resource: {id: "{{ item.id }}", name: "{{ item.title }}"}
    ctx: {shelf: "{{ item.id }}"}
  book:
    parent: shelf
    list: {request: {path: "/shelves/{{ ctx.shelf }}/books"}, records: items}
    resource: {id: "{{ ctx.shelf }}/{{ item.id }}", name: "{{ item.title }}"}
    ctx: {book: "{{ item.id }}"}
    backup:
      - id: notes
        fetch: collection
        required: false
        list: {request: {path: "/books/{{ ctx.book }}/notes"}, records: items}
        to: "{{ ctx.shelf }}/{{ ctx.book }}/notes.jsonl"
    restore:
      - from: notes
        when: "{{ record.id != 'skipme' }}"
        idempotent: true  # a note carries its own id: the SaaS refuses a second one
        request:
          method: POST
          path: "/books/{{ target.book }}/notes"
          headers: {X-Scenario: "{{ scenario.id or '-' }}:{{ scenario.kind }}"}
          body: "{{ record }}"
        conflict: {body: duplicate id}
restore:
  scenarios:
    - {id: IN_PLACE, kind: inPlace, name: Restore in place}
"""
)


def counts(
    written: int = 0, conflicts: int = 0, skipped: int = 0, failed: int = 0
) -> dict[str, int]:
    return {"written": written, "conflicts": conflicts, "skipped": skipped, "failed": failed}


def test_the_wire_shape_of_restore_counts_names_every_outcome():
    shape = RESPONSES["status"]["properties"]["restore"]
    assert shape["required"] == list(OUTCOMES) == list(counts())


# --------------------------------------------------------------------------- the notes server


@pytest.fixture
def notes(tmp_path: Path) -> Iterator[tuple[NotesServer, Definition]]:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "module.yaml").write_text(yaml.safe_dump(NOTES_MODULE), encoding="utf-8")
    assert [str(problem) for problem in validate([folder])] == []  # idempotent: no warning
    with notes_server.serve() as server:
        yield server, load_module(folder)


@contextmanager
def engine(definition: Definition, area: Backend) -> Iterator[TestClient]:
    """An in-process engine serving definition, tasks running between calls."""
    app = create_app(definition, Settings(storage_allow=(area.allow,)))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def notes_body(server: NotesServer, place: Place, **extra: Any) -> dict[str, Any]:
    auth = {"settings": {"url": server.url}}
    return {"auth": auth, "taskUuid": new_uuid(), "storage": place.storage()} | extra


def shelf(api: TestClient, server: NotesServer, shelf_id: str) -> dict[str, Any]:
    ctx: dict[str, Any] = root_ctxs(api, {"settings": {"url": server.url}})[shelf_id]
    return ctx


def scenarios_sent(server: NotesServer) -> set[str]:
    return {r.headers["x-scenario"] for r in server.received() if r.method == "POST"}


def test_backup_errors_name_a_resource_by_its_mapped_or_given_name_and_its_type(
    notes: tuple[NotesServer, Definition], storage_area: Callable[[str], Backend]
) -> None:
    server, definition = notes
    area = storage_area("local")
    place = area.place("named")
    with engine(definition, area) as api:
        kitchen, broken = shelf(api, server, "s1"), shelf(api, server, "s2")
        items = [{"ctx": kitchen}, {"ctx": broken, "name": "Garage shelf"}]
        body = notes_body(server, place, items=items)
        status, answer = run_module_task(api, "/api/bulk/backup", body, "notes")

    assert status == 502, answer  # the garage shelf's books could not be listed: incomplete
    named = sorted((e["resourceType"], e["resource"]) for e in answer["error"]["payload"]["errors"])
    # the requested shelf by the name the platform gave it, the walked book by its mapped title
    assert named == [("book", "Torn book"), ("shelf", "Garage shelf")]


def test_a_restore_counts_its_writes_tells_a_duplicate_id_500_from_a_real_one_and_sees_the_scenario(
    notes: tuple[NotesServer, Definition], storage_area: Callable[[str], Backend]
) -> None:
    server, definition = notes
    area = storage_area("local")
    place = area.place("kitchen")
    with engine(definition, area) as api:
        kitchen = shelf(api, server, "s1")
        backup = notes_body(server, place, ctx=kitchen)
        done = assert_done_module(run_module_task(api, "/api/backup", backup, "notes"), 1)
        assert "restore" not in done  # counts belong to restores
        server.delete("b2", "n4")
        server.clear()
        server.posts.clear()
        restore = notes_body(server, place, ctx=kitchen, scenario="IN_PLACE")
        status, answer = run_module_task(api, "/api/restore", restore, "notes")

    assert status == 200 and answer["status"] == "DONE", answer
    # n1, n2, n3 exist (500 "duplicate id"), n4 is written again, skipme is left out by `when`,
    # explode fails with a real 500
    assert answer["restore"] == counts(written=1, conflicts=3, skipped=1, failed=1)
    [error] = answer["errors"]
    # named as the backup mapped it (the manifest's resources table), not by its ctx values
    assert (error["code"], error["resourceType"], error["resource"]) == (
        "SAAS_ERROR",
        "book",
        "First book",
    )
    assert "HTTP 500 (gave up after 2 attempts)" in error["description"]
    # a conflict is taken at once, a real 500 is retried
    assert sorted(server.posts) == ["explode", "explode", "n1", "n2", "n3", "n4"]
    assert scenarios_sent(server) == {"IN_PLACE:inPlace"}

    server.clear()
    with engine(definition, area) as api:
        again = notes_body(server, place, ctx=kitchen)  # no scenario: the module's own restore
        status, answer = run_module_task(api, "/api/restore", again, "notes")
    assert status == 200 and answer["restore"] == counts(conflicts=4, skipped=1, failed=1), answer
    assert scenarios_sent(server) == {"-:inPlace"}


def assert_done_module(result: tuple[int, Any], errors: int) -> dict[str, Any]:
    """The final answer of a task that finished DONE with this many non-fatal errors."""
    status, answer = result
    assert status == 200 and answer["status"] == "DONE", answer
    assert len(answer["errors"]) == errors, answer["errors"]
    return dict(answer)


def test_a_resumed_restore_counts_what_its_finished_objects_recorded_and_what_it_redoes(
    notes: tuple[NotesServer, Definition], storage_area: Callable[[str], Backend]
) -> None:
    server, definition = notes
    area = storage_area("local")
    place = area.place("resumed")
    with engine(definition, area) as api:
        kitchen = shelf(api, server, "s1")
        assert_done_module(
            run_module_task(api, "/api/backup", notes_body(server, place, ctx=kitchen), "notes"), 1
        )
        restore = notes_body(server, place, ctx=kitchen, scenario="IN_PLACE")
        status, first = run_module_task(api, "/api/restore", restore, "notes")
    assert status == 200 and first["restore"] == counts(conflicts=4, skipped=1, failed=1), first

    # as if the process died while writing book b2: its unit unfinished, and a heartbeat having
    # saved counts that include some of its writes
    path = f".engine/tasks/{restore['taskUuid']}.json"
    record = json.loads(place.read(path))
    assert set(counts()) <= record["units"]["s1/b1/notes.jsonl.zst"].keys()
    del record["units"]["s1/b2/notes.jsonl.zst"]
    record |= {"status": "RUNNING", "owner": None, "finishedAt": None}
    record["restore"] = counts(written=7, conflicts=9)
    place.write(path, json.dumps(record).encode())
    server.posts.clear()

    with engine(definition, area) as replica:
        status, answer = post(replica, "/api/status", status_body(restore, first))
        while status == 200 and answer["status"] != "DONE":
            status, answer = post(replica, "/api/status", status_body(restore, answer))
    assert status == 200, answer
    assert answer["restore"] == counts(conflicts=4, skipped=1, failed=1), answer
    assert sorted(server.posts) == ["n3", "n4"]  # only b2 was written again


# --------------------------------------------------------------------------- Kinto


def kinto_with_scenario(folder: Path) -> Definition:
    """modules/kinto whose group writes say which kind of scenario restored them."""
    raw = yaml.safe_load((KINTO_MODULE / "module.yaml").read_text(encoding="utf-8"))
    data = raw["resources"]["group"]["restore"][0]["request"]["body"]
    data["data"] = "{{ dict(record.data, id=target.group, restored_as=scenario.kind) }}"
    folder.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    (folder / "module.yaml").write_text(text, encoding="utf-8")
    return load_module(folder)


def test_a_kinto_restore_counts_412_conflicts_and_its_templates_see_the_scenario(
    kinto: servers.KintoServer, storage_area: Callable[[str], Backend], tmp_path: Path
) -> None:
    bucket = f"counted-{uuid.uuid4().hex[:10]}"
    seed(kinto, Shape({bucket: [120, 80, 0]}, {bucket: 1}))
    area = storage_area("local")
    place = area.place("kinto")
    auth = auth_of(kinto)
    base = f"/buckets/{bucket}"
    try:
        with engine(kinto_with_scenario(tmp_path / "kinto"), area) as api:
            ctx = root_ctxs(api, auth)[bucket]

            def task(path: str, **extra: Any) -> dict[str, Any]:
                body = {"auth": auth, "taskUuid": new_uuid(), "storage": place.storage()}
                return assert_done(run_task(api, path, body | {"ctx": ctx} | extra))

            task("/api/backup", options={"with_permissions": True})
            with kinto_client(kinto.url, kinto.admin) as client:
                client.delete(f"{base}/groups/g00").raise_for_status()
                client.delete(f"{base}/collections/c01/records/{record_id(bucket, 1, 7)}")
            in_place = task("/api/restore", scenario="IN_PLACE")
            as_new = task(
                "/api/restore", scenario="AS_NEW", options={"new_bucket": f"{bucket}-copy"}
            )
            with kinto_client(kinto.url, kinto.admin) as client:
                groups = {
                    name: client.get(f"/buckets/{name}/groups/g00").json()["data"]
                    for name in (bucket, f"{bucket}-copy")
                }
    finally:
        delete_buckets(kinto, [bucket, f"{bucket}-copy"])

    # 1 bucket, 3 collections, 200 records, 1 group: what still existed answered 412
    assert in_place["restore"] == counts(written=2, conflicts=203)
    assert as_new["restore"] == counts(written=205)
    assert groups[bucket]["restored_as"] == "inPlace"
    assert groups[f"{bucket}-copy"]["restored_as"] == "asNew"
