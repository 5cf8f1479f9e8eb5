"""Maps one listed SaaS item to the platform's resource fields and to its ctx."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from engine.definition import ResourceType
from engine.errors import EngineError
from engine.templating import render, render_tree
from engine.wire import ResourceFields, build_ctx

_MAX_LABEL_KEY = 255


class MappingError(EngineError):
    """Raised when an item cannot be mapped (a template fails, a value has the wrong shape)."""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def keep(kind: ResourceType, item: Any, parent: Mapping[str, Any], pointer: str) -> bool:
    """Whether the type's filter keeps ``item``."""
    rule = kind.listing.get("filter")
    if rule is None:
        return True
    return bool(render(rule, {"ctx": parent, "item": item}, place=f"{pointer}/list/filter"))


def map_item(
    module_id: str, kind: ResourceType, item: Any, parent: Mapping[str, Any]
) -> ResourceFields:
    """The platform fields of one item of ``kind`` listed under the ctx values ``parent``."""
    base = f"/resources/{kind.name}"
    names = {"ctx": parent, "item": item}
    spec = kind.mapping

    def field(key: str, default: Any = None) -> Any:
        return (
            render_tree(spec[key], names, place=f"{base}/resource/{key}")
            if key in spec
            else default
        )

    values = dict(parent) | render_tree(dict(kind.ctx), names, place=f"{base}/ctx")
    _check_json(values, f"{base}/ctx")
    role = "root" if kind.parent is None else "resource"
    ident = field("id")
    return ResourceFields(
        id=None if ident is None else _text(ident),
        name=_text(field("name")),
        type=str(spec.get("type", kind.name)),
        has_subresources=bool(field("hasSubresources", bool(kind.children))),
        can_backup=bool(field("canBackup", True)),
        ctx=build_ctx(module_id, role, kind.name, values),
        display_ctx={key: _text(value) for key, value in (field("displayCtx") or {}).items()},
        backup_seq_group=field("backupSeqGroup"),
        restore_seq_group=field("restoreSeqGroup"),
        labels=_labels(field("labels"), f"{base}/resource/labels"),
        location=field("location"),
    )


def _labels(value: Any, place: str) -> list[dict[str, str]] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(x, Mapping) and {"key", "value"} <= x.keys() for x in value
    ):
        raise MappingError(f"{place}: labels must be a list of {{key, value}}")
    labels = [{"key": _text(x["key"]), "value": _text(x["value"])} for x in value]
    if any(len(label["key"]) > _MAX_LABEL_KEY for label in labels):
        raise MappingError(f"{place}: a label key is longer than {_MAX_LABEL_KEY} characters")
    return labels


def _check_json(values: Mapping[str, Any], place: str) -> None:
    try:
        json.dumps(values)
    except (TypeError, ValueError) as exc:
        raise MappingError(f"{place}: a ctx value is not plain JSON") from exc
