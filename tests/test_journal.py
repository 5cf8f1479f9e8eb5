"""engine.tasks.journal: task record paths and shapes, staleness, and the live Journal (errors,
saves on a fake clock, heartbeats, finish, release, leases) against real memory:// and local
storage."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.clock import iso
from engine.errors import LeaseLost, RequestError, SaasAuthError, StorageError
from engine.language import model
from engine.redaction import MASK, guarding
from engine.storage import Storage
from engine.tasks.journal import (
    MAX_ERRORS,
    SAVE_EVERY,
    Journal,
    check_record,
    is_stale,
    new_owner,
    new_record,
    record_path,
    take_lease,
)
from tests.taskparts import CLOCK_START, FakeClock, local_storage, memory_storage

pytestmark = pytest.mark.anyio

UUID = "0b6c1f2e-9d1a-4c55-b2a1-3f4e5d6c7b8a"
START = CLOCK_START
MODULE = model.build(model.Identity, {"id": "shelf", "name": "Shelf", "version": "1.2.3"})
STALE_SECONDS = 30.0


@pytest.fixture
def storage() -> Iterator[Storage]:
    with memory_storage() as opened:
        yield opened


class Stop(Exception):
    """Ends a heartbeat loop from inside its clock (beat() only catches StorageError)."""


def record(owner: str | None = "host/1/abcd", **changes: Any) -> dict[str, Any]:
    made = new_record(UUID, "backup", module=MODULE, request={"items": []}, owner="x", now=START)
    return made | {"owner": owner} | changes


def journal_on(storage: Storage, clock: FakeClock, **changes: Any) -> Journal:
    return Journal(storage, record(**changes), clock)


async def stored(storage: Storage) -> dict[str, Any]:
    return check_record(await storage.read_json(record_path(UUID)), UUID)


# --------------------------------------------------------------------------- paths and shapes


@pytest.mark.parametrize("task_uuid", [UUID, "a", "Task_1-b", "9" * 128])
def test_a_record_path_lies_in_the_engines_tasks_folder(task_uuid: str):
    assert record_path(task_uuid) == f".engine/tasks/{task_uuid}.json"


@pytest.mark.parametrize(
    "task_uuid",
    ["", "-leading-dash", "_leading", "a/b", "../up", "a.b", "sp ace", "ok\n", "9" * 129],
)
def test_a_record_path_refuses_a_uuid_that_could_leave_the_folder_or_is_too_long(task_uuid: str):
    with pytest.raises(RequestError) as caught:
        record_path(task_uuid)
    assert caught.value.message == (
        "taskUuid must be 1 to 128 letters, digits, '-' or '_', starting with a letter or digit"
    )


def test_a_new_record_is_pending_owned_and_keeps_a_copy_of_the_request():
    request = {"items": [{"type": "bucket", "values": {"bucket": "b1"}}], "options": {}}
    made = new_record(UUID, "restore", module=MODULE, request=request, owner="me", now=START)

    stamp = iso(START)
    assert made == {
        "format": 1,
        "taskUuid": UUID,
        "kind": "restore",
        "module": {"id": "shelf", "version": "1.2.3"},
        "request": request,
        "status": "PENDING",
        "owner": "me",
        "epoch": 1,
        "heartbeatAt": stamp,
        "createdAt": stamp,
        "updatedAt": stamp,
        "finishedAt": None,
        "progress": {"done": 0, "total": None, "bytes": 0},
        "units": {},
        "errors": [],
        "error": None,
    }
    assert made["request"] is not request
    assert check_record(made, UUID) is made


def test_owners_of_one_process_differ_only_in_their_random_part():
    first, second = new_owner(), new_owner()

    assert first != second
    assert first.rsplit("/", 1)[0] == second.rsplit("/", 1)[0]


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "a record",
        {key: value for key, value in record().items() if key != "units"},
        {key: value for key, value in record().items() if key != "progress"},
        record(taskUuid="another-task"),
        record(status="PAUSED"),
        record(units=[]),
        record(errors={}),
    ],
    ids=[
        "null",
        "list",
        "string",
        "no units",
        "no progress",
        "another task",
        "unknown status",
        "units a list",
        "errors a mapping",
    ],
)
def test_a_malformed_record_is_a_storage_error_naming_the_task_and_its_path(data: Any):
    with pytest.raises(StorageError) as caught:
        check_record(data, UUID)
    assert caught.value.message == f"the record of task {UUID} is malformed"
    assert caught.value.path == f".engine/tasks/{UUID}.json"


# --------------------------------------------------------------------------- staleness


def test_a_recent_heartbeat_is_not_stale_up_to_the_limit_itself():
    beating = record(heartbeatAt=iso(START))

    assert not is_stale(beating, START + 1, STALE_SECONDS)
    assert not is_stale(beating, START + STALE_SECONDS, STALE_SECONDS)
    assert is_stale(beating, START + STALE_SECONDS + 0.01, STALE_SECONDS)


def test_a_released_record_is_stale_however_fresh_its_heartbeat():
    assert is_stale(record(owner=None, heartbeatAt=iso(START)), START, STALE_SECONDS)


@pytest.mark.parametrize("beat", [None, "", "yesterday", 12, "2024-02-30T00:00:00Z"])
def test_a_missing_or_unreadable_heartbeat_is_stale(beat: Any):
    assert is_stale(record(heartbeatAt=beat), START, STALE_SECONDS)


def test_a_record_without_heartbeat_or_owner_keys_is_stale():
    assert is_stale({"status": "RUNNING"}, START, STALE_SECONDS)


# --------------------------------------------------------------------------- errors


def test_an_error_is_listed_with_the_requests_secrets_scrubbed_from_its_description(
    storage: Storage,
):
    journal = journal_on(storage, FakeClock())
    entry = {"code": "SAAS_ERROR", "description": "GET /b?token=tok-Secret-77 failed", "x": 1}

    with guarding({"auth": {"settings": {"token_secret": "tok-Secret-77"}}}):
        journal.error(entry)

    assert journal.record["errors"] == [
        {"code": "SAAS_ERROR", "description": f"GET /b?token={MASK} failed", "x": 1}
    ]
    assert entry["description"] == "GET /b?token=tok-Secret-77 failed"


def test_errors_past_the_cap_are_counted_in_the_last_entry_not_listed(storage: Storage):
    journal = journal_on(storage, FakeClock())
    for n in range(MAX_ERRORS + 3):
        journal.error({"code": "SAAS_ERROR" if n < MAX_ERRORS else "LATE", "description": f"#{n}"})

    errors = journal.record["errors"]
    assert len(errors) == MAX_ERRORS
    assert errors[MAX_ERRORS - 2] == {"code": "SAAS_ERROR", "description": f"#{MAX_ERRORS - 2}"}
    # the last listed one and the three past the cap
    assert errors[-1] == {
        "code": "LATE",
        "description": "4 more errors like the ones above are not listed",
    }
    assert journal.record["moreErrors"] == 3


# --------------------------------------------------------------------------- saves


async def test_finished_units_are_saved_only_once_the_last_save_is_old_enough(storage: Storage):
    clock = FakeClock()
    journal = journal_on(storage, clock)

    clock.time += SAVE_EVERY / 2
    await journal.unit("b1/bucket.json.zst", {"size": 10})
    assert not await storage.exists(record_path(UUID))

    clock.time = START + SAVE_EVERY
    await journal.unit("b2/bucket.json.zst", {"size": 20})
    saved = await stored(storage)
    assert saved["units"] == {
        "b1/bucket.json.zst": {"size": 10},
        "b2/bucket.json.zst": {"size": 20},
    }
    assert saved["updatedAt"] == iso(START + SAVE_EVERY)

    clock.time += SAVE_EVERY / 2
    await journal.unit("b3/bucket.json.zst", {"size": 30})
    assert set((await stored(storage))["units"]) == {"b1/bucket.json.zst", "b2/bucket.json.zst"}
    assert set(journal.units) == {"b1/bucket.json.zst", "b2/bucket.json.zst", "b3/bucket.json.zst"}


async def test_a_save_of_a_running_task_refreshes_its_heartbeat_and_update_time(storage: Storage):
    clock = FakeClock()
    journal = journal_on(storage, clock, status="RUNNING")
    clock.time += 7

    await journal.save()

    saved = await stored(storage)
    assert saved["heartbeatAt"] == saved["updatedAt"] == iso(START + 7)
    assert saved["createdAt"] == iso(START)


async def test_a_finished_task_saves_as_done_and_is_never_written_again(storage: Storage):
    clock = FakeClock()
    journal = journal_on(storage, clock, status="RUNNING")
    clock.time += 5

    await journal.finish(None)
    clock.time += 5
    await journal.save()
    await journal.finish(SaasAuthError("a leftover run's failure"))

    saved = await stored(storage)
    assert saved["status"] == "DONE"
    assert saved["error"] is None
    assert saved["finishedAt"] == iso(START + 5)
    assert saved["heartbeatAt"] == iso(START)
    assert saved["updatedAt"] == iso(START + 5)


async def test_a_finishing_task_says_done_in_memory_only_once_storage_does(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
):
    journal = journal_on(storage, FakeClock(), status="RUNNING")
    seen_while_writing: list[str] = []
    write = storage.write_if

    async def watched(relative: str, data: Any, version: str | None) -> str:
        seen_while_writing.append(journal.record["status"])
        return await write(relative, data, version)

    monkeypatch.setattr(storage, "write_if", watched)
    await journal.finish(None)

    assert seen_while_writing == ["RUNNING"]
    assert journal.record["status"] == (await stored(storage))["status"] == "DONE"


async def test_a_final_save_that_fails_leaves_the_task_running_in_memory(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
):
    journal = journal_on(storage, FakeClock(), status="RUNNING")

    async def refused(relative: str, data: Any, version: str | None) -> str:
        raise StorageError("write refused", url="memory://x")

    monkeypatch.setattr(storage, "write_if", refused)
    with pytest.raises(StorageError):
        await journal.finish(None)

    assert journal.record["status"] == "RUNNING"


def running(data: Any) -> bool:
    """Whether a save's record (the JSON the journal hands to storage) is a running task's."""
    status: str = json.loads(data)["status"]
    return status == "RUNNING"


def hold_writes(
    storage: Storage, monkeypatch: pytest.MonkeyPatch, when: Callable[[Any], bool]
) -> tuple[anyio.Event, anyio.Event]:
    """Holds each write whose data ``when`` picks until the second event is set; the first
    event says one is held. Like a write in a worker thread, a held write goes on when its
    caller is cancelled."""
    holding, release = anyio.Event(), anyio.Event()
    write = storage.write_if

    async def held(relative: str, data: Any, version: str | None) -> str:
        holding.set()
        await release.wait()
        return await write(relative, data, version)

    async def holding_write(relative: str, data: Any, version: str | None) -> str:
        if not when(data):
            return await write(relative, data, version)
        return await asyncio.shield(held(relative, data, version))

    monkeypatch.setattr(storage, "write_if", holding_write)
    return holding, release


async def test_a_heartbeat_cancelled_mid_save_lands_before_the_final_save(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
):
    journal = journal_on(storage, FakeClock(), status="RUNNING")
    beating, release = hold_writes(
        storage, monkeypatch, lambda data: json.loads(data)["status"] == "RUNNING"
    )
    beat = asyncio.create_task(journal.beat(1.0))
    await beating.wait()
    beat.cancel()
    finishing = asyncio.create_task(journal.finish(None))
    await asyncio.sleep(0)
    release.set()
    await finishing
    await asyncio.gather(beat, return_exceptions=True)
    await asyncio.sleep(0.01)  # a stray heartbeat write would land now

    assert (await stored(storage))["status"] == "DONE"


async def test_a_save_cancelled_mid_write_still_lets_the_release_through(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
):
    """A task cancelled at shutdown while its save is in a worker thread: the write lands anyway,
    so the release after it must build on that write's version (it was refused as another
    runner's change, leaving the lease held, before)."""
    journal = journal_on(storage, FakeClock(), status="RUNNING")
    writing, release = hold_writes(storage, monkeypatch, lambda data: True)
    saving = asyncio.create_task(journal.save())
    await writing.wait()
    saving.cancel()
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await saving
    await journal.release()

    assert (await stored(storage))["owner"] is None
    assert not journal.lost


