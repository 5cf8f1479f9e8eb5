"""The ctx tokens the engine hands the platform and reads back: a resource's (or a listing
page's) ``{"kind": "<role>@<module>", "type", "values"}`` and a task's ``{"kind", "taskUuid"}``.
A ctx names no secret (it lands in manifests); checking one is checking its kind's module and
role. Shared by every layer: SaaS mappings build them, tasks and the API read them back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import CtxError

ROLES = ("root", "resource", "backup", "restore", "export", "cleanup")
PAGINATION_ROLE = "pagination"
TASK_ROLES = ("backup", "restore", "export", "cleanup")


@dataclass(frozen=True)
class Ctx:
    """A parsed ctx: its role, the resource type it names, and its values."""

    role: str
    type: str
    values: Mapping[str, Any]


def build_ctx(
    module_id: str,
    role: str,
    type_name: str,
    values: Mapping[str, Any],
    depth: int | None = None,
) -> dict[str, Any]:
    """The ctx of a resource (or pagination state) as the platform will hand it back; ``depth``
    (where a resource of a recursive tree is, a root at 0) only where its type's smallest
    depth does not say it."""
    ctx = {"kind": f"{role}@{module_id}", "type": type_name, "values": dict(values)}
    return ctx | ({} if depth is None else {"depth": depth})


def ctx_depth(ctx: Mapping[str, Any]) -> int | None:
    """The depth a resource ctx states (None: its type's smallest); CtxError when malformed."""
    depth = ctx.get("depth")
    if depth is not None and (type(depth) is not int or depth < 0):
        raise CtxError("ctx 'depth' must be a non-negative integer")
    return depth


def parse_ctx(ctx: Any, module_id: str, roles: Sequence[str], *, field: str = "ctx") -> Ctx:
    """Checks a ctx's kind against this module and the accepted roles; raises CtxError."""
    if not isinstance(ctx, Mapping) or not isinstance(ctx.get("kind"), str):
        raise CtxError(f"{field} must be an object with a string 'kind'")
    role, _, owner = ctx["kind"].partition("@")
    if owner != module_id:
        raise CtxError(f"{field} belongs to module '{owner or '?'}', not '{module_id}'")
    if role not in roles:
        raise CtxError(f"{field} has role '{role}'; this endpoint takes: {', '.join(roles)}")
    if not isinstance(ctx.get("type"), str) or not isinstance(ctx.get("values"), Mapping):
        raise CtxError(f"{field} needs a string 'type' and an object 'values'")
    return Ctx(role, ctx["type"], ctx["values"])


def task_ctx(module_id: str, role: str, task_uuid: str) -> dict[str, Any]:
    """The ctx of a task: its role and uuid; everything else lives in its record in storage."""
    return {"kind": f"{role}@{module_id}", "taskUuid": task_uuid}


def parse_task_ctx(ctx: Any, module_id: str, task_uuid: str) -> str:
    """The role of a task ctx handed back to /api/status; CtxError when it is not this task's."""
    if not isinstance(ctx, Mapping) or not isinstance(ctx.get("kind"), str):
        raise CtxError("ctx must be an object with a string 'kind'")
    role, _, owner = ctx["kind"].partition("@")
    if owner != module_id:
        raise CtxError(f"ctx belongs to module '{owner or '?'}', not '{module_id}'")
    if role not in TASK_ROLES:
        raise CtxError(
            f"ctx has role '{role}'; /api/status takes a task ctx ({', '.join(TASK_ROLES)})"
        )
    if ctx.get("taskUuid", task_uuid) != task_uuid:
        raise CtxError("ctx belongs to another task than taskUuid")
    return str(role)
