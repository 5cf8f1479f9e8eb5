"""Tasks: starting them, answering /api/status, resuming a task whose owner died, heartbeats and
shutdown; what each kind does is its row in engine/tasks/kinds.py. Everything a task needs to go
on lives in its record in storage (journal.py; design in docs/tasks.md), so any process can take
it up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.clock import Clock, SystemClock
from engine.ctx import parse_task_ctx, task_ctx
from engine.errors import (
    EngineError,
    LeaseLost,
    NotFoundError,
    ObjectNotFound,
    RequestError,
    Unavailable,
    entry_of,
)
from engine.language.definition import Definition
from engine.language.model import HooksSection
from engine.logs import current_task
from engine.saas import access
from engine.saas.client import Outbound, Saas
from engine.settings import Settings
from engine.storage import Storage, open_storage
from engine.tasks.answers import record_answer, recorded_error, task_body
from engine.tasks.guards import Guards
from engine.tasks.handover import Handover, Handovers, presented
from engine.tasks.job import Job
from engine.tasks.journal import (
    Journal,
    check_record,
    is_stale,
    new_owner,
    new_record,
    record_path,
    take_lease,
)
from engine.tasks.kinds import KINDS, AtOnce, Kind, Recorded
from engine.tasks.requests import Requests

log = logging.getLogger("engine.tasks.lifecycle")

# the task hook points and where the definition names each one's function
TASK_HOOKS: dict[str, Callable[[HooksSection], str | None]] = {
    "beforeTask": lambda section: section.before_task,
    "afterTask": lambda section: section.after_task,
}


@dataclass
class _Running:
    """A task this process runs."""

    journal: Journal
    ctx: dict[str, Any]
    storages: list[Storage]
    saas: Saas | None = None
    task: asyncio.Task[None] | None = None
    started: Mapping[str, Any] = field(default_factory=dict)  # the auth settings it began with

    def handover(self) -> Handover:
        """What the task obtained so far, for whoever presents its credentials."""
        return Handover(self.started, self.saas.auth_update if self.saas is not None else {})


@dataclass
class Tasks:
    """The tasks of one engine process."""

    definition: Definition
    settings: Settings
    outbound: Outbound
    engine_version: str
    clock: Clock = field(default_factory=SystemClock)
    running: dict[str, _Running] = field(default_factory=dict)
    # one claim at a time per task: concurrent start and status calls launch it at most once
    guards: Guards = field(default_factory=Guards)
    # settings obtained by finished tasks (rotated refresh tokens), still to hand over; memory only
    handed: Handovers = field(default_factory=Handovers)
    stopping: bool = False

    @property
    def requests(self) -> Requests:
        """The request checks of this module's tasks."""
        return Requests(self.definition, self.settings.max_items)

    # the API ---------------------------------------------------------------------------------
    async def start(
        self, role: str, body: Mapping[str, Any], *, bulk: bool = False
    ) -> dict[str, Any]:
        """Starts a task (or answers for the one with this taskUuid) and answers at once."""
        task_uuid = str(body["taskUuid"])
        record_path(task_uuid)
        async with self.guards.hold(task_uuid):
            return await self._start(role, body, bulk)

    async def _start(self, role: str, body: Mapping[str, Any], bulk: bool) -> dict[str, Any]:
        task_uuid = str(body["taskUuid"])
        if task_uuid in self.running:
            return self._answer(self.running[task_uuid], body)
        if self.stopping:
            raise Unavailable("the engine is shutting down; retry on another replica")
        kind = KINDS[role]
        request = kind.check(self.requests, body, bulk)
        saas = self._saas(kind, body)  # 422 before any I/O
        storage = await self._open(body["storage"], body)
        storages = [storage]
        try:
            found = await self._record(storage, task_uuid)
            if found is not None:
                return await self._resume_or_answer(*found, storages, body, saas)
            if isinstance(kind.run, AtOnce):
                return await self._at_once(kind.run, storage, task_uuid, role)
            await kind.run.preflight(storage, self.definition)
            if kind.destination:
                storages.append(await self._open(body["destination"], body))
            record = new_record(
                task_uuid,
                role,
                module=self.definition.identity,
                request=request,
                owner=new_owner(),
                now=self.clock.now(),
            )
            journal = self._journal(storage, record)
            try:
                await journal.save()  # only if there is no record yet
            except LeaseLost:  # another replica created it first
                return await self._answer_stored(storages, task_uuid, body)
        except BaseException:
            await _close(storages)
            raise
        return self._launch(journal, storages, body, saas)

    async def status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The state of a task: from memory when this process runs it, else from its record,
        resuming it when its owner stopped beating."""
        kept = self.handed.answer_to(body)
        try:
            async with self.guards.hold(str(body["taskUuid"])):
                answer = await self._status(body)
        except EngineError as exc:  # a FAILED task: its error answer hands them over too
            if kept:
                exc.auth_update = kept
            raise
        if kept and "authUpdate" not in answer:
            answer |= {"authUpdate": {"settings": kept}}
        return answer

    async def _status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        task_uuid = str(body["taskUuid"])
        record_path(task_uuid)
        role = parse_task_ctx(body["ctx"], self.definition.id, task_uuid)
        if task_uuid in self.running:
            return self._answer(self.running[task_uuid], body)
        storage = await self._open(body["storage"], body)
        storages = [storage]
        try:
            found = await self._record(storage, task_uuid)
            run = KINDS[role].run
            if found is None and isinstance(run, AtOnce):  # it kept no record: do it again
                return await self._at_once(run, storage, task_uuid, role)
            if found is None:
                raise NotFoundError(f"no task {task_uuid} at {storage.url}")
            record = found[0]
            if KINDS[record["kind"]].destination and record["status"] in ("PENDING", "RUNNING"):
                destination = body.get("destination") or record["request"]["destination"]
                storages.append(await self._open(destination, body))
            return await self._resume_or_answer(*found, storages, body)
        except BaseException:
            if task_uuid not in self.running:
                await _close(storages)
            raise

    async def shutdown(self) -> None:
        """Stops taking tasks; cancels the running ones, which save and release their leases
        within half of ENGINE_SHUTDOWN_GRACE (the other half is the open requests'). One still
        saving then is cancelled again and left: its lease lapses when its heartbeat is stale."""
        self.stopping = True
        tasks = [running.task for running in self.running.values() if running.task is not None]
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace / 2)
        for task in late:
            log.warning("%s did not save its record within the shutdown grace", task.get_name())
            task.cancel()

    # records and leases ----------------------------------------------------------------------
    async def _record(self, storage: Storage, task_uuid: str) -> tuple[dict[str, Any], str] | None:
        """A task's record and its version, read in one call; None when there is none."""
        try:
            data, version = await storage.read_versioned(record_path(task_uuid))
        except ObjectNotFound:
            return None
        try:
            return check_record(data, task_uuid), version
        except EngineError as exc:
            raise RequestError(f"{exc.message} at {storage.url}") from exc

    async def _at_once(
        self, run: AtOnce, storage: Storage, task_uuid: str, role: str
    ) -> dict[str, Any]:
        """Do a task within the call (a cleanup) and answer it DONE."""
        await run.action(storage)
        await _close([storage])
        ctx = task_ctx(self.definition.id, role, task_uuid)
        return task_body("DONE", task_uuid, ctx, [], {"done": 1, "total": 1, "bytes": 0})

    async def _answer_stored(
        self, storages: list[Storage], task_uuid: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The answer for a task another process created or claimed meanwhile."""
        found = await self._record(storages[0], task_uuid)
        if found is None:  # created, then removed by a cleanup: nothing to answer for
            await _close(storages)
            raise NotFoundError(f"no task {task_uuid} at {storages[0].url}")
        return await self._resume_or_answer(*found, storages, body)

    def _journal(self, storage: Storage, record: dict[str, Any]) -> Journal:
        return Journal(storage, record, self.clock, lease_seconds=self.settings.stale_seconds)

    async def _resume_or_answer(
        self,
        record: dict[str, Any],
        version: str,
        storages: list[Storage],
        body: Mapping[str, Any],
        saas: Saas | None = None,
    ) -> dict[str, Any]:
        ctx = task_ctx(self.definition.id, record["kind"], record["taskUuid"])
        if record["status"] == "FAILED":
            await _close(storages)
            raise recorded_error(record, ctx)
        stale = is_stale(record, self.clock.now(), self.settings.stale_seconds)
        if record["status"] == "DONE" or not stale or self.stopping:
            await _close(storages)
            return record_answer(record, ctx, storages[0].url)
        journal = await take_lease(
            storages[0], record, version, self.clock, lease_seconds=self.settings.stale_seconds
        )
        if journal is None:  # another process took it first
            await _close(storages)
            return record_answer(record, ctx, storages[0].url)
        log.info("resuming task %s (epoch %s)", record["taskUuid"], journal.record["epoch"])
        return self._launch(journal, storages, body, saas)

    # running ---------------------------------------------------------------------------------
    def _launch(
        self,
        journal: Journal,
        storages: list[Storage],
        body: Mapping[str, Any],
        saas: Saas | None = None,
    ) -> dict[str, Any]:
        """Run a task this process now owns (saas: its connection, when the start built it)."""
        record = journal.record
        role, task_uuid = record["kind"], record["taskUuid"]
        saas = saas or self._saas(KINDS[role], body)
        fenced = [storage.fenced(journal.fence) for storage in storages]
        job = Job(
            self.definition,
            fenced[0],
            journal,
            record["request"],
            saas=saas,
            destination=fenced[1] if len(fenced) > 1 else None,
            concurrency=self.definition.connection.concurrency,
            engine_version=self.engine_version,
        )
        ctx = task_ctx(self.definition.id, role, task_uuid)
        running = _Running(journal, ctx, storages, saas, started=presented(body))
        self.running[task_uuid] = running
        running.task = asyncio.create_task(self._drive(job, running), name=f"task {task_uuid}")
        return self._answer(running, body)

    async def _drive(self, job: Job, running: _Running) -> None:
        journal = job.journal
        task_uuid = journal.record["taskUuid"]
        current_task.set(task_uuid)
        error: EngineError | None = None
        beat = asyncio.create_task(journal.beat(self.settings.heartbeat_seconds))
        try:
            journal.record["status"] = "RUNNING"
            await journal.save()
            await self._task_hook("beforeTask", journal.record)
            await _recorded(journal.record["kind"]).work(job)
        except asyncio.CancelledError:
            await _stopped(beat)
            await _quietly(journal.release(), task_uuid, "release")
            await self._end(running)
            raise
        except LeaseLost:
            log.info("task %s: another process took it over; this one stops", task_uuid)
            await _stopped(beat)
            await self._end(running)
            return
        except EngineError as exc:
            error = exc
        except Exception:
            log.exception("task %s failed unexpectedly", task_uuid)
            error = EngineError("internal error; see the engine's log")
        await _stopped(beat)
        try:
            await self._task_hook("afterTask", journal.record, error)
        except EngineError as exc:
            journal.error(entry_of(exc))
        if error is not None:
            log.info("task %s failed: %s", task_uuid, error.message)
        await _quietly(journal.finish(error), task_uuid, "final save")
        if running.saas is not None and running.saas.auth_update:
            self.handed.keep(task_uuid, running.handover())
        await self._end(running)

    async def _end(self, running: _Running) -> None:
        await _close(running.storages)
        self.running.pop(running.journal.record["taskUuid"], None)

    async def _task_hook(
        self, point: str, record: Mapping[str, Any], error: EngineError | None = None
    ) -> None:
        """The module's beforeTask or afterTask hook, given what the task is (no secrets)."""
        name = TASK_HOOKS[point](self.definition.task_hooks)
        if name is None:
            return
        request = record["request"]
        task = {
            "kind": record["kind"],
            "taskUuid": record["taskUuid"],
            "items": request.get("items", []),
            "options": request.get("options") or {},
            "status": record["status"] if point == "beforeTask" else "FAILED" if error else "DONE",
            "errors": list(record["errors"]),
        }
        await self.definition.hooks.call(point, name, task, resource=f"task {record['taskUuid']}")

    def _answer(self, running: _Running, body: Mapping[str, Any]) -> dict[str, Any]:
        """The task's state; with what it obtained only for a caller holding its credentials."""
        record = running.journal.record
        answer = record_answer(record, running.ctx, running.journal.storage.url)
        update = running.handover().answer_to(body)
        return answer | ({"authUpdate": {"settings": update}} if update else {})

    def _saas(self, kind: Kind, body: Mapping[str, Any]) -> Saas | None:
        """The SaaS connection of a task whose kind calls it (SettingsError: 422)."""
        return access.open_saas(self.definition, self.outbound, body) if kind.saas else None

    async def _open(self, info: Mapping[str, Any], body: Mapping[str, Any]) -> Storage:
        auth = body.get("auth") or {}
        return await asyncio.to_thread(
            open_storage,
            str(info["url"]),
            info.get("options"),
            allow=self.settings.allowed_storage,
            defaults=self.settings.storage_options,
            aws=auth.get("awsSessionToken"),
            gc=auth.get("gcAccessToken"),
        )


async def _stopped(beat: asyncio.Task[None]) -> None:
    """Cancels the heartbeat and waits for it, so its last save cannot land after the final one."""
    beat.cancel()
    await asyncio.gather(beat, return_exceptions=True)


def _recorded(role: str) -> Recorded:
    """The background work of a task kind that keeps a record (every kind a record names)."""
    run = KINDS[role].run
    if not isinstance(run, Recorded):
        raise NotFoundError(f"a task of kind '{role}' keeps no record")
    return run


async def _close(storages: list[Storage]) -> None:
    for storage in storages:
        try:
            await storage.aclose()
        except EngineError as exc:
            log.warning("closing storage %s failed: %s", storage.url, exc.message)


async def _quietly(action: Awaitable[None], task_uuid: str, what: str) -> None:
    try:
        await action
    except EngineError as exc:
        log.warning("task %s: %s failed: %s", task_uuid, what, exc.message)
