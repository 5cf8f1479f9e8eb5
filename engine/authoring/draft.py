"""A module drafted from an API description: security schemes as the auth form and
credentials, list operations as resource types (parents from path parameters), pagination
guessed, one backup step per type, PUT/POST/PATCH as draft restore steps. What it guessed is a
``# guess:`` comment; what it could not decide, a ``# TODO: <METHOD> <path> (operationId): why``
line. The result is YAML text with those comments (yamltext), meant to pass ``engine validate``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.authoring import listings, paging, signin
from engine.authoring.listings import PARAM, Kind
from engine.authoring.openapi import Api, Operation, Scheme
from engine.authoring.yamltext import Noted, document, noted

LANGUAGE = "docs/language.md"


@dataclass(frozen=True)
class Identity:
    """The drafted module's id, name, the schema line's path and whether it has hooks."""

    id: str
    name: str
    schema: str
    hooks: bool = False


def module_text(api: Api, identity: Identity, origin: tuple[str, ...]) -> str:
    """module.yaml for api, as text with its comments; origin: the header's lines after the
    schema line."""
    tree = listings.build(api)
    header = (f"yaml-language-server: $schema={identity.schema}", *origin)
    sections = {
        "module": _module(api, identity),
        "capabilities": {"auth": ["AUTH_SETTINGS"], "storage": ["STORAGE_SERVICE"]},
        **_auth(api, tree.kinds),
        "resources": noted(
            {kind.name: _kind(kind, api, identity) for kind in tree.kinds},
            f"resource types ({LANGUAGE}, resources.<type>): one per list operation",
            *(f"TODO: {todo}" for todo in tree.todos),
        ),
    }
    return document(header, sections)


def _module(api: Api, identity: Identity) -> dict[str, Any]:
    found = {"id": identity.id, "name": identity.name, "version": "0.1.0"}
    summary = api.description.splitlines()[0][:200] if api.description else ""
    return found | ({"description": summary} if summary else {})


def _auth(api: Api, kinds: list[Kind]) -> dict[str, Any]:
    """The auth and connection sections: the form, its check and the credentials."""
    fields, payload, credential, notes = form_fields(api)
    form = {"columns": [{"fields": fields}], "payload": {"server_url": "server", **payload}}
    roots = [kind for kind in kinds if kind.parent is None]
    check_path = roots[0].listing.path if roots else "/"
    check = noted(
        {"request": {"path": check_path}},
        "the connection check (auth.check): a cheap request that needs the credentials",
        "" if roots else "TODO: no listing without parameters: name a request that signs in",
    )
    connection = {
        "baseUrl": "{{ settings.server_url }}",
        "auth": noted(credential, *notes),
        "headers": {"Accept": "application/json"},
    }
    return {
        "auth": noted({"form": form, "check": check}, f"the auth form ({LANGUAGE}, auth.form)"),
        "connection": connection,
    }


def form_fields(api: Api) -> tuple[list[dict[str, Any]], dict[str, str], Any, list[str]]:
    """The auth form's fields (the server URL first), their payload, the credentials, and the
    notes on schemes guessed or skipped."""
    usable = [s for s in api.schemes if not signin.usable(s)]
    notes = [f"TODO: security scheme {s.name}: {signin.usable(s)}" for s in api.schemes]
    notes = [note for note, s in zip(notes, api.schemes, strict=True) if signin.usable(s)]
    if not usable:
        notes.insert(0, "guess: the description declares no usable scheme: basic assumed")
    ways = signin.sign_ins(usable or [Scheme("basic", "basic")])
    fields, payload, credential = signin.form_and_auth(ways)
    server = {"id": "server", "type": "text", "label": "Server URL", "required": True}
    server |= {"format": "url"} | ({"default": api.server} if api.server else {})
    return [server, *fields], payload, credential, notes


def _path(path: str, keys: tuple[str, ...], scope: str) -> str:
    """path with its i-th parameter as ``{{ <scope>.<keys[i]> | urlquote }}``."""
    names = iter(keys)
    return PARAM.sub(lambda _: f"{{{{ {scope}.{next(names)} | urlquote }}}}", path)


def _item(field: str) -> str:
    return f"item.{field}" if field.isidentifier() else f"item[{field!r}]"


def _kind(kind: Kind, api: Api, identity: Identity) -> Noted:
    """One resource type: its listing, mapping, ctx, backup step and restore steps."""
    rule, why = paging.guess(api, kind.listing)
    ident, ident_note = listings.id_field(kind)
    name = listings.field_of(kind, listings.NAME_FIELDS) or ident
    listing = {
        "request": {"path": _path(kind.listing.path, kind.chain, "ctx")},
        "pagination": noted(rule, f"guess: {why}"),
        "records": kind.records,
    }
    own = f"{{{{ {_item(ident)} }}}}"
    body: dict[str, Any] = {"parent": kind.parent.name} if kind.parent else {}
    body |= {"label": kind.name.replace("_", " ").capitalize() + "s", "list": listing}
    body["resource"] = {
        "id": "/".join([*(f"{{{{ ctx.{key} }}}}" for key in kind.chain), own]),
        "name": f"{{{{ {_item(name)} }}}}",
    }
    body["ctx"] = noted({kind.name: own}, ident_note)
    body["backup"] = [_backup(kind, listing, identity.hooks)]
    restore, todo = _restore(kind)
    body |= {"restore": restore} if restore else {}
    return noted(body, f"from {kind.listing.label}", todo)


def _backup(kind: Kind, listing: dict[str, Any], hooks: bool) -> Noted:
    """One backup step: the item's own GET, else its listing narrowed to it."""
    where = "/".join(f"{key}/{{{{ ctx.{key} }}}}" for key in kind.keys)
    getter = kind.on_item.get("get")
    if getter is not None:
        step: dict[str, Any] = {
            "id": kind.name,
            "fetch": "object",
            "request": {"path": _path(getter.path, kind.keys, "ctx")},
            "to": f"{where}.json",
        }
        note = f"backup ({LANGUAGE}, resources.<type>.backup[]): {getter.label}"
    else:
        narrowed = listing | {
            "filter": f"{{{{ {_item(listings.id_field(kind)[0])} == ctx.{kind.name} }}}}"
        }
        step = {"id": kind.name, "fetch": "collection", "list": narrowed, "to": f"{where}.jsonl"}
        note = "guess: no GET of one item: the listing, narrowed to this item"
    if hooks:
        step["transform"] = noted("tidy", "hooks.py: tidy(record, ctx) (docs/hooks.md)")
    return noted(step, note)