async def test_a_failed_task_saves_its_error_with_the_secrets_scrubbed(storage: Storage):
    journal = journal_on(storage, FakeClock(), status="RUNNING")

    with guarding({"password_secret": "hunter2-Secret"}):
        await journal.finish(SaasAuthError("GET /me: refused hunter2-Secret"))

    saved = await stored(storage)
    assert saved["status"] == "FAILED"
    assert saved["finishedAt"] == iso(START)
    assert saved["error"] == {
        "status": 502,
        "code": "SAAS_AUTH_FAILED",
        "description": f"GET /me: refused {MASK}",
    }


async def test_a_released_task_has_no_owner_so_the_next_status_call_finds_it_stale(
    storage: Storage,
):
    clock = FakeClock()
    journal = journal_on(storage, clock, status="RUNNING")

    await journal.release()

    saved = await stored(storage)
    assert saved["owner"] is None
    assert saved["status"] == "RUNNING"
    assert is_stale(saved, clock.now(), STALE_SECONDS)


async def test_the_heartbeat_saves_after_every_interval(storage: Storage):
    clock = FakeClock()
    journal = journal_on(storage, clock, status="RUNNING")
    beats: list[str] = []

    async def look() -> None:
        if clock.slept[1:]:  # the previous interval's save has happened
            beats.append((await stored(storage))["heartbeatAt"])
        if len(clock.slept) == 4:
            raise Stop

    clock.on_sleep = look
    with pytest.raises(Stop):
        await journal.beat(5)

    assert clock.slept == [5, 5, 5, 5]
    assert beats == [iso(START + 5), iso(START + 10), iso(START + 15)]


