"""A task's record in storage (``.engine/tasks/<taskUuid>.json``, docs/tasks.md): its request
without secrets, status, owner and heartbeat, finished units, progress and errors. It is rewritten
after finished units (at most every SAVE_EVERY seconds) and at each heartbeat, so any engine
process can answer for the task or resume it. Every write of it is a compare-and-swap (see
Journal), so one runner at a time holds a task: its lease."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import socket
from collections.abc import Mapping
from typing import Any

from engine.clock import Clock, iso, parse_iso
from engine.ctx import TASK_ROLES
from engine.errors import EngineError, LeaseLost, RequestError, StorageError
from engine.language.model import Identity
from engine.redaction import scrub
from engine.storage import ENGINE_DIR, Storage

log = logging.getLogger("engine.tasks.lifecycle")

FORMAT = 1
SAVE_EVERY = 2.0  # seconds between two saves prompted by finished units
MAX_ERRORS = 100  # errors a record lists; the rest are counted
_UUID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
STATUSES = ("PENDING", "RUNNING", "DONE", "FAILED")
FINISHED = ("DONE", "FAILED")


def new_owner() -> str:
    """A runner's identity as a lease owner: host, pid and a random part (one per start or
    resume, so two runs in one process never pass for each other)."""
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
    module: Identity,
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
        "module": {"id": module.id, "version": module.version},
        "request": dict(request),
        "status": "PENDING",
        "owner": owner,
        "epoch": 1,
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
        or data["kind"] not in TASK_ROLES
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
    """The live record of a task this process runs, and its lease: every write of the record is
    a compare-and-swap on the version this journal last wrote, so once another runner takes the
    task over (a write of its own), this one's next write fails with LeaseLost, and so does
    every later one. A finished record is never written again."""

    def __init__(
        self,
        storage: Storage,
        record: dict[str, Any],
        clock: Clock,
        *,
        version: str | None = None,
        lease_seconds: float = 30.0,
    ) -> None:
        self.storage = storage
        self.record = record
        self.clock = clock
        self.path = record_path(record["taskUuid"])
        self.version = version  # of the record as this journal last wrote it; None: unwritten
        self.lease_seconds = lease_seconds
        self.lost = False
        self._lock = asyncio.Lock()
        self._saved_at = clock.now()
        self._units = _UnitsText()

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

    @property
    def finished(self) -> bool:
        """Whether the record says DONE or FAILED (and storage does)."""
        return self.record["status"] in FINISHED

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
        """Writes the record whole (committed, or the previous one stays); LeaseLost when
        another runner wrote it since."""
        await self._write(self.record)

    async def fence(self) -> None:
        """Confirms the lease before a write beside the record (an object): saves unless a save
        confirmed it within half the staleness limit, which no take-over can beat; LeaseLost
        when it is gone (after a pause, say)."""
        if self.lost or self.clock.now() - self._saved_at >= self.lease_seconds / 2:
            await self.save()

    async def _write(self, record: dict[str, Any]) -> None:
        async with self._lock:
            if self.lost:
                raise LeaseLost(
                    f"task {record['taskUuid']} was taken over",
                    url=self.storage.url,
                    path=self.path,
                )
            if self.finished:
                return
            now = self.clock.now()
            record["updatedAt"] = iso(now)
            if record["status"] not in FINISHED:
                record["heartbeatAt"] = iso(now)
            payload = self._units.record(record)
            writing = asyncio.ensure_future(self.storage.write_if(self.path, payload, self.version))
            try:
                self.version = await asyncio.shield(writing)
            except asyncio.CancelledError:
                # the write goes on in its worker thread: learn what it did, or the next save
                # (the release at shutdown) would be refused as another runner's change
                await asyncio.wait([writing])
                self._learn(writing, now)
                raise
            except LeaseLost:
                self.lost = True
                raise
            self._saved_at = now

    def _learn(self, writing: asyncio.Future[str], now: float) -> None:
        """Takes in the outcome of a write its caller stopped waiting for."""
        failure = None if writing.cancelled() else writing.exception()
        if failure is None and not writing.cancelled():
            self.version, self._saved_at = writing.result(), now
        self.lost = self.lost or isinstance(failure, LeaseLost)

    async def beat(self, interval: float) -> None:
        """Saves every ``interval`` seconds (the heartbeat) until cancelled or the lease is
        lost; a failed save is logged and retried at the next beat (the lease lapses if it keeps
        failing). A save under way finishes even when the beat is cancelled, so it never lands
        after a later save, and its failure is read, never left to the garbage collector."""
        task_uuid = self.record["taskUuid"]
        while True:
            await self.clock.sleep(interval)
            saving = asyncio.ensure_future(self.save())
            try:
                await asyncio.shield(saving)
            except asyncio.CancelledError:
                await asyncio.wait([saving])
                _log_failure(saving, task_uuid)
                raise
            except LeaseLost:
                log.info("task %s: another process took it over; stopping", task_uuid)
                return
            except StorageError as exc:
                log.warning("heartbeat of task %s failed: %s", task_uuid, exc.message)

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


class _UnitsText:
    """The record's JSON, its units each encoded once: a save rewrites the record whole, and
    encoding every finished unit again at every save cost a backup of many small objects more
    CPU than anything else in its journal. A unit's text is reused while the record holds the
    same value under its key (units are added, replaced or removed, never changed in place);
    the units come last in the record's text."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[Any, str]] = {}

    def record(self, record: Mapping[str, Any]) -> bytes:
        """The record as JSON, as json.dumps writes it (compact separators aside from order)."""
        units: Mapping[str, Any] = record["units"]
        known, self._known = self._known, {}
        for key, value in units.items():
            text = known.get(key)
            if text is None or text[0] is not value:
                text = (value, f"{_dumps(key)}: {_dumps(value)}")
            self._known[key] = text
        rest = _dumps({name: value for name, value in record.items() if name != "units"})
        texts = ", ".join(text for _, text in self._known.values())
        return f'{rest[:-1]}{", " if len(rest) > 2 else ""}"units": {{{texts}}}}}'.encode()


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _log_failure(saving: asyncio.Future[None], task_uuid: str) -> None:
    """Reads a finished save's outcome: a storage failure is logged, a lost lease is not news."""
    failure = None if saving.cancelled() else saving.exception()
    if isinstance(failure, StorageError) and not isinstance(failure, LeaseLost):
        log.warning("heartbeat of task %s failed: %s", task_uuid, failure.message)


async def take_lease(
    storage: Storage,
    record: dict[str, Any],
    version: str,
    clock: Clock,
    *,
    lease_seconds: float = 30.0,
) -> Journal | None:
    """Claims a stale task: writes a new owner and the next fencing epoch, only if the record
    is still at version (compare-and-swap). The claimed task's journal, or None when another
    process wrote the record first."""
    now = iso(clock.now())
    epoch = record.get("epoch")
    claimed = dict(record) | {
        "owner": new_owner(),
        "epoch": (epoch if isinstance(epoch, int) else 0) + 1,
        "heartbeatAt": now,
        "updatedAt": now,
        "status": "RUNNING",
    }
    try:
        written = await storage.write_if(record_path(record["taskUuid"]), claimed, version)
    except LeaseLost:
        return None
    return Journal(storage, claimed, clock, version=written, lease_seconds=lease_seconds)
