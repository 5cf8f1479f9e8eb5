"""The gate every SaaS connection of one engine process goes through: it bounds the process's
concurrent requests to the module's SaaS, and gives each tenant a window that narrows when the
SaaS throttles it (AIMD), so that one tenant's 429s never slow another."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class _Window:
    """One tenant's share of the gate: at most ``width`` requests at once, halved when the SaaS
    throttles and widened by one per ``width`` answers (AIMD), between 1 and the ceiling."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.width = ceiling
        self.active = 0
        self.answers = 0  # answers since the width last changed
        self.era = 0  # bumped by each decrease: answers to requests sent before it do not count
        self._room = asyncio.Condition()

    async def enter(self) -> int:
        async with self._room:
            await self._room.wait_for(lambda: self.active < self.width)
            self.active += 1
            return self.era

    async def leave(self) -> None:
        async with self._room:
            self.active -= 1
            self._room.notify_all()

    def throttled(self, era: int) -> None:
        # requests in flight when the SaaS first pushed back tell nothing new: one decrease each
        if era == self.era:
            self.width = max(1, self.width // 2)
            self.answers = 0
            self.era += 1

    async def succeeded(self) -> None:
        self.answers += 1
        if self.answers >= self.width and self.width < self.ceiling:
            async with self._room:
                self.width += 1
                self.answers = 0
                self._room.notify_all()

    @property
    def idle(self) -> bool:
        """Nothing in flight and at full width: the same as a fresh window, so it may go."""
        return self.active == 0 and self.width >= self.ceiling


class Pass:
    """One request's admission: tell the gate how the SaaS answered."""

    def __init__(self, window: _Window, era: int) -> None:
        self._window = window
        self._era = era

    def throttled(self) -> None:
        """The SaaS pushed back (429): the tenant's window narrows."""
        self._window.throttled(self._era)

    async def succeeded(self) -> None:
        """The SaaS answered: the tenant's window widens a little."""
        await self._window.succeeded()


class Gate:
    """Bounds the process's concurrent requests to a module's SaaS (``limit``), and each
    tenant's (one key per origin and credentials) to a window that backs off on throttling, so
    one tenant's 429s never slow another."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._all = asyncio.Semaphore(limit)
        self._windows: dict[str, _Window] = {}

    @asynccontextmanager
    async def admit(self, key: str = "") -> AsyncIterator[Pass]:
        """Waits for room in the tenant's window and in the process's limit."""
        window = self._windows.setdefault(key, _Window(self.limit))
        era = await window.enter()
        try:
            async with self._all:
                yield Pass(window, era)
        finally:
            await window.leave()
            if window.idle and self._windows.get(key) is window:
                del self._windows[key]

    def width(self, key: str = "") -> int:
        """The current width of a tenant's window (the limit when it has none)."""
        window = self._windows.get(key)
        return self.limit if window is None else window.width
