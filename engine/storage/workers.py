"""Where storage's blocking calls run: the engine's own daemon threads, a budget of them for the
process and a smaller one per endpoint, and a deadline on every call.

A storage endpoint comes from the request, so it may accept connections and never answer. Its
calls then hold their threads until the backend's own timeouts end them; the per-endpoint limit
keeps those threads a few, so every other endpoint (local folders, memory://) still gets threads.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import ctypes
import os
import platform
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from engine.errors import Deadline

_P = ParamSpec("_P")
_T = TypeVar("_T")

_Job = tuple[str, "concurrent.futures.Future[Any]", Callable[[], Any]]


@dataclass(frozen=True)
class Limits:
    """The deadline of one blocking call (seconds), and the threads of the process and of one
    endpoint."""

    timeout: float = 60.0
    threads: int = 32
    per_endpoint: int = 8


class Workers:
    """A pool of daemon threads that runs at most ``per_endpoint`` calls of one endpoint at once
    and queues the rest by endpoint. Daemon threads: ThreadPoolExecutor joins its threads at
    interpreter exit, so one call hung on a dead endpoint would keep the process alive."""

    def __init__(self, limits: Limits) -> None:
        fewer_arenas()  # before its threads start
        self.limits = limits
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = threading.Semaphore(0)
        self._threads = 0
        self._running: collections.Counter[str] = collections.Counter()
        self._waiting: dict[str, collections.deque[_Job]] = collections.defaultdict(
            collections.deque
        )

    def submit(self, key: str, fn: Callable[[], _T]) -> concurrent.futures.Future[_T]:
        """Runs fn in a thread once key has a free slot; its future."""
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()
        job: _Job = (key, future, fn)
        with self._lock:
            if self._running[key] >= self.limits.per_endpoint:
                self._waiting[key].append(job)
                return future
            self._running[key] += 1
        self._dispatch(job)
        return future

    def busy(self, key: str) -> int:
        """How many calls of key hold a thread now."""
        with self._lock:
            return self._running[key]

    def _dispatch(self, job: _Job) -> None:
        self._jobs.put(job)
        if self._idle.acquire(blocking=False):
            return
        with self._lock:
            if self._threads >= self.limits.threads:
                return
            self._threads += 1
        threading.Thread(target=self._work, name="engine-storage", daemon=True).start()

    def _work(self) -> None:
        while True:
            key, future, fn = self._jobs.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                # the thread reports whatever the call raised to whoever awaits it
                except BaseException as exc:
                    future.set_exception(exc)
            self._next(key)
            self._idle.release()

    def _next(self, key: str) -> None:
        """Hands key's slot to its next waiting job that is still wanted, or frees it."""
        with self._lock:
            waiting = self._waiting[key]
            while waiting and waiting[0][1].cancelled():
                waiting.popleft()
            if not waiting:
                self._running[key] -= 1
                return
            job = waiting.popleft()
        self._dispatch(job)


@dataclass(frozen=True)
class Endpoint:
    """One storage endpoint's share of the workers: its key and the deadline of its calls."""

    key: str
    workers: Workers = field(repr=False)

    @property
    def timeout(self) -> float:
        """Seconds one blocking call may take."""
        return self.workers.limits.timeout

    def start(
        self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> asyncio.Future[_T]:
        """fn(*args, **kwargs) under way in a worker thread (cancelled unless started)."""
        return asyncio.wrap_future(self.workers.submit(self.key, lambda: fn(*args, **kwargs)))

    async def wait(self, future: asyncio.Future[_T]) -> _T:
        """future's result; Deadline when it takes longer than the timeout (it goes on)."""
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.shield(future)
        except TimeoutError as exc:
            raise Deadline(f"timed out after {self.timeout:g} s") from exc

    async def call(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """fn(*args, **kwargs) in a worker thread, within the deadline."""
        future = self.start(fn, *args, **kwargs)
        try:
            return await self.wait(future)
        except BaseException:
            future.cancel()  # drops it if it is still waiting for a slot
            raise


_shared: list[Workers] = []  # the process's pool: made at first use, replaced by configure()


ARENAS = 2  # glibc malloc arenas for the whole process (glibc's own default: 8 per core)
_M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


def fewer_arenas() -> bool:
    """Caps glibc's malloc arenas at ARENAS, unless MALLOC_ARENA_MAX already says how many;
    True when it did. Each thread that allocates gets an arena of its own, up to 8 per core,
    and what a worker thread frees (a part, a chunk) stays in its arena for that thread: the
    resident peak of a 2 GiB S3 backup was 207-214 MiB with the default, 190-192 with two.
    Elsewhere than glibc, nothing."""
    if "MALLOC_ARENA_MAX" in os.environ or platform.libc_ver()[0] != "glibc":
        return False
    return bool(ctypes.CDLL(None).mallopt(_M_ARENA_MAX, ARENAS))


def shared() -> Workers:
    """The process's workers (default limits until configure() is called)."""
    if not _shared:
        _shared.append(Workers(Limits()))
    return _shared[-1]


def configure(limits: Limits) -> None:
    """Serve later storage calls from workers with these limits (calls under way go on)."""
    if not _shared or _shared[-1].limits != limits:
        _shared[:] = [Workers(limits)]
