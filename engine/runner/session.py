"""One run of the module API in process: every listing page followed, name paths resolved by
listing, tasks started and their status polled to the end (a meter shown the progress)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.api.app import create_app
from engine.errors import RequestError
from engine.language.definition import Definition
from engine.runner.inprocess import InProcess
from engine.runner.items import NamePath, parse
from engine.settings import Settings

POLL_SECONDS = 0.2


class Meter(Protocol):
    """What a task's progress is shown on (engine.runner.progress)."""

    def show(self, answer: Mapping[str, Any]) -> None: ...
    def close(self) -> None: ...


@dataclass
class Listing:
    """Every resource of a listing (all its pages) and its non-fatal errors."""

    resources: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


class Session:
    """The module's API with the run's auth settings: listings, items, tasks."""

    def __init__(self, definition: Definition, engine: InProcess, auth: Mapping[str, Any]) -> None:
        self.definition = definition
        self.engine = engine
        self.auth = {"settings": dict(auth)}

    async def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """One API call with the run's auth."""
        return await self.engine.post(path, {"auth": self.auth} | dict(body))

    async def listing(self, ctx: Mapping[str, Any] | None) -> Listing:
        """The roots (ctx None) or the children of ctx, every page."""
        path, body = ("/api/roots", {}) if ctx is None else ("/api/resources", {"ctx": ctx})
        found = Listing()
        while True:
            answer = await self.post(path, body)
            found.resources += answer["resources"]
            found.errors += answer["errors"]
            if "paginationCtx" not in answer:
                return found
            body = body | {"paginationCtx": answer["paginationCtx"]}

    async def ctx_of(self, text: str) -> dict[str, Any]:
        """The ctx an item names (a name path looked up through the listings)."""
        named = parse(self.definition, text)
        if not isinstance(named, NamePath):
            return named
        ctx: dict[str, Any] | None = None
        for depth, name in enumerate(named.names):
            found = await self.listing(ctx)
            matches = [r for r in found.resources if r["name"] == name]
            if not matches:
                where = "/".join(named.names[:depth]) or "the roots"
                shown = ", ".join(r["name"] for r in found.resources[:10]) or "none"
                raise RequestError(f"item '{text}': no '{name}' under {where} (found: {shown})")
            ctx = matches[0]["ctx"]
        assert ctx is not None  # names is never empty (items.parse)
        return ctx

    async def ctxs_of(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """The ctx of each item, in order."""
        return [await self.ctx_of(text) for text in texts]

    async def task(self, role: str, body: Mapping[str, Any], meter: Meter) -> dict[str, Any]:
        """Start a task (bulk when body has items) and poll its status until DONE."""
        path = f"/api/bulk/{role}" if "items" in body else f"/api/{role}"
        start = {"taskUuid": str(uuid.uuid4())} | dict(body)
        try:
            return await self.follow(start, await self.post(path, start), meter)
        finally:
            meter.close()

    async def follow(
        self, start: Mapping[str, Any], answer: dict[str, Any], meter: Meter
    ) -> dict[str, Any]:
        """Poll the status of the task start began (answer: its last) until DONE."""
        while answer["status"] != "DONE":
            meter.show(answer)
            await asyncio.sleep(POLL_SECONDS)
            answer = await self.post("/api/status", _status_body(start, answer))
        meter.show(answer)
        return answer


def _status_body(start: Mapping[str, Any], answer: Mapping[str, Any]) -> dict[str, Any]:
    keep = {key: start[key] for key in ("storage", "destination") if key in start}
    return {"taskUuid": start["taskUuid"], "ctx": answer["ctx"]} | keep


@asynccontextmanager
async def session(
    definition: Definition, settings: Settings, auth: Mapping[str, Any]
) -> AsyncIterator[Session]:
    """The module's app running in process (lifespan started, stopped on the way out)."""
    async with InProcess(create_app(definition, settings)) as engine:
        yield Session(definition, engine, auth)
