"""Maps one listed SaaS item to the platform's resource fields and to its ctx."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.ctx import build_ctx
from engine.errors import MappingError
from engine.language.model import ResourceType
from engine.language.templating import render, render_tree

_MAX_LABEL_KEY = 255
_FLAGS = {"true": True, "false": False}


def _text(value: Any, place: str) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise MappingError(f"{place}: rendered {type(value).__name__}, not text") from exc


def _flag(value: Any, place: str) -> bool:
    """A boolean field: true/false, or the text "true"/"false" a string template renders."""
    if isinstance(value, bool):
        return value
    text = value.strip().lower() if isinstance(value, str) else None
    if text in _FLAGS:
        return _FLAGS[text]
    raise MappingError(f"{place}: must be true or false, not {type(value).__name__} {value!r}")


def keep(kind: ResourceType, item: Any, parent: Mapping[str, Any], pointer: str) -> bool:
    """Whether the type's filter keeps ``item``."""
    rule = kind.list.filter
    if rule is None:
        return True
    return bool(render(rule, {"ctx": parent, "item": item}, place=f"{pointer}/list/filter"))


@dataclass(frozen=True)
class _Fields:
    """A type's resource mapping as seen by one item: renders a field and checks its shape."""

    names: Mapping[str, Any]
    place: str

    def raw(self, key: str, template: Any) -> Any:
        if template is None:
            return None
        return render_tree(template, self.names, place=f"{self.place}/{key}")

    def text(self, key: str, template: Any) -> str | None:
        value = self.raw(key, template)
        return None if value is None else _text(value, f"{self.place}/{key}")

    def name(self, template: Any) -> str:
        value = self.text("name", template)
        if not value:
            raise MappingError(f"{self.place}/name: rendered an empty name")
        return value

    def flag(self, key: str, template: Any, otherwise: bool | None = None) -> bool:
        value = self.raw(key, template)
        return _flag(otherwise if value is None else value, f"{self.place}/{key}")

    def texts(self, key: str, templates: Mapping[str, Any]) -> dict[str, str]:
        value = self.raw(key, templates) or {}
        return {name: _text(each, f"{self.place}/{key}/{name}") for name, each in value.items()}


def map_item(
    module_id: str,
    kind: ResourceType,
    item: Any,
    parent: Mapping[str, Any],
    depth: int | None = None,
) -> ResourceFields:
    """The platform fields of one item of ``kind`` listed under the ctx values ``parent``, at
    ``depth`` (None: its type's smallest depth); the ctx states a depth only where it differs."""
    base = f"/resources/{kind.name}"
    names = {"ctx": parent, "item": item}
    values = dict(parent) | render_tree(dict(kind.ctx), names, place=f"{base}/ctx")
    _check_json(values, f"{base}/ctx", "a ctx value")
    role = "resource" if kind.parents else "root"
    depth = None if depth is None or depth == kind.depth else depth
    rule = kind.resource
    spec = _Fields(names, f"{base}/resource")
    fields = ResourceFields(
        id=spec.text("id", rule.id),
        name=spec.name(rule.name),
        type=rule.type or kind.name,
        has_subresources=spec.flag("hasSubresources", rule.has_subresources, bool(kind.children)),
        can_backup=spec.flag("canBackup", rule.can_backup),
        ctx=build_ctx(module_id, role, kind.name, values, depth),
        display_ctx=spec.texts("displayCtx", rule.display_ctx),
        backup_seq_group=spec.raw("backupSeqGroup", rule.backup_seq_group),
        restore_seq_group=spec.raw("restoreSeqGroup", rule.restore_seq_group),
        labels=_labels(spec.raw("labels", rule.labels), f"{base}/resource/labels"),
        location=spec.raw("location", rule.location),
    )
    _check_json(resource_body(fields), f"{base}/resource", "a resource field")
    return fields


def _labels(value: Any, place: str) -> list[dict[str, str]] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(x, Mapping) and {"key", "value"} <= x.keys() for x in value
    ):
        raise MappingError(f"{place}: labels must be a list of {{key, value}}")
    labels = [{"key": _text(x["key"], place), "value": _text(x["value"], place)} for x in value]
    if any(len(label["key"]) > _MAX_LABEL_KEY for label in labels):
        raise MappingError(f"{place}: a label key is longer than {_MAX_LABEL_KEY} characters")
    return labels


def _check_json(values: Mapping[str, Any], place: str, what: str) -> None:
    try:
        json.dumps(values, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise MappingError(f"{place}: {what} is not plain JSON") from exc


@dataclass(frozen=True)
class ResourceFields:
    """The platform fields of one listed resource (RootResource or Resource)."""

    id: str | None
    name: str
    type: str
    has_subresources: bool
    can_backup: bool
    ctx: Mapping[str, Any]
    display_ctx: Mapping[str, str]
    backup_seq_group: Any = None
    restore_seq_group: Any = None
    labels: Sequence[Mapping[str, str]] | None = None
    location: Mapping[str, Any] | None = None


def resource_body(fields: ResourceFields) -> dict[str, Any]:
    """One RootResource/Resource on the wire."""
    body: dict[str, Any] = {
        "id": fields.id,
        "name": fields.name,
        "type": fields.type,
        "hasSubresources": fields.has_subresources,
        "canBackup": fields.can_backup,
        "backupSeqGroup": fields.backup_seq_group,
        "restoreSeqGroup": fields.restore_seq_group,
        "ctx": dict(fields.ctx),
        "displayCtx": dict(fields.display_ctx),
    }
    if fields.labels is not None:
        body["labels"] = [dict(label) for label in fields.labels]
    if fields.location is not None:
        body["location"] = dict(fields.location)
    return body
