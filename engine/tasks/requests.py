"""A task's request, checked before anything runs: the items it names (each a ctx of this module,
none twice, at most ENGINE_MAX_ITEMS), its options against the module's forms, its excludes,
scenario and target. What a check answers is what the task's record keeps: no secrets."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import NotFoundError, RequestError
from engine.language import forms
from engine.language.definition import Definition
from engine.language.model import Form, Scenario
from engine.language.schema import suggest
from engine.tasks import restore

RESOURCE_ROLES = ("root", "resource")


@dataclass(frozen=True)
class Requests:
    """The request checks of one module's tasks."""

    definition: Definition
    max_items: int

    def backup(self, body: Mapping[str, Any], bulk: bool) -> dict[str, Any]:
        """A backup's items, options and excluded resource types."""
        excludes = []
        for rule in body.get("excludes") or []:
            name = (rule.get("ctx") or {}).get("type") or rule.get("id")
            if name not in self.definition.types:
                hint = suggest(str(name), self.definition.types)
                raise RequestError(f"excludes names an unknown resource type '{name}'{hint}")
            excludes.append(name)
        options = self._options(self.definition.backup.options, body.get("options"))
        return {"items": self._items(body, bulk), "options": options, "excludes": excludes}

    def restore(self, body: Mapping[str, Any], bulk: bool) -> dict[str, Any]:
        """A restore's items, scenario, options (the scenario's form, else the module's),
        target and dry-run switch."""
        items = self._items(body, bulk)
        scenario = self._scenario(body.get("scenario"), items)
        own = scenario.options if scenario is not None else None
        options = self._options(
            own if own is not None else self.definition.restore.options, body.get("options")
        )
        restore.conflict_policy(self.definition.restore.conflict, options, scenario)
        target = None
        if body.get("target") is not None:
            kind, values = self.definition.resolve_ctx(body["target"], RESOURCE_ROLES)
            target = {"type": kind.name, "values": values}
        return {
            "items": items,
            "scenario": scenario.id if scenario is not None else None,
            "options": options,
            "target": target,
            "dryRun": bool(body.get("dryRun")),
        }

    def export(self, body: Mapping[str, Any], bulk: bool) -> dict[str, Any]:
        """An export's items and destination URL (its options are secrets: never kept)."""
        if not self.definition.has_feature("EXPORT"):
            raise NotFoundError("this module does not declare the EXPORT feature")
        destination = {"url": str(body["destination"]["url"])}
        return {"items": self._items(body, bulk), "destination": destination}

    def cleanup(self, body: Mapping[str, Any], bulk: bool) -> dict[str, Any]:
        """A cleanup's items (checked, though the whole backup goes)."""
        return {"items": self._items(body, bulk)}

    def _items(self, body: Mapping[str, Any], bulk: bool) -> list[dict[str, Any]]:
        raw = body["items"] if bulk else [{"ctx": body["ctx"]}]
        if len(raw) > self.max_items:
            raise RequestError(
                f"items: {len(raw)} items; a request may name at most"
                f" {self.max_items} (ENGINE_MAX_ITEMS)",
                field="items",
            )
        items = []
        for given in raw:
            kind, values = self.definition.resolve_ctx(given["ctx"], RESOURCE_ROLES)
            depth = self.definition.depth_of(kind, given["ctx"])
            name = given.get("name")  # a bulk item's name, when the platform sends one
            named = {"name": name} if isinstance(name, str) and name else {}
            items.append({"type": kind.name, "values": values} | _depth(depth, kind.depth) | named)
        _no_repeats(items)
        return items

    def _options(self, form: Form | None, given: Any) -> dict[str, Any]:
        values = (forms.defaults(form) if form else {}) | dict(given or {})
        problems = forms.validate_values(form, values) if form else []
        if problems:
            listed = "; ".join(f"{p.field}: {p.message}" for p in problems)
            raise RequestError(f"options break the form's rules: {listed}")
        return {key: value for key, value in values.items() if not key.endswith("_secret")}

    def _scenario(self, name: Any, items: list[dict[str, Any]]) -> Scenario | None:
        if name is None:
            return None
        known = {scenario.id: scenario for scenario in self.definition.scenarios}
        if name not in known:
            raise RequestError(f"unknown restore scenario '{name}'{suggest(str(name), known)}")
        scenario = known[name]
        for item in items:
            if scenario.types is not None and item["type"] not in scenario.types:
                raise RequestError(f"scenario '{name}' does not apply to type '{item['type']}'")
        return scenario


def _depth(depth: int, smallest: int) -> dict[str, int]:
    """An item's depth, kept only where its type's smallest depth does not say it."""
    return {} if depth == smallest else {"depth": depth}


def _no_repeats(items: list[dict[str, Any]]) -> None:
    """Refuses items that name one resource twice (its walk would write every object twice)."""
    first: dict[str, int] = {}
    repeats = []
    for index, item in enumerate(items):
        key = json.dumps([item["type"], item["values"]], sort_keys=True, default=str)
        if key in first:
            repeats.append(f"items[{index}] repeats items[{first[key]}]")
        first.setdefault(key, index)
    if repeats:
        raise RequestError("; ".join(repeats), field="items")