WRITES = (("put", "PUT replaces the item by its id"), ("patch", "PATCH updates it in place"))


def _restore(kind: Kind) -> tuple[list[Noted], str]:
    """The draft restore steps (PUT on the item, else POST on the list, else PATCH), or a
    TODO naming the list operation when the description has none."""
    body = "{{ record }}"
    for method, why in WRITES[:1]:
        op = kind.on_item.get(method)
        if op is not None:
            request = {"method": method.upper(), "path": _path(op.path, kind.keys, "target")}
            step = _write(kind, request | {"body": body}, f"draft: {op.label}: {why}")
            return [_conditional(step, op)], ""
    if kind.create is not None:
        request = {"method": "POST", "path": _path(kind.create.path, kind.chain, "target")}
        note = f"draft: {kind.create.label} creates anew (a resumed restore may create twice)"
        return [_write(kind, request | {"body": body}, note)], ""
    op = kind.on_item.get("patch")
    if op is not None:
        request = {"method": "PATCH", "path": _path(op.path, kind.keys, "target")}
        return [_write(kind, request | {"body": body}, f"draft: {op.label}: {WRITES[1][1]}")], ""
    return [], f"TODO: {kind.listing.label}: no PUT, POST or PATCH writes it back: no restore"


def _conditional(step: Noted, op: Operation) -> Noted:
    """step with a conflict rule when op takes If-None-Match: a write that does not replace an
    existing item unless the restore's policy is overwrite (docs/language.md, conflict)."""
    if "if-none-match" not in {name.lower() for name in op.names("header")}:
        return step
    conflict = {"headers": {"If-None-Match": "*"}, "status": [412]}
    why = "guess: it takes If-None-Match: * fails with 412 where the item exists"
    return noted(step.value | {"conflict": noted(conflict, why)}, *step.notes)


def _write(kind: Kind, request: dict[str, Any], note: str) -> Noted:
    return noted(
        {"from": kind.name, "request": request},
        note,
        "the body is the record as the backup stored it: check what the API takes",
    )
