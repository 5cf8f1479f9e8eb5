"""The discovery half of the API: listing roots and resources (page budget, paginationCtx),
exclusion rules, restore scenarios and option forms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.api import wire
from engine.ctx import PAGINATION_ROLE, build_ctx, parse_ctx
from engine.errors import (
    CtxError,
    EngineError,
    HookError,
    Ignored,
    PaginationStopped,
    RequestError,
    SaasError,
    entry_of,
)
from engine.language.definition import Definition
from engine.language.model import Form, ResourceType
from engine.language.schema import suggest
from engine.saas import pagination
from engine.saas.client import Saas
from engine.saas.listing import PageReader
from engine.saas.mapping import ResourceFields, keep, map_item


@dataclass
class _Listing:
    """What one listing call has gathered so far."""

    resources: list[ResourceFields] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    fetched: int = 0
    depth: int | None = None  # of the resources listed (None: their types' smallest)


class Lister:
    """Lists the items of resource types for one API call, within a page budget."""

    def __init__(self, definition: Definition, saas: Saas, pages_per_call: int) -> None:
        self.definition = definition
        self.saas = saas
        self.budget = pages_per_call

    async def roots(self, pagination_ctx: Any) -> dict[str, Any]:
        """The /api/roots answer."""
        return await self.listing(self.definition.roots, {}, pagination_ctx)

    async def children(self, ctx: Any, pagination_ctx: Any) -> dict[str, Any]:
        """The /api/resources answer for the children of a root or resource ctx."""
        kind, values = self.definition.resolve_ctx(ctx, ["root", "resource"])
        depth = self.definition.depth_of(kind, ctx) + 1
        kinds = [self.definition.types[name] for name in kind.children]
        state = _Listing(depth=depth)
        for deep in [each for each in kinds if depth > each.max_depth]:
            state.errors.append(_too_deep(deep, depth))
        kept = [each for each in kinds if depth <= each.max_depth]
        return await self.listing(kept, values, pagination_ctx, state)

    async def listing(
        self,
        kinds: Sequence[ResourceType],
        parent: Mapping[str, Any],
        raw: Any,
        state: _Listing | None = None,
    ) -> dict[str, Any]:
        """Lists ``kinds`` under ``parent`` from the position in ``raw`` (a paginationCtx)."""
        start = self._resume(kinds, parent, raw)
        index, step = start if start is not None else (0, None)
        state = state or _Listing()
        while index < len(kinds):
            kind = kinds[index]
            reader = self._reader(kind, parent)
            step = step if step is not None else reader.first()
            if state.fetched == self.budget:
                position = {"step": step, "parent": dict(parent)}
                more = build_ctx(self.definition.id, PAGINATION_ROLE, kind.name, position)
                return wire.listing_body(state.resources, state.errors, more)
            step = await self._page(kind, reader, step, state)
            index += 1 if step is None else 0
        return wire.listing_body(state.resources, state.errors, None)

    def _reader(self, kind: ResourceType, parent: Mapping[str, Any]) -> PageReader:
        names = {"settings": self.saas.settings, "ctx": parent}
        return PageReader(self.saas, kind.list, names, f"/resources/{kind.name}/list")

    def _resume(
        self, kinds: Sequence[ResourceType], parent: Mapping[str, Any], raw: Any
    ) -> tuple[int, pagination.Step] | None:
        """Where a paginationCtx says the listing stopped; CtxError when it does not fit here."""
        if raw is None:
            return None
        ctx = parse_ctx(raw, self.definition.id, [PAGINATION_ROLE], field="paginationCtx")
        names = [kind.name for kind in kinds]
        if ctx.type not in names:
            raise CtxError(f"paginationCtx names type '{ctx.type}', which is not listed here")
        if ctx.values.get("parent", {}) != parent:
            raise CtxError("paginationCtx belongs to the listing of another ctx")
        kind = kinds[names.index(ctx.type)]
        step: Any = ctx.values.get("step")
        if not pagination.paging(kind.list.pagination).valid(step):
            raise CtxError("paginationCtx holds no valid listing position")
        if step["url"] is not None:
            try:
                self.saas.resolve(step["url"], "paginationCtx")
            except SaasError as exc:
                raise CtxError(exc.message) from exc
        return names.index(ctx.type), dict(step)

    async def _page(
        self,
        kind: ResourceType,
        reader: PageReader,
        step: pagination.Step,
        state: _Listing,
    ) -> pagination.Step | None:
        """Reads one page into ``state``; the next step, or None when this listing ends (a
        failure after the first page ends it with an error entry, keeping what came before)."""
        try:
            answer = await reader.fetch(step)
        except Ignored:  # a response rule: this page yields nothing, and the listing ends
            return None
        except SaasError as exc:
            if state.fetched == 0 and not state.resources:
                raise
            state.errors.append(entry_of(exc))
            return None
        state.fetched += 1
        try:
            records = await reader.records(answer)
        except (SaasError, HookError) as exc:
            state.errors.append(entry_of(exc))
            return None
        self._map(kind, records, reader.names["ctx"], state)
        try:
            return await reader.next(step, answer, records)
        except (PaginationStopped, SaasError, HookError) as exc:
            state.errors.append(entry_of(exc))
            return None

    def _map(
        self, kind: ResourceType, records: list[Any], parent: Mapping[str, Any], state: _Listing
    ) -> None:
        pointer = f"/resources/{kind.name}"
        for item in records:
            try:
                if keep(kind, item, parent, pointer):
                    fields = map_item(self.definition.id, kind, item, parent, state.depth)
                    state.resources.append(fields)
            except EngineError as exc:
                ident = item.get("id") if isinstance(item, Mapping) else None
                entry = entry_of(exc)
                entry["description"] = f"{kind.name} item skipped: {exc.message}"
                if ident is not None:
                    entry["resource"] = str(ident)
                state.errors.append(entry)


def _too_deep(kind: ResourceType, depth: int) -> dict[str, Any]:
    message = f"{kind.name} resources here would be at depth {depth}, past maxDepth"
    return entry_of(SaasError(f"{message} {kind.max_depth}: not listed"))


def exclusions(definition: Definition, ctx: Any) -> list[dict[str, Any]]:
    """The possible exclusion rules under a root: one per descendant resource type (a type
    nesting in itself once, at its first place)."""
    kind, values = definition.resolve_ctx(ctx, ["root"])
    seen = {kind.name}
    return [_rule(definition, definition.types[name], values, seen) for name in kind.children]


def _rule(
    definition: Definition, kind: ResourceType, values: Mapping[str, Any], seen: set[str]
) -> dict[str, Any]:
    seen.add(kind.name)
    ctx = build_ctx(definition.id, "resource", kind.name, values)
    below = [name for name in kind.children if name not in seen]
    children = [_rule(definition, definition.types[name], values, seen) for name in below]
    return wire.exclusion_rule(kind.name, kind.label, ctx, children)


def scenarios(
    definition: Definition, ctx: Any, types: Sequence[str] | None
) -> list[tuple[str, str, str]]:
    """The restore scenarios that apply to the given resource types (all when none given)."""
    definition.resolve_ctx(ctx, ["root"])
    wanted = set(types or [])
    return [
        (scenario.id, scenario.name, scenario.description)
        for scenario in definition.scenarios
        if not wanted or scenario.types is None or wanted & set(scenario.types)
    ]


def restore_options(definition: Definition, ctx: Any, scenario: str | None) -> Form | None:
    """The restore options form of a scenario (or the module's shared one)."""
    definition.resolve_ctx(ctx, ["root"])
    if scenario is None:
        return definition.restore.options
    known = {each.id: each for each in definition.scenarios}
    if scenario not in known:
        raise RequestError(f"unknown restore scenario '{scenario}'{suggest(scenario, known)}")
    own = known[scenario].options
    return own if own is not None else definition.restore.options
