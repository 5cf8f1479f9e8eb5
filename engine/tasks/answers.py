"""What a task start or /api/status answers (spec: the task answer), built from a task's
record: its status, ctx, errors and progress, or the error a failed task keeps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.errors import Code, RecordedError
from engine.tasks.restore import OUTCOMES


def task_body(
    status: str,
    task_uuid: str,
    ctx: Mapping[str, Any],
    errors: Sequence[Mapping[str, Any]],
    progress: Mapping[str, Any] | None,
    **extra: Any,
) -> dict[str, Any]:
    """The answer of a task start or /api/status (extra: workingPath, dryRun, restore)."""
    body: dict[str, Any] = {
        "status": status,
        "taskUuid": task_uuid,
        "ctx": dict(ctx),
        "errors": [dict(entry) for entry in errors],
    }
    if progress is not None:
        body["progress"] = {key: progress.get(key) for key in ("done", "total", "bytes")}
    return body | {key: value for key, value in extra.items() if value is not None}


def record_answer(record: Mapping[str, Any], ctx: Mapping[str, Any], url: str) -> dict[str, Any]:
    """The answer for a task as its record stands (a FAILED one answers RUNNING here: its
    error is recorded_error's)."""
    status = "RUNNING" if record["status"] == "FAILED" else record["status"]
    return task_body(
        status,
        record["taskUuid"],
        ctx,
        record["errors"],
        record["progress"],
        workingPath=url if record["kind"] == "backup" else None,
        dryRun=record.get("dryRun"),
        restore=restore_counts(record),
    )


def restore_counts(record: Mapping[str, Any]) -> dict[str, int] | None:
    """A restore's records by outcome (docs/tasks.md): all 0 until its writing starts; None
    for the other kinds of task."""
    if record["kind"] != "restore":
        return None
    counts = record.get("restore") or {}
    return {key: int(counts.get(key) or 0) for key in OUTCOMES}


def recorded_error(record: Mapping[str, Any], ctx: Mapping[str, Any]) -> RecordedError:
    """The error a failed task's record keeps, to answer every later status call with."""
    error = record.get("error") or {}
    known = {str(code): code for code in Code}
    code = known.get(str(error.get("code")), Code.INTERNAL)
    status = error.get("status")
    description = str(error.get("description", "the task failed"))
    # errors (decided): the task's non-fatal errors, which often say why it failed as a whole
    payload = {"taskUuid": record["taskUuid"], "ctx": dict(ctx), "errors": list(record["errors"])}
    counts = restore_counts(record)
    payload |= {"restore": counts} if counts is not None else {}
    return RecordedError(code, status if isinstance(status, int) else 500, description, payload)
