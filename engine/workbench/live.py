"""The module being worked on, kept live: its files polled for changes and reloaded when they
change; the module API keeps serving the last good definition while a save is broken.

Polling (a stat of each file of the module folder every POLL_SECONDS) rather than a file
watcher: a module folder holds a handful of files, so the cost is nothing, it needs no
dependency, and it sees every kind of save (editors that write in place or rename a temporary
file over the old one) on every filesystem, bind mounts and network shares included."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.language.definition import Definition
from engine.language.document import Problem
from engine.language.loader import MODULE_FILE, build, definition_file, inspect
from engine.runner.inprocess import InProcess

POLL_SECONDS = 0.2
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


class Live:
    """The module's problems as last read, and its API serving the last good definition."""

    def __init__(self, folder: Path, serve: Callable[[Definition], InProcess]) -> None:
        self.folder = folder
        self.generation = 0
        self.problems: list[Located] = []
        self.definition: Definition | None = None
        self.current: InProcess | None = None
        self._serve = serve
        self._stamp: Stamp = ()

    async def refresh(self) -> bool:
        """Reads the module again if its files changed; True if they did."""
        now = stamp(self.folder)
        if now == self._stamp:
            return False
        self._stamp = now
        definition, self.problems = await asyncio.to_thread(attempt, self.folder)
        if definition is not None:
            await self._swap(definition)
        self.generation += 1
        return True

    async def _swap(self, definition: Definition) -> None:
        fresh = self._serve(definition)
        await fresh.__aenter__()
        old, self.current, self.definition = self.current, fresh, definition
        if old is not None:
            await old.__aexit__(None, None, None)

    async def watch(self, interval: float = POLL_SECONDS) -> None:
        """Refreshes every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            await self.refresh()

    async def close(self) -> None:
        """Stops the module API (its tasks save their progress)."""
        if self.current is not None:
            await self.current.__aexit__(None, None, None)
            self.current = None

    def state(self) -> dict[str, Any]:
        """What the page shows of the module: its problems, and which definition serves."""
        broken = any(not problem.warning for problem in self.problems)
        serving = self.definition
        return {
            "generation": self.generation,
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
