"""engine.concurrently: task groups that run what their tasks spawn, end at the first engine error
(raised as itself, never as an exception group) and cap how many run at once."""

from __future__ import annotations

import asyncio

import pytest

from engine.concurrently import Spawn, for_each, for_each_arriving, gather, in_group
from engine.errors import RequestError, SaasError, StorageError

pytestmark = pytest.mark.anyio


async def test_a_group_runs_the_tasks_its_tasks_spawn_to_the_end():
    done: list[str] = []

    async def leaf(name: str) -> None:
        await asyncio.sleep(0)
        done.append(name)

    async def parent(spawn: Spawn, name: str) -> None:
        await asyncio.sleep(0)
        spawn(leaf(f"{name}/child"))
        spawn(grandparent(spawn, f"{name}/inner"))
        done.append(name)

    async def grandparent(spawn: Spawn, name: str) -> None:
        spawn(leaf(f"{name}/grandchild"))
        done.append(name)

    await in_group(lambda spawn: [spawn(parent(spawn, "a")), spawn(parent(spawn, "b"))])

    assert sorted(done) == [
        "a",
        "a/child",
        "a/inner",
        "a/inner/grandchild",
        "b",
        "b/child",
        "b/inner",
        "b/inner/grandchild",
    ]


async def test_the_first_engine_error_is_raised_as_itself_and_cancels_the_rest():
    cancelled: list[str] = []
    never = asyncio.Event()

    async def waits(name: str) -> None:
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    async def fails(error: Exception) -> None:
        await asyncio.sleep(0)
        raise error

    first = SaasError("GET /things: the SaaS answered HTTP 500")

    def start(spawn: Spawn) -> None:
        spawn(waits("one"))
        spawn(fails(first))
        spawn(waits("two"))

    with pytest.raises(SaasError) as caught:
        await in_group(start)

    assert caught.value is first
    assert caught.value.__suppress_context__
    assert sorted(cancelled) == ["one", "two"]


async def test_an_engine_error_raised_while_cancelling_does_not_hide_the_first():
    first = RequestError("the first failure")

    async def fails() -> None:
        await asyncio.sleep(0)
        raise first

    async def fails_when_cancelled() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise StorageError("cannot write a.json under memory://x", url="memory://x") from None

    with pytest.raises(RequestError) as caught:
        await in_group(lambda spawn: [spawn(fails_when_cancelled()), spawn(fails())])

    assert caught.value is first


async def test_an_empty_group_ends_at_once():
    await in_group(lambda spawn: None)
    await for_each(lambda item: asyncio.sleep(0), [])


async def test_an_engine_error_from_a_task_group_inside_a_task_is_raised_as_itself():
    async def refused() -> None:
        raise SaasError("PUT /things/1: the SaaS answered HTTP 500")

    async def writes_records() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(refused())

    with pytest.raises(SaasError):
        await in_group(lambda spawn: spawn(writes_records()))


async def test_an_error_that_is_not_the_engines_stays_in_its_exception_group():
    async def breaks() -> None:
        raise ValueError("a bug")

    with pytest.raises(ExceptionGroup) as caught:
        await in_group(lambda spawn: spawn(breaks()))

    assert caught.group_contains(ValueError, match="a bug")


async def test_for_each_runs_every_item_once():
    seen: list[int] = []

    async def visit(item: int) -> None:
        await asyncio.sleep(0)
        seen.append(item)

    await for_each(visit, range(20))

    assert sorted(seen) == list(range(20))


@pytest.mark.parametrize(("limit", "most"), [(1, 1), (3, 3), (None, 12)])
async def test_for_each_runs_at_most_limit_items_at_once(limit: int | None, most: int):
    running, peak = 0, 0
    release = asyncio.Event()

    async def visit(item: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        # every item waits until as many run as ever can, so the peak is the true cap
        if running == most:
            release.set()
        await release.wait()
        await asyncio.sleep(0)
        running -= 1

    await for_each(visit, range(12), limit=limit)

    assert peak == most
    assert running == 0


async def test_for_each_with_a_limit_starts_no_task_for_an_item_before_a_slot_is_free():
    before = len(asyncio.all_tasks())
    peak = 0

    async def visit(item: int) -> None:
        nonlocal peak
        peak = max(peak, len(asyncio.all_tasks()) - before)
        await asyncio.sleep(0)

    await for_each(visit, range(1000), limit=4)

    assert peak <= 4


async def test_for_each_raises_an_items_engine_error_as_itself():
    async def visit(item: int) -> None:
        if item == 2:
            raise RequestError(f"item {item} is bad")

    with pytest.raises(RequestError, match="item 2 is bad"):
        await for_each(visit, range(5), limit=2)


async def test_gather_answers_in_order_and_raises_the_first_engine_error_as_itself():
    async def slowly(value: int) -> int:
        await asyncio.sleep(0.001 * (3 - value))
        return value

    assert await gather(slowly(value) for value in range(3)) == [0, 1, 2]

    async def refused() -> int:
        raise SaasError("GET /things/2: the SaaS answered HTTP 500")

    with pytest.raises(SaasError, match="HTTP 500"):
        await gather([slowly(1), refused()])


async def test_arriving_items_run_at_most_limit_at_once_and_all_of_them_run():
    running, most, done = 0, 0, []

    async def arrive():
        for number in range(20):
            await asyncio.sleep(0)
            yield number

    async def work(number: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001 * (number % 3))
        running -= 1
        done.append(number)

    await for_each_arriving(work, arrive(), limit=4)

    assert sorted(done) == list(range(20))
    assert most == 4


async def test_the_first_engine_error_of_arriving_items_is_raised_as_itself():
    async def arrive():
        for number in range(100):
            yield number

    async def work(number: int) -> None:
        if number == 5:
            raise SaasError("PUT /things/5: the SaaS answered HTTP 500")
        await asyncio.sleep(0)

    with pytest.raises(SaasError, match="things/5"):
        await for_each_arriving(work, arrive(), limit=3)
