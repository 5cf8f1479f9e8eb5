"""A small real SaaS that keeps logins in cookies (Starlette under uvicorn, in a background
thread, on a free loopback port), for the isolation tests.

Two ways in, as real SaaS have them:
- ``/sticky/...``: a request with the right bearer token is answered with a ``sid`` cookie,
  and from then on that cookie alone lets a request in, whatever its token says;
- ``/session/...``: ``POST /session/login`` with the right user and password answers a token
  and sets a ``session`` cookie; a request needs both, the token and the cookie it came with;
- ``/plain/...``: ``POST /plain/login`` answers a token and sets no cookie; the token alone
  lets a request in.

Every request is recorded with the cookies it carried; ``logins`` counts the session logins."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
THINGS = [{"id": f"thing-{n}", "name": f"Thing {n}"} for n in range(3)]


@dataclass(frozen=True)
class Seen:
    """One request as the server saw it: path, bearer token (or None), cookies."""

    path: str
    token: str | None
    cookies: dict[str, str]


@dataclass
class CookieSaas:
    """The SaaS's state: the good bearer token and login, and the sessions it handed out."""

    token: str
    user: str
    password: str
    seen: list[Seen] = field(default_factory=list)
    sids: set[str] = field(default_factory=set)  # sticky cookies handed out
    sessions: dict[str, str] = field(default_factory=dict)  # session cookie -> its token
    tokens: set[str] = field(default_factory=set)  # tokens of plain logins
    logins: int = 0
    url: str = ""

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/sticky/{what}", self._sticky),
                Route("/{mode:str}/login", self._login, methods=["POST"]),
                Route("/session/{what}", self._session),
                Route("/plain/{what}", self._plain),
            ]
        )

    def _note(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        self.seen.append(Seen(request.url.path, token, dict(request.cookies)))
        return token

    async def _sticky(self, request: Request) -> Response:
        token = self._note(request)
        if request.cookies.get("sid") in self.sids:
            return _answer(request)
        if token != self.token:
            return _refused()
        sid = secrets.token_hex(8)
        self.sids.add(sid)
        answer = _answer(request)
        answer.set_cookie("sid", sid)
        return answer

    async def _login(self, request: Request) -> Response:
        """A session login (a token and its cookie) or a plain one (a token alone)."""
        token = await self._token_for(request)
        if token is None:
            return _refused()
        answer = JSONResponse({"token": token})
        if request.path_params["mode"] == "plain":
            self.tokens.add(token)
            return answer
        cookie = secrets.token_hex(8)
        self.sessions[cookie] = token
        answer.set_cookie("session", cookie)
        return answer

    async def _token_for(self, request: Request) -> str | None:
        """A new token when the request logs in with the right user and password."""
        self._note(request)
        if await request.json() != {"user": self.user, "password": self.password}:
            return None
        self.logins += 1
        return f"token-{self.url[-5:]}-{secrets.token_hex(8)}"

    async def _plain(self, request: Request) -> Response:
        return _answer(request) if self._note(request) in self.tokens else _refused()

    async def _session(self, request: Request) -> Response:
        token = self._note(request)
        cookie = request.cookies.get("session", "")
        if token is None or self.sessions.get(cookie) != token:
            return _refused()
        return _answer(request)


def _refused() -> Response:
    return JSONResponse({"error": "unauthorized"}, status_code=401)


def _answer(request: Request) -> Response:
    if request.path_params["what"] == "me":
        return JSONResponse({"user": "alice"})
    return JSONResponse({"items": THINGS})


@contextmanager
def serve(token: str, user: str = "alice", password: str = "wonderland") -> Iterator[CookieSaas]:
    """A running CookieSaas (its ``url`` set), stopped on leaving the block."""
    saas = CookieSaas(token, user, password)
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((HOST, 0))
    saas.url = f"http://{HOST}:{sock.getsockname()[1]}"
    config = uvicorn.Config(saas.app(), log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the cookie test server did not start")
            time.sleep(0.01)
        yield saas
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)
        sock.close()
