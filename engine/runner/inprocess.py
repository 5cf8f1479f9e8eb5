"""The module's app driven in process: its lifespan started and stopped through the ASGI
lifespan protocol and each call made as one ASGI HTTP request, as uvicorn would make them, so
nothing differs from ``engine serve`` but the socket. (Not Starlette's TestClient: it is built
on httpx, which only engine.saas.client may import, and runs the app on a second thread.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, MutableMapping
from contextlib import suppress
from types import TracebackType
from typing import Any

from engine.errors import Code, EngineError, RecordedError

Message = MutableMapping[str, Any]


class InProcess:
    """An ASGI app with its lifespan running: ``post`` makes one API call."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._state: dict[str, Any] = {}
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._lifespan: asyncio.Task[None] | None = None

    async def __aenter__(self) -> InProcess:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self._state}
        self._lifespan = asyncio.create_task(self._app(scope, self._inbox.get, self._outbox.put))
        await self._phase("startup")
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self._phase("shutdown")
        if self._lifespan is not None:
            await self._lifespan

    async def _phase(self, name: str) -> None:
        await self._inbox.put({"type": f"lifespan.{name}"})
        answer = await self._outbox.get()
        if answer["type"] != f"lifespan.{name}.complete":
            raise EngineError(f"the engine failed to {name}: {answer.get('message', '')}")

    async def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """The answer of POST ``path`` with ``body``; an error answer raised as RecordedError
        with its wire code, HTTP status and description (secrets already masked by the app)."""
        status, answer = await self.call("POST", path, json.dumps(body).encode())
        if status >= 400:
            raise _failure(status, answer)
        return dict(answer)

    async def forward(self, scope: Message, receive: Any, send: Any) -> None:
        """Hands one request of a real server (engine dev) to the app, with its lifespan state."""
        await self._app({**scope, "state": dict(self._state)}, receive, send)

    async def call(self, method: str, path: str, data: bytes = b"") -> tuple[int, Any]:
        """(HTTP status, decoded JSON answer) of one request to the app."""
        sent: list[Message] = []
        received = iter([{"type": "http.request", "body": data, "more_body": False}])

        async def receive() -> Message:
            return next(received, {"type": "http.disconnect"})

        async def send(message: Message) -> None:
            sent.append(message)

        # the app answers 500 before it re-raises an unexpected error; its log has the rest
        with suppress(Exception):
            await self._app(_scope(method, path, len(data), self._state), receive, send)
        return _status(sent), _decoded(sent)


def _scope(method: str, path: str, size: int, state: Mapping[str, Any]) -> dict[str, Any]:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(size).encode())]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 0),
        "server": ("engine-run", 0),
        "state": dict(state),
    }


def _status(sent: list[Message]) -> int:
    starts = [message for message in sent if message["type"] == "http.response.start"]
    return int(starts[0]["status"]) if starts else 500


def _decoded(sent: list[Message]) -> Any:
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    try:
        return json.loads(body) if body else {}
    except ValueError:
        return {"error": {"code": "INTERNAL", "description": "the engine answered no JSON"}}


def _failure(status: int, answer: Any) -> RecordedError:
    error = answer.get("error", {}) if isinstance(answer, Mapping) else {}
    try:
        code = Code(error.get("code", "INTERNAL"))
    except ValueError:
        code = Code.INTERNAL
    description = str(error.get("description", f"the engine answered HTTP {status}"))
    return RecordedError(code, status, description, error.get("payload"))
