"""A small real HTTP server for the client and pagination tests (Starlette under uvicorn, in a
background thread, on a free loopback port).

It serves a list of items under one path per pagination kind, misbehaving paths, and an echo;
every request it receives is recorded. All paths live below ``/api``, so a base URL has a path
and relative next-page URLs can be told apart from ones resolved against the base."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

HOST = "127.0.0.1"
PREFIX = "/api"
START_TIMEOUT = 10.0
SLOW_SECONDS = 5.0  # how long /fail/slow holds an answer (the server's stop cuts it short)
FAILURES = ("not-json", "no-items", "nan", "500", "401", "403", "slow")
ECHO_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "PROPFIND", "MKCALENDAR"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Received:
    """One request as the server saw it (header names in lower case)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The request body as JSON."""
        return json.loads(self.body)


class _Recorder:
    """ASGI middleware: records each HTTP request (body included), then replays it."""

    def __init__(self, app: App, log: list[Received]) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.log.append(_received(scope, body))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _received(scope: Scope, body: bytes) -> Received:
    return Received(
        method=scope["method"],
        path=scope["path"],
        query=dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)),
        headers={k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
        body=body,
    )


class PagedServer:
    """The server: ``items`` (``{"id", "n"}``) served ``page_size`` at a time by default."""

    def __init__(self, items: int = 47, page_size: int = 10) -> None:
        self.items = [{"id": f"item-{n:03d}", "n": n} for n in range(items)]
        self.page_size = page_size
        self.requests: list[Received] = []
        self._stopping = threading.Event()
        self._socket = socket.socket()
        # Accepted connections inherit this: without it, a response written in two parts
        # waits ~40 ms for the client's delayed ACK (Nagle's algorithm).
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.bind((HOST, 0))
        self.port: int = self._socket.getsockname()[1]
        self.origin = f"http://{HOST}:{self.port}"
        self.url = self.origin + PREFIX
        config = uvicorn.Config(
            _Recorder(self._app(), self.requests),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    # ------------------------------------------------------------------ life cycle and log

    def start(self) -> PagedServer:
        """Starts serving; returns once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._socket.close()
                raise RuntimeError("the paged test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stops serving (a held slow answer ends at once) and waits for the thread."""
        self._stopping.set()
        self._server.should_exit = True
        self._thread.join(START_TIMEOUT)
        self._socket.close()

    def received(self, path: str | None = None) -> list[Received]:
        """The requests received so far, or those for one path (relative to the base URL)."""
        return [r for r in self.requests if path is None or r.path == PREFIX + path]

    def clear(self) -> None:
        """Forgets the requests received so far."""
        self.requests.clear()

    # ------------------------------------------------------------------ the application

    def _app(self) -> Starlette:
        routes = [
            Route("/all", self._all),
            Route("/offset", self._offset),
            Route("/page", self._page),
            Route("/cursor", self._cursor),
            Route("/next-url", self._next_url),
            Route("/header", self._header),
            Route("/link", self._link),
            Route("/link-relative", self._link_relative),
            Route("/repeat", self._repeat),
            Route("/self", self._self),
            Route("/foreign", self._foreign),
            Route("/empty-next", self._empty_next),
            Route("/fail/{how}", self._fail),
            Route("/fail-later/{how}", self._fail_later),
            Route("/redirect", self._redirect),
            Route("/blob", self._blob),
            Route("/echo", self._echo, methods=ECHO_METHODS),
            Route("/echo/{rest:path}", self._echo, methods=ECHO_METHODS),
        ]
        return Starlette(routes=[Mount(PREFIX, routes=routes)])

    def _window(self, start: int, size: int | None = None) -> tuple[list[Any], int | None]:
        """The items from ``start``, and where the next page starts (None after the last)."""
        end = start + (size or self.page_size)
        return self.items[start:end], (end if end < len(self.items) else None)

    async def _all(self, request: Request) -> Response:
        return JSONResponse({"items": self.items})

    async def _offset(self, request: Request) -> Response:
        offset = int(request.query_params.get("offset", 0))
        limit = int(request.query_params.get("limit", self.page_size))
        return JSONResponse({"items": self.items[offset : offset + limit]})

    async def _page(self, request: Request) -> Response:
        size = int(request.query_params.get("per_page", self.page_size))
        page = int(request.query_params.get("page", 1))
        return JSONResponse({"items": self.items[(page - 1) * size : page * size]})

    async def _cursor(self, request: Request) -> Response:
        items, following = self._window(_start(request.query_params.get("cursor")))
        return JSONResponse({"items": items, "next": _cursor(following)})

    async def _next_url(self, request: Request) -> Response:
        items, following = self._window(_start(request.query_params.get("start")))
        url = _url(request, start=_cursor(following)) if following is not None else None
        return JSONResponse({"items": items, "links": {"next": url}})

    async def _header(self, request: Request) -> Response:
        # Kinto's style: the next page's absolute URL in a Next-Page header, absent at the end
        items, following = self._window(_start(request.query_params.get("_token")))
        headers = {"Next-Page": _url(request, _token=_cursor(following))} if following else {}
        return JSONResponse({"items": items}, headers=headers)

    async def _link(self, request: Request) -> Response:
        page = int(request.query_params.get("page", 1))
        items, following = self._window((page - 1) * self.page_size)
        links = [f'<{_url(request, page=1)}>; rel="first"']
        if following is not None:
            links.insert(0, f'<{_url(request, page=page + 1)}>; rel="next"')
        return JSONResponse({"items": items}, headers={"Link": ", ".join(links)})

    async def _link_relative(self, request: Request) -> Response:
        # A relative reference: RFC 8288 resolves it against this page's URL
        page = int(request.query_params.get("page", 1))
        items, following = self._window((page - 1) * self.page_size)
        headers = {"Link": f'<?page={page + 1}>; rel="next"'} if following is not None else {}
        return JSONResponse({"items": items}, headers=headers)

    async def _repeat(self, request: Request) -> Response:
        # Page 1, then page 2 forever: the next cursor (and URL) is always the same
        start = 0 if "cursor" not in request.query_params else self.page_size
        return _every_carrier(request, self._window(start)[0], "again")

    async def _self(self, request: Request) -> Response:
        # A first page whose next page is itself
        return _every_carrier(request, self._window(0)[0], "self", url=str(request.url))

    async def _foreign(self, request: Request) -> Response:
        # One good page whose next page lives at another origin (the `to` query parameter)
        elsewhere = request.query_params["to"]
        return _every_carrier(request, self._window(0)[0], "elsewhere", url=elsewhere)

    async def _empty_next(self, request: Request) -> Response:
        # One good page, then an empty page that still names a next one
        cursor = request.query_params.get("cursor")
        items = self._window(0)[0] if cursor is None else []
        return _every_carrier(request, items, "more" if cursor is None else "still-more")

    async def _fail(self, request: Request) -> Response:
        return await self._failure(request.path_params["how"])

    async def _fail_later(self, request: Request) -> Response:
        # One good page, then the failure named in the path
        if "cursor" in request.query_params:
            return await self._failure(request.path_params["how"])
        return _every_carrier(request, self._window(0)[0], "later")

    async def _failure(self, how: str) -> Response:
        if how == "slow":
            await self._hold(SLOW_SECONDS)
        table: dict[str, Response] = {
            "not-json": Response("<html>Service Unavailable</html>", media_type="text/html"),
            "no-items": JSONResponse({"data": []}),
            "nan": Response('{"items": [{"id": NaN}]}', media_type="application/json"),
            "500": JSONResponse({"error": "boom"}, status_code=500),
            "401": JSONResponse({"error": "who are you"}, status_code=401),
            "403": JSONResponse({"error": "not you"}, status_code=403),
            "slow": JSONResponse({"items": []}),
        }
        return table[how]

    async def _hold(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._stopping.is_set():
            await asyncio.sleep(0.02)

    async def _blob(self, request: Request) -> Response:
        # ``size`` bytes of a repeating pattern, sent in one piece
        size = int(request.query_params.get("size", "0"))
        return Response((b"0123456789abcdef" * (size // 16 + 1))[:size])

    async def _redirect(self, request: Request) -> Response:
        return RedirectResponse(f"{PREFIX}/all", status_code=302)

    async def _echo(self, request: Request) -> Response:
        # answers with the Link header the `link` query parameter asks for, if any
        link = request.query_params.get("link")
        headers = {"Link": link} if link else {}
        return JSONResponse({"items": [], "method": request.method}, headers=headers)


def _start(cursor: str | None) -> int:
    return 0 if cursor is None else int(cursor.removeprefix("o"))


def _cursor(start: int | None) -> str | None:
    return None if start is None else f"o{start}"


def _url(request: Request, **params: Any) -> str:
    return str(request.url.include_query_params(**params))


def _every_carrier(
    request: Request, items: list[Any], cursor: str, url: str | None = None
) -> Response:
    """A page naming its successor every way at once: body cursor and URL, header, Link."""
    following = url or _url(request, cursor=cursor)
    body = {"items": items, "next": cursor, "links": {"next": following}}
    headers = {"Next-Page": following, "Link": f'<{following}>; rel="next"'}
    return JSONResponse(body, headers=headers)


@contextmanager
def serve(items: int = 47, page_size: int = 10) -> Iterator[PagedServer]:
    """A started PagedServer, stopped on leaving the block."""
    server = PagedServer(items, page_size).start()
    try:
        yield server
    finally:
        server.stop()


def closed_port_url() -> str:
    """A base URL on a loopback port that nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    return f"http://{HOST}:{port}{PREFIX}"