async def test_a_failed_heartbeat_is_logged_and_the_next_one_saves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    storage = local_storage(tmp_path)
    blocker = tmp_path / "backup" / ".engine"
    blocker.parent.mkdir()
    blocker.write_text("a file where the tasks folder should be")
    clock = FakeClock()
    journal = journal_on(storage, clock, status="RUNNING")

    async def unblock_then_stop() -> None:
        if len(clock.slept) == 3:
            blocker.unlink()
        if len(clock.slept) == 4:
            raise Stop

    clock.on_sleep = unblock_then_stop
    with caplog.at_level(logging.WARNING, "engine.tasks.lifecycle"), pytest.raises(Stop):
        await journal.beat(5)

    warnings = [r.getMessage() for r in caplog.records if r.name == "engine.tasks.lifecycle"]
    assert len(warnings) == 2
    assert all(message.startswith(f"heartbeat of task {UUID} failed: ") for message in warnings)
    assert (await stored(storage))["heartbeatAt"] == iso(START + 15)


async def test_a_heartbeat_cancelled_while_its_save_fails_leaves_no_unread_exception(
    storage: Storage, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    journal = journal_on(storage, FakeClock(), status="RUNNING")
    saving, outage_over = anyio.Event(), anyio.Event()
    unread: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: unread.append(context))

    async def outage(relative: str, data: Any, version: str | None) -> str:
        saving.set()
        await outage_over.wait()
        raise StorageError("storage is down", url="memory://x")

    monkeypatch.setattr(storage, "write_if", outage)
    beat = asyncio.create_task(journal.beat(1.0))
    await saving.wait()
    beat.cancel()
    await asyncio.sleep(0)
    outage_over.set()
    with caplog.at_level(logging.WARNING, "engine.tasks.lifecycle"):
        await asyncio.gather(beat, return_exceptions=True)
        for _ in range(3):  # let a save left running finish, then collect what it left
            await asyncio.sleep(0)
    del beat
    gc.collect()
    loop.set_exception_handler(None)

    assert unread == []
    assert [r.getMessage() for r in caplog.records] == [
        f"heartbeat of task {UUID} failed: storage is down"
    ]


