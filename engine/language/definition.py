"""The validated module model: what the rest of the engine reads from a module definition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.ctx import parse_ctx
from engine.errors import CtxError
from engine.language.hooks import Hooks
from engine.language.schema import suggest

_DEFAULT_TIMEOUTS = {"connect": 10.0, "read": 60.0}


@dataclass(frozen=True)
class ResourceType:
    """One resource type of the tree: how to list its items and map each to a resource."""

    name: str
    label: str
    parent: str | None
    listing: Mapping[str, Any]
    mapping: Mapping[str, Any]
    ctx: Mapping[str, Any]
    ctx_keys: tuple[str, ...]
    children: tuple[str, ...] = ()
    depth: int = 0
    backup: tuple[Mapping[str, Any], ...] = ()
    restore: tuple[Mapping[str, Any], ...] = ()

    @property
    def request(self) -> Mapping[str, Any]:
        """The list request (method, path, query, headers, body)."""
        result: Mapping[str, Any] = self.listing["request"]
        return result

    @property
    def records(self) -> str:
        """The JMESPath selecting a page's items."""
        return str(self.listing.get("records", "@"))


@dataclass(frozen=True)
class Scenario:
    """A restore scenario as the module declares it."""

    id: str
    kind: str
    name: str
    description: str
    types: tuple[str, ...] | None
    options: Mapping[str, Any] | None
    target: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Definition:
    """A loaded, validated module definition."""

    folder: Path
    raw: Mapping[str, Any]
    types: Mapping[str, ResourceType]
    scenarios: tuple[Scenario, ...]
    warnings: tuple[str, ...] = field(default=())
    hooks: Hooks = field(default_factory=lambda: Hooks("", None, None))

    @property
    def id(self) -> str:
        """The module id (ctx kinds end in ``@<id>``)."""
        return str(self.raw["module"]["id"])

    @property
    def identity(self) -> Mapping[str, Any]:
        """id, name, version, description, vendor."""
        result: Mapping[str, Any] = self.raw["module"]
        return result

    @property
    def capabilities(self) -> Mapping[str, list[str]]:
        """auth, features and storage capability lists (absent lists are empty)."""
        caps = self.raw.get("capabilities", {})
        return {key: list(caps.get(key, [])) for key in ("auth", "features", "storage")}

    @property
    def connection(self) -> Mapping[str, Any]:
        """baseUrl, auth (credentials), headers, timeouts, concurrency."""
        result: Mapping[str, Any] = self.raw["connection"]
        return result

    @property
    def timeouts(self) -> dict[str, float]:
        """Connect and read timeouts in seconds."""
        return _DEFAULT_TIMEOUTS | dict(self.connection.get("timeouts", {}))

    @property
    def auth_form(self) -> Mapping[str, Any] | None:
        """The auth form, when the module has AUTH_SETTINGS."""
        result: Mapping[str, Any] | None = self.raw.get("auth", {}).get("form")
        return result

    @property
    def auth_check(self) -> Mapping[str, Any] | None:
        """The connection check run by /api/schemas/auth/validate."""
        result: Mapping[str, Any] | None = self.raw.get("auth", {}).get("check")
        return result

    @property
    def backup_options(self) -> Mapping[str, Any] | None:
        """The backup options form."""
        result: Mapping[str, Any] | None = self.raw.get("backup", {}).get("options")
        return result

    @property
    def restore_options(self) -> Mapping[str, Any] | None:
        """The restore options form shared by scenarios without their own."""
        result: Mapping[str, Any] | None = self.raw.get("restore", {}).get("options")
        return result

    @property
    def conflict(self) -> str:
        """The conflict policy template of restores (renders to skip, overwrite or fail)."""
        return str(self.raw.get("restore", {}).get("conflict", "skip"))

    @property
    def roots(self) -> tuple[ResourceType, ...]:
        """The root resource types, in definition order."""
        return tuple(kind for kind in self.types.values() if kind.parent is None)

    def has_feature(self, feature: str) -> bool:
        """Whether capabilities.features declares ``feature``."""
        return feature in self.capabilities["features"]

    def resolve_ctx(self, raw: Any, roles: Sequence[str]) -> tuple[ResourceType, dict[str, Any]]:
        """The resource type and values of a root/resource ctx; CtxError when it does not fit."""
        ctx = parse_ctx(raw, self.id, roles)
        kind = self.types.get(ctx.type)
        if kind is None:
            raise CtxError(
                f"ctx names an unknown resource type '{ctx.type}'{suggest(ctx.type, self.types)}"
            )
        expected = "root" if kind.parent is None else "resource"
        if ctx.role != expected:
            raise CtxError(
                f"ctx of type '{kind.name}' must have role '{expected}', not '{ctx.role}'"
            )
        missing = [key for key in kind.ctx_keys if key not in ctx.values]
        if missing:
            raise CtxError(f"ctx of type '{kind.name}' lacks the value(s): {', '.join(missing)}")
        return kind, dict(ctx.values)
