"""A fault-injecting HTTP reverse proxy for tests, in front of a real upstream (a Kinto, the
paged test server), on a free loopback port, served from a background thread.

It forwards each request as it came (method, path, query, headers with Host rewritten, body)
and answers with the upstream's status, headers and body (decoded; Content-Length recomputed;
the upstream's origin in response headers, as in Kinto's Next-Page, rewritten to the proxy's,
so pagination stays behind the proxy). Tests script faults for matching requests with
``inject`` and read every request it received, with the fault applied and when, in ``requests``.

Why not Starlette under uvicorn like ``paged_server``: a ``drop`` must close the connection
with no answer at all, and uvicorn answers 500 to an app that raises or returns before starting
its response (it closes silently only on ASGI misuse, with an error logged). So the proxy is a
small asyncio server speaking HTTP/1.1 through h11 (the parser under uvicorn and httpcore): it
owns each connection, ``drop`` closes it after reading the request, and ``stop`` cancels the
connections' tasks, which cuts a held ``delay`` short. Upstream calls go through httpx.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Literal, Self

import h11
import httpx

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
READ_SIZE = 65536
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
NOT_FORWARDED = HOP_BY_HOP | {b"host", b"content-length"}  # httpx sets both for the upstream
NOT_RETURNED = HOP_BY_HOP | {b"content-length", b"content-encoding"}  # the body is decoded

FaultKind = Literal["status", "delay", "drop", "truncate", "body"]
Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Fault:
    """What the proxy does to a matching request instead of plain forwarding.

    ``status``: answer ``status``, ``headers`` and ``body`` without calling the upstream;
    ``delay``: hold the request ``seconds``, then forward it; ``drop``: close the connection
    without any answer; ``truncate``: forward, then cut the body to its first half (Content-Length
    says the cut length); ``body``: forward, then replace the body with ``body``."""

    kind: FaultKind
    status: int = 503
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAULTS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {', '.join(FAULTS)}")


@dataclass(frozen=True)
class ProxiedRequest:
    """One request as the proxy received it (header names in lower case), the fault it got
    (None: forwarded as it was), and when it arrived (time.monotonic())."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    fault: Fault | None
    at: float


@dataclass(frozen=True)
class _Request:
    """A request read off a client connection."""

    method: str
    target: str  # path and query, as sent
    headers: Headers
    body: bytes


@dataclass(frozen=True)
class _Answer:
    """What the proxy writes back: Content-Length is added when written."""

    status: int
    headers: Headers
    body: bytes


@dataclass
class _Rule:
    """An injected fault and the requests it applies to; remaining None means no end; a share
    below 1 picks that share of the matching requests at random (seeded: the same picks for
    the same order of requests)."""

    fault: Fault
    method: str | None
    pattern: re.Pattern[str]
    remaining: int | None
    share: float = 1.0
    dice: random.Random = field(default_factory=lambda: random.Random(0))

    def takes(self, request: _Request) -> bool:
        """Whether the rule applies to request (and is not used up)."""
        if self.remaining == 0 or self.method not in {None, request.method}:
            return False
        if self.pattern.search(request.target) is None:
            return False
        return self.share >= 1.0 or self.dice.random() < self.share


Forward = Callable[[_Request], Awaitable[_Answer]]