async def test_a_heartbeat_stops_once_another_runner_took_the_task(storage: Storage):
    clock = FakeClock()
    journal = journal_on(storage, clock, status="RUNNING")
    await journal.save()
    stale, version = await stored_with_version(storage)
    assert await take_lease(storage, stale, version, clock) is not None

    await journal.beat(5)  # returns: no more beats

    assert clock.slept == [5]
    assert journal.lost


# --------------------------------------------------------------------------- leases


async def stored_with_version(storage: Storage) -> tuple[dict[str, Any], str]:
    data, version = await storage.read_versioned(record_path(UUID))
    return check_record(data, UUID), version


@pytest.mark.parametrize("backend", ["memory", "local"])
async def test_taking_a_lease_makes_a_new_owner_run_the_task_in_the_next_epoch(
    backend: str, tmp_path: Path, storage: Storage
):
    where = storage if backend == "memory" else local_storage(tmp_path)
    clock = FakeClock(START + 100)
    dead = record(owner="gone/1/dead", status="RUNNING", units={"a.json.zst": {"size": 1}})
    await where.write_if(record_path(UUID), dead, None)
    _, version = await stored_with_version(where)

    journal = await take_lease(where, dead, version, clock)

    assert journal is not None
    claimed = journal.record
    assert claimed["owner"] not in ("gone/1/dead", None)
    assert claimed["epoch"] == 2
    assert claimed["status"] == "RUNNING"
    assert claimed["heartbeatAt"] == iso(START + 100)
    assert claimed["units"] == {"a.json.zst": {"size": 1}}
    assert await stored_with_version(where) == (claimed, journal.version)
    assert dead["owner"] == "gone/1/dead"


