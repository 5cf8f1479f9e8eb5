"""What every SaaS connection of one engine process shares: the HTTP connection pool, the gate
that bounds concurrent SaaS requests, the module's rate limit, the token cache and the clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from aiolimiter import AsyncLimiter
from httpcore._async.http11 import AsyncHTTP11Connection

from engine.clock import Clock, SystemClock
from engine.definition import Definition
from engine.tokens import TokenCache


@dataclass
class Outbound:
    """The shared parts of the process's SaaS connections."""

    pool: httpx.AsyncClient
    gate: asyncio.Semaphore
    limiter: AsyncLimiter | None = None
    clock: Clock = field(default_factory=SystemClock)
    tokens: TokenCache = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = TokenCache(self.clock)


# httpcore reads an answer 64 KiB at a time, each read under an anyio cancel scope of its own:
# streaming 2 GiB, that per-read cost took the engine to 0.90x of a direct script; 256 KiB reads
# brought it to 0.97x (docs/benchmarks.md). It is a class attribute of httpcore's HTTP/1.1
# connection (httpcore is pinned in uv.lock; tests/test_client.py checks that it is still read).
READ_SIZE = 256 << 10


def new_pool(*, max_connections: int = 64) -> httpx.AsyncClient:
    """A connection pool that never follows redirects nor reads proxy settings from the
    environment (credentials go to the SaaS's origin only), reading answers READ_SIZE bytes at
    a time."""
    AsyncHTTP11Connection.READ_NUM_BYTES = READ_SIZE
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    return httpx.AsyncClient(limits=limits, follow_redirects=False, trust_env=False)


@asynccontextmanager
async def outbound(
    definition: Definition, *, max_connections: int = 64, clock: Clock | None = None
) -> AsyncIterator[Outbound]:
    """The process's Outbound for one module, its pool closed on the way out."""
    connection = definition.connection
    rate = connection.get("rateLimit")
    async with new_pool(max_connections=max_connections) as pool:
        yield Outbound(
            pool,
            asyncio.Semaphore(int(connection.get("concurrency", 8))),
            AsyncLimiter(float(rate), 1.0) if rate else None,
            clock or SystemClock(),
        )
