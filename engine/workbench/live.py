"""The module being worked on, kept live: its files polled for changes and reloaded when they
change; the module API keeps serving the last good definition while a save is broken.

Polling (a stat of each file of the module folder every POLL_SECONDS) rather than a file
watcher: a module folder holds a handful of files, so the cost is nothing, it needs no
dependency, and it sees every kind of save (editors that write in place or rename a temporary
file over the old one) on every filesystem, bind mounts and network shares included."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.language.definition import Definition
from engine.language.document import Problem
from engine.language.loader import MODULE_FILE, build, definition_file, inspect
from engine.runner.inprocess import InProcess

log = logging.getLogger("engine.workbench")
POLL_SECONDS = 0.2
DRAIN_SECONDS = 30.0  # a replaced module app's calls are waited for this long, then it stops
WATCHED = ("*.yaml", "*.yml", "*.py")

Stamp = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class Located:
    """One problem of the module as the page shows it: file:line:col, where, what."""

    file: str
    line: int
    column: int
    pointer: str
    message: str
    warning: bool = False


def located(problem: Problem) -> Located:
    """The page's form of a validation problem (the file named within the module folder)."""
    where = problem.position
    name = Path(problem.file).name
    return Located(
        name, where.line, where.column, problem.pointer, problem.message, problem.warning
    )


def stamp(folder: Path) -> Stamp:
    """Name, modification time and size of each watched file of the folder."""
    found = []
    for path in sorted({p for pattern in WATCHED for p in folder.glob(pattern)}):
        with suppress(OSError):  # removed between the listing and the stat
            info = path.stat()
            found.append((path.name, info.st_mtime_ns, info.st_size))
    return tuple(found)


def attempt(folder: Path) -> tuple[Definition | None, list[Located]]:
    """The module's definition if it has no errors, and every problem found (warnings too)."""
    document, problems = inspect(folder)
    rows = [located(problem) for problem in problems]
    if any(not problem.warning for problem in problems):
        return None, rows
    try:
        warnings = tuple(str(problem) for problem in problems)
        return build(document.data, definition_file(folder).parent, warnings), rows
    except EngineError as exc:  # a hooks file that does not import, say
        inner = [located(problem) for problem in getattr(exc, "problems", [])]
        return None, rows + (inner or [Located(MODULE_FILE, 1, 1, "", exc.message)])


class Serving:
    """A module app and how many calls it has in flight: a reload stops it once they end."""

    def __init__(self, app: InProcess) -> None:
        self.app = app
        self.calls = 0
        self.idle = asyncio.Event()
        self.idle.set()

    @asynccontextmanager
    async def call(self) -> AsyncIterator[InProcess]:
        """The app, counted as in use inside the block."""
        self.calls += 1
        self.idle.clear()
        try:
            yield self.app
        finally:
            self.calls -= 1
            if self.calls == 0:
                self.idle.set()

    async def retire(self, patience: float) -> None:
        """Stops the app once its calls have ended, or after ``patience`` seconds anyway."""
        try:
            await asyncio.wait_for(self.idle.wait(), patience)
        except TimeoutError:
            log.warning(
                "engine dev: the replaced module app still had %d call(s) after %s s;"
                " stopping it anyway",
                self.calls,
                patience,
            )
        await self.app.__aexit__(None, None, None)


class Live:
    """The module's problems as last read, and its API serving the last good definition."""

    def __init__(
        self,
        folder: Path,
        serve: Callable[[Definition], InProcess],
        drain: float = DRAIN_SECONDS,
    ) -> None:
        self.folder = folder
        self.generation = 0
        self.read_at = 0.0  # when the module was last read and served, if good (epoch seconds)
        self.problems: list[Located] = []
        self.definition: Definition | None = None
        self.serving: Serving | None = None
        self._serve = serve
        self._stamp: Stamp = ()
        self._drain = drain
        self._retiring: set[asyncio.Task[None]] = set()

    @property
    def current(self) -> InProcess | None:
        """The app of the last good definition (None: none yet)."""
        return None if self.serving is None else self.serving.app

    @asynccontextmanager
    async def using(self) -> AsyncIterator[InProcess | None]:
        """The current app, kept running through a reload until the block ends."""
        serving = self.serving
        if serving is None:
            yield None
            return
        async with serving.call() as app:
            yield app

    async def refresh(self) -> bool:
        """Reads the module again if its files changed; True if they did."""
        now = stamp(self.folder)
        if now == self._stamp:
            return False
        self._stamp = now
        definition, self.problems = await asyncio.to_thread(attempt, self.folder)
        if definition is not None:
            await self._swap(definition)
        self.read_at = time.time()
        self.generation += 1
        return True

    async def _swap(self, definition: Definition) -> None:
        """Serves a fresh app at once; the old one stops when its calls have ended."""
        fresh = Serving(self._serve(definition))
        await fresh.app.__aenter__()
        old, self.serving, self.definition = self.serving, fresh, definition
        if old is not None:
            retiring = asyncio.create_task(old.retire(self._drain))
            self._retiring.add(retiring)
            retiring.add_done_callback(self._retiring.discard)

    async def watch(self, interval: float = POLL_SECONDS) -> None:
        """Refreshes every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            await self.refresh()

    async def close(self) -> None:
        """Stops the module API (its tasks save their progress), the replaced apps too."""
        await asyncio.gather(*self._retiring)
        if self.serving is not None:
            await self.serving.app.__aexit__(None, None, None)
            self.serving = None

    def state(self) -> dict[str, Any]:
        """What the page shows of the module: its problems, and which definition serves."""
        broken = any(not problem.warning for problem in self.problems)
        serving = self.definition
        return {
            "generation": self.generation,
            "readAt": self.read_at,
            "folder": str(self.folder),
            "problems": [asdict(problem) for problem in self.problems],
            "broken": broken,
            "serving": None if serving is None else _identity(serving),
            "steps": {} if serving is None else _steps(serving),
        }


def _identity(definition: Definition) -> dict[str, str]:
    identity = definition.identity
    return {"id": identity.id, "name": identity.name, "version": identity.version}


def _steps(definition: Definition) -> dict[str, list[dict[str, str | None]]]:
    """Each resource type's backup steps (id, and its `when`), for the sample's step choice."""
    return {
        name: [{"id": step.id, "when": step.when} for step in kind.backup]
        for name, kind in definition.types.items()
    }