async def test_of_many_claims_of_one_stale_task_read_at_one_version_exactly_one_wins(
    storage: Storage,
):
    dead = record(owner="gone/1/dead", status="RUNNING")
    await storage.write_if(record_path(UUID), dead, None)
    _, version = await stored_with_version(storage)

    claims = await asyncio.gather(
        *(take_lease(storage, dead, version, FakeClock()) for _ in range(8))
    )

    [winner] = [journal for journal in claims if journal is not None]
    assert (await stored(storage))["owner"] == winner.record["owner"]


async def test_a_runner_taken_over_fails_its_next_save_and_writes_nothing_more(
    storage: Storage,
):
    clock = FakeClock()
    first = journal_on(storage, clock, status="RUNNING")
    await first.save()
    clock.time += STALE_SECONDS + 1
    stale, version = await stored_with_version(storage)
    second = await take_lease(storage, stale, version, clock)
    assert second is not None
    await second.finish(None)

    first.record["units"]["late.json.zst"] = {"size": 1}
    with pytest.raises(LeaseLost):
        await first.save()
    with pytest.raises(LeaseLost):
        await first.finish(SaasAuthError("too late"))
    with pytest.raises(LeaseLost):
        await first.fence()

    saved = await stored(storage)
    assert (saved["status"], saved["epoch"], saved["units"]) == ("DONE", 2, {})
    assert first.lost and not second.lost


async def test_a_fence_saves_only_when_the_lease_was_last_confirmed_half_a_lease_ago(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
):
    clock = FakeClock()
    journal = Journal(storage, record(status="RUNNING"), clock, lease_seconds=10)
    await journal.save()
    saves: list[float] = []
    write = storage.write_if

    async def counted(relative: str, data: Any, version: str | None) -> str:
        saves.append(clock.now())
        return await write(relative, data, version)

    monkeypatch.setattr(storage, "write_if", counted)
    clock.time += 4.9
    await journal.fence()
    clock.time += 0.1
    await journal.fence()

    assert saves == [START + 5]


async def test_a_new_task_record_is_created_only_where_there_is_none(storage: Storage):
    await journal_on(storage, FakeClock(), owner="first/1/aaaa").save()
    second = journal_on(storage, FakeClock(), owner="second/2/bbbb")

    with pytest.raises(LeaseLost):
        await second.save()

    assert (await stored(storage))["owner"] == "first/1/aaaa"


async def test_every_save_writes_the_units_as_they_are_now_added_replaced_or_removed(
    storage: Storage,
):
    journal = journal_on(storage, FakeClock())
    for number in range(3):
        await journal.unit(f"a/{number}.json", {"size": number, "name": 'é\n"q"'})
    await journal.save()
    assert (await stored(storage))["units"] == journal.units
    await journal.unit("a/1.json", {"size": 10})  # a unit done again replaces its value
    del journal.units["a/0.json"]  # as a backup forgets a unit whose object is gone
    journal.record["progress"]["done"] = 2
    await journal.save()
    saved = await stored(storage)
    assert saved["units"] == {"a/1.json": {"size": 10}, "a/2.json": journal.units["a/2.json"]}
    assert saved == journal.record  # the rest of the record too, as it is in memory
    journal.units.clear()
    await journal.save()
    assert (await stored(storage))["units"] == {}
