"""Settings a task obtained (a rotated refresh token), handed over only to a caller presenting
the credentials the task started with, or those already updated by an earlier hand-over.

A task ctx names no secret and anyone who saw one could replay it: the taskUuid alone must not
buy a tenant's new credentials. Kept in memory only, for the most recent finished tasks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KEPT = 1024  # finished tasks whose settings wait to be handed over; the oldest go first


@dataclass(frozen=True)
class Handover:
    """What a task obtained, and the settings it started with."""

    started: Mapping[str, Any]
    update: Mapping[str, Any]

    def answer_to(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The update for a caller presenting the starting settings (or the updated ones)."""
        if self.update and presented(body) in (self.started, {**self.started, **self.update}):
            return dict(self.update)
        return {}


def presented(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The auth settings a request carries ({} when it has none)."""
    auth = body.get("auth")
    settings = auth.get("settings") if isinstance(auth, Mapping) else None
    return settings if isinstance(settings, Mapping) else {}


@dataclass
class Handovers:
    """The hand-overs of finished tasks, by taskUuid, the latest KEPT of them."""

    kept: OrderedDict[str, Handover] = field(default_factory=OrderedDict)

    def keep(self, task_uuid: str, handover: Handover) -> None:
        """Keep a finished task's update for the status calls still to come."""
        self.kept[task_uuid] = handover
        self.kept.move_to_end(task_uuid)
        while len(self.kept) > KEPT:
            self.kept.popitem(last=False)

    def answer_to(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The update a status call for a finished task may receive ({} when none)."""
        handover = self.kept.get(str(body.get("taskUuid")))
        return handover.answer_to(body) if handover is not None else {}
