"""The progress of ``engine backups verify --read-data`` on a terminal: one click progress bar
of the stored bytes read, with the objects done and the rate; nothing at all where standard
error is not a terminal (a log, a pipe)."""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Protocol, TextIO

import click

from engine.backups.text import size
from engine.backups.verification import Meter, Silent


class _Drawn(Protocol):
    """What Bar uses of click's progress bar."""

    def update(self, n_steps: int, current_item: int | None = None) -> None: ...
    def render_progress(self) -> None: ...


class Bar:
    """A Meter drawn as a click progress bar on a terminal."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self._stream = stream
        self._label = label
        self._shown = ExitStack()
        self._bar: _Drawn | None = None
        self._objects = (0, 0)
        self._started = 0.0
        self._read = 0

    def begin(self, objects: int, stored: int) -> None:
        self._objects, self._started = (0, objects), time.monotonic()
        bar = click.progressbar(
            length=max(stored, 1),
            label=self._label,
            file=self._stream,
            item_show_func=self._item,
            show_eta=False,
        )
        self._bar = self._shown.enter_context(bar)

    def advance(self, stored: int, objects: int = 0) -> None:
        done, total = self._objects
        self._objects = (done + objects, total)
        self._read += stored
        if self._bar is None:
            return
        if stored:
            self._bar.update(stored, self._read)
        else:  # click draws only on a step: an object done shows now
            self._bar.render_progress()

    def end(self) -> None:
        self._bar = None
        self._shown.close()

    def _item(self, read: int | None) -> str:
        done, total = self._objects
        seconds = max(time.monotonic() - self._started, 1e-3)
        return f"{done}/{total} objects, {size(self._read)}, {size(int(self._read / seconds))}/s"


def meter(stream: TextIO, label: str) -> Meter:
    """A progress bar on stream when it is a terminal; else a meter that shows nothing."""
    return Bar(stream, label) if stream.isatty() else Silent()
