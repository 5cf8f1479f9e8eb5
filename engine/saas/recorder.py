"""What the SaaS client sent and got back while a recording is on (``engine dev``'s test read):
each exchange's method, path template, URL and answer, secrets masked as in any log line; what
a listing's selector picked and its filter kept; the writes a dry-run restore would make, built
by the client as it would send them. Off (the default) it costs one context variable read per
request. A sample (``sampling``) also stops listings after their first pages: only engine dev
sets it, never a call of the module API."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from engine.redaction import scrub

BODY_LIMIT = 64 * 1024  # characters of an answer kept: the first page is what the author reads
SELECTED_SHOWN = 20
PLANNED_SHOWN = 50  # writes of a dry run shown with their bodies (the plan counts them all)
REQUEST_LIMIT = 16 * 1024  # characters of a planned write's body kept
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
    kept: int | None = None  # how many of them the listing's filter kept (None: no filter)
    kept_records: str | None = None  # the first SELECTED_SHOWN kept, as JSON, secrets masked
    planned: bool = False  # a dry run's write: built as it would be sent, not sent (status 0)
    headers: str | None = None  # a planned write's headers (not its credentials), masked
    sent: str | None = None  # a planned write's body, its first REQUEST_LIMIT characters, masked


@dataclass
class Sampling:
    """A workbench sample's bounds: the one backup step it runs (None: every step) and the
    pages a listing reads; ``stopped`` tells whether a listing had more."""

    step: str | None
    pages: int
    stopped: bool = False


_RECORDING: ContextVar[list[Exchange] | None] = ContextVar("engine_recording", default=None)
_SAMPLING: ContextVar[Sampling | None] = ContextVar("engine_sampling", default=None)


@contextmanager
def recording() -> Iterator[list[Exchange]]:
    """Records every exchange of the calls made inside, in order, into the list it yields."""
    exchanges: list[Exchange] = []
    token = _RECORDING.set(exchanges)
    try:
        yield exchanges
    finally:
        _RECORDING.reset(token)


@contextmanager
def sampling(step: str | None, pages: int) -> Iterator[Sampling]:
    """Bounds the backups started inside to one step (None: all) and ``pages`` pages a listing."""
    bounds = Sampling(step, pages)
    token = _SAMPLING.set(bounds)
    try:
        yield bounds
    finally:
        _SAMPLING.reset(token)


def sampled_step() -> str | None:
    """The one backup step a workbench sample runs (None: not a sample, or every step)."""
    bounds = _SAMPLING.get()
    return None if bounds is None else bounds.step


def past_limit(pages: int) -> bool:
    """Whether a listing that has read ``pages`` pages stops there (a sample's bound)."""
    bounds = _SAMPLING.get()
    if bounds is None or pages < bounds.pages:
        return False
    bounds.stopped = True
    return True


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


def planned(
    method: str, label: str, url: str, headers: Mapping[str, str], body: bytes | None
) -> None:
    """Adds a write a dry run would make (its first PLANNED_SHOWN), if a recording is on."""
    sink = _RECORDING.get()
    if sink is None or sum(exchange.planned for exchange in sink) >= PLANNED_SHOWN:
        return
    text = "" if body is None else body[:REQUEST_LIMIT].decode("utf-8", "replace")
    shown = scrub(json.dumps(dict(headers), indent=2))
    exchange = Exchange(method, label, scrub(url), 0, 0.0, "", planned=True, headers=shown)
    sink.append(replace(exchange, sent=scrub(text)))


def selected(url: str, records: list[Any]) -> None:
    """Notes the records a listing picked from the answer to ``url`` (its latest exchange)."""
    _note(url, "selected", lambda: {"selected": len(records), "records": _shown(records)})


def kept(url: str, records: list[Any]) -> None:
    """Notes the records a listing's filter kept of the answer to ``url``."""
    _note(url, "kept", lambda: {"kept": len(records), "kept_records": _shown(records)})


def _shown(records: list[Any]) -> str:
    return scrub(json.dumps(records[:SELECTED_SHOWN], indent=2, default=str))


def _note(url: str, unset: str, changes: Callable[[], dict[str, Any]]) -> None:
    """Sets fields of the latest exchange with ``url`` whose ``unset`` field is still None."""
    sink = _RECORDING.get()
    if sink is None:
        return
    masked = scrub(url)
    for index in range(len(sink) - 1, -1, -1):
        if sink[index].url == masked and getattr(sink[index], unset) is None:
            sink[index] = replace(sink[index], **changes())
            return
