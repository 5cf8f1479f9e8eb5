"""JSON logs, one object per line, with secrets of the current request masked."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

from engine.redaction import RedactingFilter, scrub

_EXTRA_KEYS = ("taskUuid", "endpoint", "status")
# These log full URLs (query strings can carry keys); the engine logs path templates instead.
_QUIET = ("httpx", "httpcore", "hpack")
# The task a line is logged for: set while a task runs, so every one of its lines carries it.
current_task: ContextVar[str | None] = ContextVar("current_task", default=None)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object (time, level, logger, message, known extras)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        entry |= {key: getattr(record, key) for key in _EXTRA_KEYS if hasattr(record, key)}
        if "taskUuid" not in entry and (task := current_task.get()) is not None:
            entry["taskUuid"] = task
        if record.exc_info:
            entry["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry)


def configure(level: str, stream: TextIO | None = None) -> None:
    """Sends every engine and server log line to ``stream`` (stderr) as JSON, secrets masked."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
