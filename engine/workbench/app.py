"""The workbench's ASGI application: the module API's paths go to the module's own app (the
last good definition, reloaded as the files change), every other path to the author's page."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from engine.api.app import create_app
from engine.language.definition import Definition
from engine.runner.inprocess import InProcess
from engine.saas.recorder import recording
from engine.settings import Settings
from engine.workbench.live import POLL_SECONDS, Live
from engine.workbench.sample import PAGES, recorded, sample

HERE = Path(__file__).parent
API_PATHS = ("/api/", "/healthz", "/openapi.json")
READ_LIMIT = 1024 * 1024  # bytes of a test read's request: auth settings, a ctx
MAX_PAGES = 50  # pages a sample's listing may be asked to read
NOT_LOADED = {
    "error": {
        "code": "INTERNAL",
        "description": "no valid module loaded yet: fix the problems the workbench page shows",
    }
}

NOT_LOCAL = {
    "error": {
        "code": "FORBIDDEN",
        "description": "engine dev answers its own page on 127.0.0.1 or localhost only",
    }
}
LOCAL_NAMES = frozenset({"127.0.0.1", "localhost"})

templates = Jinja2Templates(directory=HERE / "templates")


def local(scope: dict[str, Any]) -> bool:
    """Whether a request is for this local server (its Host: not a DNS-rebound name) and, when
    a browser says where it comes from (Origin), from this server's own page: another site open
    in the same browser must not drive the module API with the page's folder and network."""
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"").decode("latin-1")
    origin = headers.get(b"origin")
    if host.rsplit(":", 1)[0] not in LOCAL_NAMES:
        return False
    return origin is None or origin.decode("latin-1") == f"http://{host}"


class Workbench:
    """ASGI: the module API to the live module's app, the rest to the page's app."""

    def __init__(self, live: Live, page: Starlette) -> None:
        self.live = live
        self.page = page

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not local(scope):
            await JSONResponse(NOT_LOCAL, status_code=403)(scope, receive, send)
        elif scope["type"] == "http" and scope["path"].startswith(API_PATHS):
            await self._api(scope, receive, send)
        else:
            await self.page(scope, receive, send)

    async def _api(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        async with self.live.using() as current:
            if current is None:
                await JSONResponse(NOT_LOADED, status_code=503)(scope, receive, send)
            else:
                await current.forward(scope, receive, send)


async def page(request: Request) -> Response:
    """The author's page: the live definition, sign in, resource tree."""
    live: Live = request.app.state.live
    return templates.TemplateResponse(request, "page.html", {"state": live.state()})


async def state(request: Request) -> Response:
    """The module's problems and which definition serves, polled by the page; the local
    backup folder, where the page's runs go by default."""
    live: Live = request.app.state.live
    return JSONResponse(live.state() | {"backupDir": request.app.state.backup_dir})


async def read(request: Request) -> Response:
    """A test read: the module API's listing of a node's children (the roots with no ``ctx``)
    as the platform gets it, with every request the engine sent to the SaaS for it."""
    data = await request.body()
    path = _listing(data)
    if path is None:
        refused = {"description": f"not a JSON object of at most {READ_LIMIT} bytes"}
        return JSONResponse({"error": refused}, 400)

    async def listed(current: InProcess) -> dict[str, Any]:
        with recording() as exchanges:
            status, answer = await current.call("POST", path, data)
        sent = [asdict(exchange) for exchange in exchanges]
        return {"path": path, "status": status, "answer": answer, "requests": sent}

    return await _on_app(request, listed)


async def backup_sample(request: Request) -> Response:
    """A backup sample of one node (``ctx``): what a backup would send and store, kept in
    memory only; ``step`` (one of the node type's backup steps; all when absent) and ``pages``
    (the pages a listing reads, PAGES by default) bound it."""
    asked = _object(await request.body())
    live: Live = request.app.state.live
    bounds = _bounds(asked, live.state()["steps"])
    if asked is None or not isinstance(asked.get("ctx"), dict) or bounds is None:
        refused = {
            "description": f"not a JSON object with a ctx, one of the module's backup steps or"
            f" none, pages from 1 to {MAX_PAGES}, of at most {READ_LIMIT} bytes"
        }
        return JSONResponse({"error": refused}, 400)
    settings: Settings = request.app.state.settings
    return await _on_app(request, lambda current: sample(current, asked, settings, bounds))


def _bounds(
    asked: dict[str, Any] | None, steps: dict[str, list[dict[str, Any]]]
) -> tuple[str | None, int] | None:
    """A sample's step (one of ``steps``, each type's) and page count, if the request names
    them well."""
    step, pages = (asked or {}).get("step"), (asked or {}).get("pages", PAGES)
    good_step = step is None or any(step == each["id"] for kind in steps.values() for each in kind)
    good_pages = type(pages) is int and 1 <= pages <= MAX_PAGES
    return (step, pages) if good_step and good_pages else None


async def restore_recorded(request: Request) -> Response:
    """A restore (a dry run, say) through the module API, as the page would start it, with the
    requests it sent and the writes it would make (their bodies) recorded."""
    start = _object(await request.body())
    if start is None or not all(key in start for key in ("taskUuid", "storage")):
        refused = {"description": "not a restore's start (a taskUuid, a storage) as JSON"}
        return JSONResponse({"error": refused}, 400)
    path = "/api/bulk/restore" if "items" in start else "/api/restore"
    start.setdefault("auth", {})
    return await _on_app(request, lambda current: recorded(current, path, start))


async def _on_app(
    request: Request, work: Callable[[InProcess], Awaitable[dict[str, Any]]]
) -> Response:
    """``work``'s answer on the module's app (kept running through a reload until it is
    done); 503 while no good definition has been loaded."""
    live: Live = request.app.state.live
    async with live.using() as current:
        if current is None:
            return JSONResponse(NOT_LOADED, status_code=503)
        return JSONResponse(await work(current))


def _object(data: bytes) -> dict[str, Any] | None:
    """The JSON object of a request body, if it is one of at most READ_LIMIT bytes."""
    try:
        asked = json.loads(data or b"{}") if len(data) <= READ_LIMIT else None
    except ValueError:
        return None
    return asked if isinstance(asked, dict) else None


def _listing(data: bytes) -> str | None:
    """The module API path a test read lists through: resources for a ctx, else the roots."""
    asked = _object(data)
    if asked is None:
        return None
    return "/api/resources" if asked.get("ctx") else "/api/roots"


def create_workbench(folder: Path, settings: Settings, *, poll: float = POLL_SECONDS) -> Workbench:
    """The workbench for the module in ``folder`` (``poll``: seconds between file checks)."""

    def serve(definition: Definition) -> InProcess:
        return InProcess(create_app(definition, settings))

    live = Live(folder, serve)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await live.refresh()
        watcher = asyncio.create_task(live.watch(poll))
        try:
            yield
        finally:
            watcher.cancel()
            with suppress(asyncio.CancelledError):
                await watcher
            await live.close()

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/dev/state", state, methods=["GET"]),
        Route("/dev/read", read, methods=["POST"]),
        Route("/dev/sample", backup_sample, methods=["POST"]),
        Route("/dev/restore", restore_recorded, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.live = live
    app.state.backup_dir = settings.backup_dir
    app.state.settings = settings
    return Workbench(live, app)
