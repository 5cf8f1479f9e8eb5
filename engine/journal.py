"""A task's record in storage (``.engine/tasks/<taskUuid>.json``, docs/tasks.md): its request
without secrets, status, owner and heartbeat, finished units, progress and errors. It is rewritten
after finished units (at most every SAVE_EVERY seconds) and at each heartbeat, so any engine
process can answer for the task or resume it."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import socket
from collections.abc import Mapping
from typing import Any

from engine.clock import Clock, iso, parse_iso
from engine.errors import EngineError, RequestError, StorageError
from engine.redaction import scrub
from engine.storage import ENGINE_DIR, Storage

log = logging.getLogger("engine.tasks")

FORMAT = 1
SAVE_EVERY = 2.0  # seconds between two saves prompted by finished units
MAX_ERRORS = 100  # errors a record lists; the rest are counted
_UUID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
STATUSES = ("PENDING", "RUNNING", "DONE", "FAILED")


def new_owner() -> str:
    """This process's identity as a lease owner: host, pid and a random part."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


def record_path(task_uuid: str) -> str:
    """Where a task's record lives below the storage root; RequestError for an unusable uuid."""
    if not _UUID.fullmatch(task_uuid):
        raise RequestError(
            "taskUuid must be 1 to 128 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return f"{ENGINE_DIR}/tasks/{task_uuid}.json"


def new_record(
    task_uuid: str,
    kind: str,
    *,
    module: Mapping[str, Any],
    request: Mapping[str, Any],
    owner: str,
    now: float,
) -> dict[str, Any]:
    """The record of a task about to start (``request`` must hold no secret)."""
    stamp = iso(now)
    return {
        "format": FORMAT,
        "taskUuid": task_uuid,
        "kind": kind,
        "module": {"id": module["id"], "version": module["version"]},
        "request": dict(request),
        "status": "PENDING",
        "owner": owner,
        "heartbeatAt": stamp,
        "createdAt": stamp,
        "updatedAt": stamp,
        "finishedAt": None,
        "progress": {"done": 0, "total": None, "bytes": 0},
        "units": {},
        "errors": [],
        "error": None,
    }


def check_record(data: Any, task_uuid: str) -> dict[str, Any]:
    """A record read from storage, checked enough to act on; StorageError when it is not one."""
    fields = ("taskUuid", "kind", "request", "status", "units", "errors", "progress")
    if (
        not isinstance(data, dict)
        or any(key not in data for key in fields)
        or data["taskUuid"] != task_uuid
        or data["status"] not in STATUSES
        or not isinstance(data["units"], dict)
        or not isinstance(data["errors"], list)
    ):
        raise StorageError(
            f"the record of task {task_uuid} is malformed", url="", path=record_path(task_uuid)
        )
    return data


def is_stale(record: Mapping[str, Any], now: float, stale_seconds: float) -> bool:
    """Whether a running task's owner stopped beating (or released it)."""
    beat = parse_iso(record.get("heartbeatAt"))
    return record.get("owner") is None or beat is None or now - beat > stale_seconds


class Journal:
    """The live record of a task this process runs."""

    def __init__(self, storage: Storage, record: dict[str, Any], clock: Clock) -> None:
        self.storage = storage
        self.record = record
        self.clock = clock
        self.path = record_path(record["taskUuid"])
        self._lock = asyncio.Lock()
        self._saved_at = clock.now()

    @property
    def units(self) -> dict[str, Any]:
        """Finished units by key (an object path)."""
        units: dict[str, Any] = self.record["units"]
        return units

    @property
    def progress(self) -> dict[str, Any]:
        """done, total (None until known) and bytes."""
        progress: dict[str, Any] = self.record["progress"]
        return progress

    def error(self, entry: Mapping[str, Any]) -> None:
        """Adds a non-fatal error (its description scrubbed of secrets); past MAX_ERRORS, only
        counts it, and the last entry says how many more there were."""
        errors: list[dict[str, Any]] = self.record["errors"]
        if len(errors) < MAX_ERRORS:
            errors.append(dict(entry) | {"description": scrub(entry["description"])})
            return
        more = self.record.get("moreErrors", 0) + 1
        self.record["moreErrors"] = more
        errors[-1] = {
            "code": entry["code"],
            "description": f"{more + 1} more errors like the ones above are not listed",
        }

    async def unit(self, key: str, value: Mapping[str, Any]) -> None:
        """Records a finished unit; saves when the last save is old enough."""
        self.units[key] = dict(value)
        if self.clock.now() - self._saved_at >= SAVE_EVERY:
            await self.save()

    async def save(self) -> None:
        """Writes the record whole (committed, or the previous one stays)."""
        await self._write(self.record)

    async def _write(self, record: dict[str, Any]) -> None:
        async with self._lock:
            now = self.clock.now()
            record["updatedAt"] = iso(now)
            if record["status"] in ("PENDING", "RUNNING"):
                record["heartbeatAt"] = iso(now)
            await self.storage.write_json(self.path, record, engine=True)
            self._saved_at = now

    async def beat(self, interval: float) -> None:
        """Saves every ``interval`` seconds (the heartbeat) until cancelled; a failed save is
        logged and retried at the next beat (the lease lapses if it keeps failing). A save under
        way finishes even when the beat is cancelled, so it never lands after a later save."""
        while True:
            await self.clock.sleep(interval)
            try:
                await asyncio.shield(self.save())
            except StorageError as exc:
                log.warning("heartbeat of task %s failed: %s", self.record["taskUuid"], exc.message)

    async def finish(self, error: EngineError | None) -> None:
        """Marks the task DONE, or FAILED with ``error``, and saves. The record in memory says
        so only once storage does: whoever reads it meanwhile still sees the task running."""
        final = dict(self.record)
        final["status"] = "FAILED" if error is not None else "DONE"
        final["finishedAt"] = iso(self.clock.now())
        if error is not None:
            final["error"] = {
                "status": error.status,
                "code": str(error.code),
                "description": scrub(error.message),
            }
        await self._write(final)
        self.record = final

    async def release(self) -> None:
        """Gives the task up (shutdown): no owner, so the next status call resumes it at once."""
        self.record["owner"] = None
        await self.save()


async def take_lease(
    storage: Storage, task_uuid: str, record: dict[str, Any], owner: str, clock: Clock
) -> dict[str, Any] | None:
    """Claims a stale task: writes this process as owner, reads back to confirm that no other
    process claimed it at the same time. The claimed record, or None when another won."""
    path = record_path(task_uuid)
    claimed = dict(record) | {"owner": owner, "heartbeatAt": iso(clock.now()), "status": "RUNNING"}
    await storage.write_json(path, claimed, engine=True)
    await clock.sleep(0.05)  # let a concurrent claimer's write land before reading back
    current = check_record(await storage.read_json(path), task_uuid)
    return current if current.get("owner") == owner else None
