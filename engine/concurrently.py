"""Running task work side by side: every coroutine to its end, or the first engine error cancels
the rest and is raised as itself (callers and error handlers never see an exception group)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

from engine.errors import EngineError

T = TypeVar("T")
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


async def in_group(start: Callable[[Spawn], object]) -> None:
    """Runs the tasks ``start`` spawns (and those they spawn in turn) to the end; ``start`` may
    be a coroutine function, awaited inside the group (to spawn as items arrive)."""
    try:
        async with asyncio.TaskGroup() as group:
            started = start(group.create_task)
            if inspect.isawaitable(started):
                await started
    except* EngineError as failed:
        raise leaves(failed)[0] from None


def leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    """The exceptions of a group and of the groups nested in it, in order."""
    found: list[BaseException] = []
    for exc in group.exceptions:
        found += leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return found


async def gather(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """The results of every awaitable, run at once, in their order."""
    results: dict[int, T] = {}

    async def one(index: int, awaitable: Awaitable[T]) -> None:
        results[index] = await awaitable

    await in_group(lambda spawn: [spawn(one(index, each)) for index, each in enumerate(awaitables)])
    return [results[index] for index in range(len(results))]


async def for_each(
    function: Callable[[T], Coroutine[Any, Any, None]],
    items: Iterable[T],
    *,
    limit: int | None = None,
) -> None:
    """Runs function on every item, all at once or, given ``limit``, at most that many at a
    time: then an item's task starts only when a slot is free (a long list costs no tasks)."""
    if limit is None:
        await in_group(lambda spawn: [spawn(function(item)) for item in items])
        return
    await for_each_arriving(function, _arriving(items), limit=limit)


async def _arriving(items: Iterable[T]) -> AsyncIterator[T]:
    for item in items:
        yield item


async def for_each_arriving(
    function: Callable[[T], Awaitable[None]], items: AsyncIterable[T], *, limit: int
) -> None:
    """Runs function on every item as it arrives, at most ``limit`` at a time: a slow item
    never holds the others back, and at most ``limit`` items are held at once."""
    gate = asyncio.Semaphore(limit)

    async def one(item: T) -> None:
        try:
            await function(item)
        finally:
            gate.release()

    async def feed(spawn: Spawn) -> None:
        async for item in items:
            await gate.acquire()
            spawn(one(item))

    await in_group(feed)
