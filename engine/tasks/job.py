"""What a running task works with: the module, its source and storage, its record, its request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.language.definition import Definition
from engine.saas.client import Saas
from engine.storage import Storage
from engine.tasks.journal import Journal


@dataclass(frozen=True)
class Job:
    """One task's working set. ``request`` is the task's request as its record keeps it (no
    secrets); ``saas`` is None for tasks that never call the SaaS."""

    definition: Definition
    storage: Storage
    journal: Journal
    request: Mapping[str, Any]
    saas: Saas | None = None
    destination: Storage | None = None
    concurrency: int = 8
    engine_version: str = ""

    @property
    def source(self) -> Saas:
        """The SaaS of a task that calls it."""
        assert self.saas is not None, "this task kind has no SaaS"
        return self.saas