class FaultProxy:
    """The proxy in front of ``upstream`` (a base URL): ``url`` is the same base URL with the
    proxy's origin. Start it with ``start()`` (or use ``proxying``); ``inject`` faults any time."""

    def __init__(self, upstream: str) -> None:
        upstream_url = httpx.URL(upstream)
        self.upstream_origin = f"{upstream_url.scheme}://{upstream_url.netloc.decode('ascii')}"
        self._socket = socket.socket()
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.bind((HOST, 0))
        self.origin = f"http://{HOST}:{self._socket.getsockname()[1]}"
        self.url = upstream.replace(self.upstream_origin, self.origin, 1)
        self._rules: list[_Rule] = []
        self._log: list[ProxiedRequest] = []
        self._changed = threading.Condition()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ life cycle

    def start(self) -> Self:
        """Start serving; return once the proxy accepts connections."""
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError("the fault proxy did not start")
        return self

    def stop(self) -> None:
        """Stop serving: open connections close at once (held delays included)."""
        if self._loop is not None and self._stopping is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(START_TIMEOUT)
        self._socket.close()

    # ------------------------------------------------------------------ faults and the log

    def inject(
        self,
        fault: Fault,
        match: str = "",
        *,
        method: str | None = None,
        times: int | None = 1,
        share: float = 1.0,
    ) -> None:
        """Apply fault to the next ``times`` requests (None: every one) whose target (path and
        query) the regex ``match`` is found in, and whose method is ``method`` if given; with
        ``share`` below 1, to that share of them, picked at random. Faults apply in the order
        they were injected; a request gets at most one."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every request)")
        if not 0.0 < share <= 1.0:
            raise ValueError("share must be above 0 and at most 1")
        rule = _Rule(fault, method and method.upper(), re.compile(match), times, share)
        with self._changed:
            self._rules.append(rule)

    @property
    def requests(self) -> list[ProxiedRequest]:
        """The requests received so far, in order of arrival."""
        with self._changed:
            return list(self._log)

    def wait_for_requests(self, count: int, timeout: float = START_TIMEOUT) -> list[ProxiedRequest]:
        """Block until at least count requests have arrived; return them."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._log) >= count, timeout):
                raise TimeoutError(f"{len(self._log)} requests reached the proxy, not {count}")
            return list(self._log)

    def clear(self) -> None:
        """Forget the requests received and the faults not yet used up."""
        with self._changed:
            self._log.clear()
            self._rules.clear()

    def _admit(self, request: _Request) -> Fault | None:
        """Record request with the first fault that takes it (using that fault up once)."""
        with self._changed:
            rule = next((r for r in self._rules if r.takes(request)), None)
            if rule is not None and rule.remaining is not None:
                rule.remaining -= 1
            fault = rule.fault if rule else None
            self._log.append(_recorded(request, fault))
            self._rules = [r for r in self._rules if r.remaining != 0]
            self._changed.notify_all()
        return fault

    # ------------------------------------------------------------------ serving (proxy thread)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        """The proxy thread's loop: serve until stop() asks, then cancel open connections."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
            client.headers.clear()  # send only the client's own headers upstream
            forward = _forwarder(client, self.upstream_origin, self.origin)
            server = await asyncio.start_server(
                lambda reader, writer: self._connection(reader, writer, forward),
                sock=self._socket,
            )
            self._ready.set()
            await self._stopping.wait()
            server.close()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, forward: Forward
    ) -> None:
        """Serve one client connection, request after request, until either side closes."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        connection = h11.Connection(h11.SERVER)
        try:
            while (request := await _read_request(connection, reader)) is not None:
                fault = self._admit(request)
                answer = await _respond(fault, request, forward)
                if answer is None:
                    break  # dropped: close without a word
                await _write(connection, writer, request, answer)
                if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                    break
                connection.start_next_cycle()
        except (ConnectionError, h11.ProtocolError):
            pass  # the client went away or spoke garbage: close
        except asyncio.CancelledError:
            # stop() closing the connection; not re-raised, as asyncio (3.11) logs an error
            # for a cancelled client_connected_cb task
            pass
        finally:
            writer.close()
            self._tasks.discard(task)


@contextmanager
def proxying(upstream: str) -> Iterator[FaultProxy]:
    """A started FaultProxy in front of upstream, stopped on leaving the block."""
    proxy = FaultProxy(upstream).start()
    try:
        yield proxy
    finally:
        proxy.stop()


# ---------------------------------------------------------------------- HTTP/1.1 through h11


async def _read_request(
    connection: h11.Connection, reader: asyncio.StreamReader
) -> _Request | None:
    """The next whole request on connection, or None once the client has closed it."""
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await reader.read(READ_SIZE))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            method, target = head.method.decode("ascii"), head.target.decode("ascii")
            return _Request(method, target, list(head.headers), bytes(body))
        else:
            return None


async def _write(
    connection: h11.Connection, writer: asyncio.StreamWriter, request: _Request, answer: _Answer
) -> None:
    """Write answer with a Content-Length that matches its body (a HEAD answer keeps the
    upstream's, and its body is empty)."""
    headers = list(answer.headers)
    if request.method != "HEAD" and answer.status >= 200 and answer.status not in {204, 304}:
        headers.append((b"content-length", str(len(answer.body)).encode()))
    data = connection.send(h11.Response(status_code=answer.status, headers=headers)) or b""
    if answer.body and request.method != "HEAD":
        data += connection.send(h11.Data(data=answer.body)) or b""
    data += connection.send(h11.EndOfMessage()) or b""
    writer.write(data)
    await writer.drain()


def _recorded(request: _Request, fault: Fault | None) -> ProxiedRequest:
    path, _, query = request.target.partition("?")
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers}
    return ProxiedRequest(
        request.method, path, query, headers, request.body, fault, time.monotonic()
    )


# ---------------------------------------------------------------------- forwarding and faults


def _forwarder(client: httpx.AsyncClient, upstream: str, proxy: str) -> Forward:
    """Forward a request to the upstream origin; its answer names the proxy instead."""

    async def forward(request: _Request) -> _Answer:
        headers = [(k, v) for k, v in request.headers if k.lower() not in NOT_FORWARDED]
        try:
            response = await client.request(
                request.method, upstream + request.target, headers=headers, content=request.body
            )
        except httpx.TransportError as exc:
            return _Answer(502, [(b"content-type", b"text/plain")], f"upstream: {exc!r}".encode())
        dropped = NOT_RETURNED - ({b"content-length"} if request.method == "HEAD" else set())
        returned = [
            (name, value.replace(upstream.encode(), proxy.encode()))
            for name, value in response.headers.raw
            if name.lower() not in dropped
        ]
        return _Answer(response.status_code, returned, response.content)

    return forward


async def _respond(fault: Fault | None, request: _Request, forward: Forward) -> _Answer | None:
    """The answer to request under fault (None: close the connection without one)."""
    if fault is None:
        return await forward(request)
    return await FAULTS[fault.kind](fault, request, forward)


async def _answer_status(fault: Fault, request: _Request, forward: Forward) -> _Answer:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in fault.headers.items()]
    return _Answer(fault.status, headers, fault.body)


async def _delay(fault: Fault, request: _Request, forward: Forward) -> _Answer:
    await asyncio.sleep(fault.seconds)  # cancelled by stop()
    return await forward(request)


async def _drop(fault: Fault, request: _Request, forward: Forward) -> None:
    return None


async def _truncate(fault: Fault, request: _Request, forward: Forward) -> _Answer:
    answer = await forward(request)
    return replace(answer, body=answer.body[: len(answer.body) // 2])


async def _replace_body(fault: Fault, request: _Request, forward: Forward) -> _Answer:
    return replace(await forward(request), body=fault.body)


FAULTS: dict[str, Callable[[Fault, _Request, Forward], Awaitable[_Answer | None]]] = {
    "status": _answer_status,
    "delay": _delay,
    "drop": _drop,
    "truncate": _truncate,
    "body": _replace_body,
}
