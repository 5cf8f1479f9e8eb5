"""A task's progress from its status answers (``progress``: resources done and total, bytes
moved): a click progress bar with the bytes and their rate on a terminal (click is already the
CLI's library, and engine backups verify draws the same bar), one plain line per change
elsewhere (a log, a pipe); both on standard error, so --json output stays clean."""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import ExitStack
from typing import Any, Protocol, TextIO

import click

from engine.backups.text import size


class _Drawn(Protocol):
    """What Bar uses of click's progress bar."""

    length: int | None
    pos: int

    def update(self, n_steps: int, current_item: int | None = None) -> None: ...
    def render_progress(self) -> None: ...


def _counts(answer: Mapping[str, Any]) -> tuple[int, int | None, int]:
    progress = answer.get("progress") or {}
    return progress.get("done", 0), progress.get("total"), progress.get("bytes", 0)


class _Rate:
    """Bytes per second since the task started."""

    def __init__(self) -> None:
        self._started = time.monotonic()

    def text(self, done: int, total: int | None, moved: int) -> str:
        seconds = max(time.monotonic() - self._started, 1e-3)
        of = "?" if total is None else str(total)
        return f"{done}/{of} resources, {size(moved)}, {size(int(moved / seconds))}/s"


class Bar:
    """The progress as a click progress bar (its length set once the total is known)."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self._rate = _Rate()
        self._counts: tuple[int, int | None, int] = (0, None, 0)
        self._shown = ExitStack()
        bar = click.progressbar(
            length=1, label=label, file=stream, item_show_func=self._item, show_eta=False
        )
        self._bar: _Drawn = self._shown.enter_context(bar)

    def show(self, answer: Mapping[str, Any]) -> None:
        self._counts = done, total, _ = _counts(answer)
        self._bar.length = max(total or done + 1, 1)
        step = done - self._bar.pos
        if step > 0:
            self._bar.update(step)
        else:  # click draws only on a step: new bytes show now
            self._bar.render_progress()

    def close(self) -> None:
        self._shown.close()

    def _item(self, _: Any) -> str:
        return self._rate.text(*self._counts)


class Lines:
    """The progress as one plain line each time it changes."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self._stream, self._label = stream, label
        self._rate = _Rate()
        self._last: tuple[int, int | None, int] | None = None

    def show(self, answer: Mapping[str, Any]) -> None:
        counts = _counts(answer)
        if counts != self._last:
            self._last = counts
            click.echo(f"{self._label}: {self._rate.text(*counts)}", file=self._stream)

    def close(self) -> None:
        """Nothing to put away."""


def meter(stream: TextIO, label: str) -> Bar | Lines:
    """A progress bar on a terminal, plain lines elsewhere."""
    return Bar(stream, label) if stream.isatty() else Lines(stream, label)
