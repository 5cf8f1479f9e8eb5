"""Conditional writes (Storage.read_versioned and write_if), the compare-and-swap beneath task
leases, on real backends: local folders, memory://, S3 (moto) and GCS (fake-gcs-server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from engine.errors import LeaseLost
from engine.language import model
from engine.storage import Storage, open_storage
from engine.tasks.guards import Guards
from engine.tasks.journal import Journal, new_record, take_lease
from tests.taskflow import Backend
from tests.taskparts import FakeClock, memory_storage

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

BACKENDS = ["local", "memory", "s3", "gcs"]
RECORD = ".engine/tasks/t-1.json"
WRITERS = 6


@pytest.fixture(params=BACKENDS)
async def storage(
    request: pytest.FixtureRequest, storage_area: Callable[[str], Backend]
) -> AsyncIterator[Storage]:
    area = storage_area(request.param)
    place = area.place("leases")
    opened = await asyncio.to_thread(open_storage, place.url, place.options, allow=[area.allow])
    yield opened
    await opened.aclose()


def a_record() -> dict[str, Any]:
    module = model.build(model.Identity, {"id": "shelf", "name": "Shelf", "version": "1"})
    made = new_record("t-1", "backup", module=module, request={}, owner="me/1/a", now=0.0)
    return made | {"status": "RUNNING"}


async def outcomes(writes: list[Any]) -> tuple[list[str], int]:
    """The versions the winning writes answered, and how many lost with LeaseLost."""
    results = await asyncio.gather(*writes, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, LeaseLost):
            raise result
    won = [result for result in results if isinstance(result, str)]
    return won, len(results) - len(won)


async def test_every_test_backend_has_an_exact_compare_and_swap(storage: Storage):
    assert storage.versions_exactly


async def test_of_writers_creating_one_object_at_once_exactly_one_wins(storage: Storage):
    writes = [storage.write_if(RECORD, {"writer": n}, None) for n in range(WRITERS)]

    [version], lost = await outcomes(writes)

    assert lost == WRITERS - 1
    data, stored_version = await storage.read_versioned(RECORD)
    assert stored_version == version
    assert data["writer"] in range(WRITERS)


async def test_of_writers_replacing_one_version_at_once_exactly_one_wins(storage: Storage):
    first = await storage.write_if(RECORD, {"writer": "first"}, None)
    writes = [storage.write_if(RECORD, {"writer": n}, first) for n in range(WRITERS)]

    [version], lost = await outcomes(writes)

    assert lost == WRITERS - 1
    data, stored_version = await storage.read_versioned(RECORD)
    assert (stored_version, data["writer"] in range(WRITERS)) == (version, True)


async def test_a_write_at_an_outdated_version_changes_nothing(storage: Storage):
    old = await storage.write_if(RECORD, {"epoch": 1}, None)
    new = await storage.write_if(RECORD, {"epoch": 2}, old)

    with pytest.raises(LeaseLost) as caught:
        await storage.write_if(RECORD, {"epoch": 1, "late": True}, old)
    with pytest.raises(LeaseLost):
        await storage.write_if(RECORD, {"again": True}, None)

    assert caught.value.path == RECORD
    assert "changed since it was read" in caught.value.message
    assert await storage.read_versioned(RECORD) == ({"epoch": 2}, new)


@pytest.mark.parametrize("storage", ["s3"], indirect=True)
async def test_a_record_read_while_it_is_rewritten_is_always_one_whole_version(storage: Storage):
    pad = "x" * 20_000  # big enough that a ranged read would take several requests
    version = await storage.write_if(RECORD, {"n": 0, "pad": pad}, None)

    async def rewrite() -> None:
        nonlocal version
        for n in range(1, 40):
            version = await storage.write_if(RECORD, {"n": n, "pad": pad}, version)

    async def read() -> list[int]:
        seen = []
        for _ in range(40):
            data, _ = await storage.read_versioned(RECORD)
            assert data["pad"] == pad
            seen.append(data["n"])
        return seen

    _, *readers = await asyncio.gather(rewrite(), read(), read())

    for seen in readers:
        assert seen == sorted(seen), "a reader never goes back to an older version"
        assert set(seen) <= set(range(40))


async def test_a_guard_lets_one_holder_in_at_a_time_and_forgets_a_key_nobody_holds():
    guards, inside, most = Guards(), 0, 0

    async def hold() -> None:
        nonlocal inside, most
        async with guards.hold("task"):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.001)
            inside -= 1

    await asyncio.gather(*(hold() for _ in range(5)))

    assert most == 1
    assert len(guards) == 0


async def test_a_runner_taken_over_while_paused_commits_no_object_once_it_wakes():
    clock = FakeClock()
    with memory_storage() as storage:
        first = Journal(storage, a_record(), clock, lease_seconds=10)
        await first.save()
        clock.time += 11  # paused past staleness: another runner takes the task over
        data, version = await storage.read_versioned(first.path)
        assert await take_lease(storage, data, version, clock, lease_seconds=10) is not None
        fenced = storage.fenced(first.fence)

        with pytest.raises(LeaseLost):
            async with fenced.writer("late.json.zst") as writer:
                await writer.write(b"written after the take-over")

        assert not await storage.exists("late.json.zst")
        assert first.lost


async def test_a_runner_whose_lease_is_fresh_commits_objects_without_saving_its_record():
    clock = FakeClock()
    with memory_storage() as storage:
        journal = Journal(storage, a_record(), clock, lease_seconds=10)
        await journal.save()
        saved = (await storage.read_versioned(journal.path))[1]
        clock.time += 4

        async with storage.fenced(journal.fence).writer("a.json.zst") as writer:
            await writer.write(b"{}")

        assert await storage.size("a.json.zst") == writer.info.size
        assert (await storage.read_versioned(journal.path))[1] == saved
