"""What the SaaS client sent and got back while a recording is on (``engine dev``'s test read):
each exchange's method, path template, URL and answer, secrets masked as in any log line.
Off (the default) it costs one context variable read per request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from engine.redaction import scrub

BODY_LIMIT = 64 * 1024  # characters of an answer kept: the first page is what the author reads
SELECTED_SHOWN = 20
NOT_SHOWN = "(a credentials exchange: its answer holds tokens and is not shown)"


@dataclass(frozen=True)
class Exchange:
    """One request to the SaaS and its answer, as the author sees it."""

    method: str
    label: str  # the request's path template, as logs name it
    url: str  # rendered, secrets masked
    status: int
    milliseconds: float
    body: str  # the answer's first BODY_LIMIT characters, secrets masked
    selected: int | None = None  # how many records the listing's selector picked from it
    records: str | None = None  # the first SELECTED_SHOWN of them, as JSON, secrets masked


_RECORDING: ContextVar[list[Exchange] | None] = ContextVar("engine_recording", default=None)


@contextmanager
def recording() -> Iterator[list[Exchange]]:
    """Records every exchange of the calls made inside, in order, into the list it yields."""
    exchanges: list[Exchange] = []
    token = _RECORDING.set(exchanges)
    try:
        yield exchanges
    finally:
        _RECORDING.reset(token)


def on() -> bool:
    """Whether a recording is on (the caller then gathers what ``record`` needs)."""
    return _RECORDING.get() is not None


def record(
    method: str, label: str, url: str, status: int, *, seconds: float, body: bytes | None
) -> None:
    """Adds one exchange to the recording, if one is on; ``body`` None: not to be shown."""
    sink = _RECORDING.get()
    if sink is None:
        return
    text = NOT_SHOWN if body is None else body[:BODY_LIMIT].decode("utf-8", "replace")
    sink.append(Exchange(method, label, scrub(url), status, seconds * 1000, scrub(text)))


def selected(url: str, records: list[Any]) -> None:
    """Notes the records a listing picked from the answer to ``url`` (its latest exchange)."""
    sink = _RECORDING.get()
    if sink is None:
        return
    masked = scrub(url)
    for index in range(len(sink) - 1, -1, -1):
        if sink[index].url == masked and sink[index].selected is None:
            shown = json.dumps(records[:SELECTED_SHOWN], indent=2, default=str)
            sink[index] = replace(sink[index], selected=len(records), records=scrub(shown))
            return
