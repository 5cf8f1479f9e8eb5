"""A backup sample (engine dev): one node's backup step (or all its steps) run through the
module API into a fresh ``memory://`` folder of this process, each listing stopped after its
first pages, every SaaS request of it recorded, then the first records of each object it stored
read back, and the folder removed. Nothing reaches disk. Also any task run with its requests
recorded (a dry-run restore's planned writes among them)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from contextlib import aclosing
from dataclasses import asdict
from typing import Any

from engine.errors import EngineError
from engine.runner.inprocess import InProcess
from engine.saas import recorder
from engine.settings import Settings
from engine.storage import Storage, open_storage
from engine.tasks import manifest
from engine.tasks.contents import records_of
from engine.tasks.manifest import Entry

SHOWN_RECORDS = 5  # of each stored object
SHOWN_EXCHANGES = 200
PAGES = 2  # a listing's pages a sample reads
POLL_SECONDS = 0.1
DEADLINE_SECONDS = 120.0


async def sample(
    current: InProcess,
    asked: Mapping[str, Any],
    settings: Settings,
    bounds: tuple[str | None, int] = (None, PAGES),
) -> dict[str, Any]:
    """The sample of the node at ``asked["ctx"]`` (with its backup ``options`` and
    ``excludes``, if any; ``bounds``: its one backup step, None for
    all, and the pages a listing reads): the task's last answer (or error), the requests sent,
    the objects stored with their first records, and whether a listing stopped early."""
    url = f"memory://engine-dev/{uuid.uuid4()}"
    start = {"auth": asked.get("auth") or {}, "taskUuid": str(uuid.uuid4())}
    start |= {"storage": {"url": url}, "ctx": asked["ctx"]}
    start |= {key: asked[key] for key in ("options", "excludes") if key in asked}
    with recorder.sampling(*bounds) as sampled:
        found = await recorded(current, "/api/backup", start)
    objects = await _stored(url, settings) if found["status"] == 200 else []
    step, pages = bounds
    return found | {"objects": objects, "step": step, "pages": pages, "more": sampled.stopped}


async def recorded(current: InProcess, path: str, start: Mapping[str, Any]) -> dict[str, Any]:
    """A task started at ``path`` and polled to its end, with every SaaS request it sent (and,
    for a dry-run restore, every write it would make) recorded."""
    with recorder.recording() as exchanges:
        status, answer = await _finished(current, path, start)
    sent = [asdict(exchange) for exchange in exchanges[:SHOWN_EXCHANGES]]
    return {"status": status, "answer": answer, "requests": sent}


async def _finished(current: InProcess, path: str, start: Mapping[str, Any]) -> tuple[int, Any]:
    """The task started and polled until DONE, an error answer, or the deadline."""
    status, answer = await _post(current, path, start)
    deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS
    while status == 200 and answer.get("status") != "DONE":
        if asyncio.get_running_loop().time() > deadline:
            return 504, {"error": {"description": f"not done in {DEADLINE_SECONDS} s"}}
        await asyncio.sleep(POLL_SECONDS)
        keep = {key: start[key] for key in ("auth", "taskUuid", "storage")}
        status, answer = await _post(current, "/api/status", keep | {"ctx": answer["ctx"]})
    return status, answer


async def _post(current: InProcess, path: str, body: Mapping[str, Any]) -> tuple[int, Any]:
    return await current.call("POST", path, json.dumps(body).encode())


async def _stored(url: str, settings: Settings) -> list[dict[str, Any]]:
    """Each stored object with its first records; the sample's folder removed after."""
    storage = open_storage(url, None, allow=("memory://",), defaults=settings.storage_options)
    try:
        found = await manifest.read(storage, None)
        return [await _object(storage, entry) for entry in found.entries]
    finally:
        await storage.remove_tree()
        await storage.aclose()


async def _object(storage: Storage, entry: Entry) -> dict[str, Any]:
    shown: dict[str, Any] = {"path": entry.path, "type": entry.type, "step": entry.step}
    shown |= {"format": entry.format, "bytes": entry.info.raw_size, "count": entry.info.records}
    shown["records"] = []
    try:
        async with aclosing(records_of(storage, entry)) as records:
            async for record in records:
                shown["records"].append(record)
                if len(shown["records"]) == SHOWN_RECORDS:
                    break
    except EngineError as exc:  # a raw object that is not text, say
        shown["unreadable"] = exc.message
    return shown
