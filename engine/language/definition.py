"""The validated module model: what the rest of the engine reads from a module definition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.ctx import ctx_depth, parse_ctx
from engine.errors import CtxError
from engine.language.hooks import Hooks
from engine.language.model import (
    Auth,
    BackupSection,
    Capabilities,
    Connection,
    HooksSection,
    Identity,
    ResourceType,
    RestoreSection,
    Scenario,
)
from engine.language.schema import suggest


@dataclass(frozen=True)
class Definition:
    """A loaded, validated module definition: each section typed (engine.language.model)."""

    folder: Path
    identity: Identity
    capabilities: Capabilities
    auth: Auth
    connection: Connection
    types: Mapping[str, ResourceType]
    backup: BackupSection
    restore: RestoreSection
    task_hooks: HooksSection
    warnings: tuple[str, ...] = field(default=())
    hooks: Hooks = field(default_factory=lambda: Hooks("", None, None))

    @property
    def id(self) -> str:
        """The module id (ctx kinds end in ``@<id>``)."""
        return self.identity.id

    @property
    def scenarios(self) -> tuple[Scenario, ...]:
        """The restore scenarios."""
        return self.restore.scenarios

    @property
    def roots(self) -> tuple[ResourceType, ...]:
        """The root resource types, in definition order."""
        return tuple(kind for kind in self.types.values() if not kind.parents)

    def has_feature(self, feature: str) -> bool:
        """Whether capabilities.features declares ``feature``."""
        return feature in self.capabilities.features

    def resolve_ctx(self, raw: Any, roles: Sequence[str]) -> tuple[ResourceType, dict[str, Any]]:
        """The resource type and values of a root/resource ctx; CtxError when it does not fit."""
        ctx = parse_ctx(raw, self.id, roles)
        kind = self.types.get(ctx.type)
        if kind is None:
            raise CtxError(
                f"ctx names an unknown resource type '{ctx.type}'{suggest(ctx.type, self.types)}"
            )
        expected = "resource" if kind.parents else "root"
        if ctx.role != expected:
            raise CtxError(
                f"ctx of type '{kind.name}' must have role '{expected}', not '{ctx.role}'"
            )
        missing = [key for key in kind.required_keys if key not in ctx.values]
        if missing:
            raise CtxError(f"ctx of type '{kind.name}' lacks the value(s): {', '.join(missing)}")
        return kind, dict(ctx.values)

    def depth_of(self, kind: ResourceType, raw: Mapping[str, Any]) -> int:
        """The depth of the resource a (resolved) ctx names: the one it states, else its type's
        smallest; CtxError when its type cannot be there."""
        depth = ctx_depth(raw)
        if depth is None:
            return kind.depth
        if depth < kind.depth:
            raise CtxError(f"ctx of type '{kind.name}' cannot be at depth {depth}")
        if depth > kind.max_depth:
            raise CtxError(
                f"ctx of type '{kind.name}' is at depth {depth}, past its maxDepth {kind.max_depth}"
            )
        return depth
