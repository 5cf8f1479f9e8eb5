"""The module HTTP API's wire shapes (spec/module-api.md): request schemas and parsing, the
builders of the API's answers, and the schema of every answer. A change of the contract is a
change here, or in what the lower layers hand it: ctx tokens (engine.ctx), error entries
(engine.errors), resources (engine.saas.mapping) and task answers (engine.tasks.answers)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from engine.ctx import TASK_ROLES
from engine.errors import Code, EngineError, RequestError
from engine.language.document import escape
from engine.language.model import Capabilities, Form, Identity
from engine.language.schema import issues
from engine.redaction import scrub
from engine.saas.mapping import ResourceFields, resource_body

_NULLABLE_OBJECT = {"type": ["object", "null"]}
_AUTH = {
    "type": ["object", "null"],
    "properties": {
        "settings": _NULLABLE_OBJECT,
        "awsSessionToken": _NULLABLE_OBJECT,
        "gcAccessToken": _NULLABLE_OBJECT,
    },
}
_CTX = {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string"}}}


def _body(required: Sequence[str] = (), **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(required),
        "properties": {"auth": _AUTH, **properties},
    }


# Request shapes by endpoint name; unknown fields are never an error (spec: General rules).
REQUESTS: dict[str, dict[str, Any]] = {
    "version": _body(),
    "authSchema": _body(),
    "authValidate": _body(settings=_NULLABLE_OBJECT),
    "roots": _body(paginationCtx=_NULLABLE_OBJECT),
    "resources": _body(["ctx"], ctx=_CTX, paginationCtx=_NULLABLE_OBJECT),
    "configBackup": _body(["ctx"], ctx=_CTX),
    "scenariosRestore": _body(
        ["ctx"], ctx=_CTX, types={"type": ["array", "null"], "items": {"type": "string"}}
    ),
    "configRestore": _body(["ctx"], ctx=_CTX, scenario={"type": ["string", "null"]}),
}
_STORAGE = {
    "type": "object",
    "required": ["url"],
    "properties": {"url": {"type": "string", "minLength": 1}, "options": _NULLABLE_OBJECT},
}
_TASK = {"taskUuid": {"type": "string", "minLength": 1}, "storage": _STORAGE}
_ITEMS = {
    "type": "array",
    "minItems": 1,
    "items": {"type": "object", "required": ["ctx"], "properties": {"ctx": _CTX}},
}
_STRING_OR_NULL = {"type": ["string", "null"]}
# An ExclusionRule handed back: a start reads its ctx's type (or its id) as a type name
_RULES = {
    "type": ["array", "null"],
    "items": {
        "type": "object",
        "properties": {
            "id": _STRING_OR_NULL,
            "name": _STRING_OR_NULL,
            "ctx": {"type": ["object", "null"], "properties": {"type": _STRING_OR_NULL}},
        },
    },
}
_BACKUP = {"options": _NULLABLE_OBJECT, "excludes": _RULES}
_RESTORE = {
    "scenario": {"type": ["string", "null"]},
    "options": _NULLABLE_OBJECT,
    "target": {"anyOf": [_CTX, {"type": "null"}]},
    "dryRun": {"type": ["boolean", "null"]},
}
_EXPORT = {"destination": _STORAGE}
REQUESTS |= {
    "backup": _body(["taskUuid", "storage", "ctx"], ctx=_CTX, **_TASK, **_BACKUP),
    "bulkBackup": _body(["taskUuid", "storage", "items"], items=_ITEMS, **_TASK, **_BACKUP),
    "restore": _body(["taskUuid", "storage", "ctx"], ctx=_CTX, **_TASK, **_RESTORE),
    "bulkRestore": _body(["taskUuid", "storage", "items"], items=_ITEMS, **_TASK, **_RESTORE),
    "export": _body(["taskUuid", "storage", "ctx", "destination"], ctx=_CTX, **_TASK, **_EXPORT),
    "bulkExport": _body(
        ["taskUuid", "storage", "items", "destination"], items=_ITEMS, **_TASK, **_EXPORT
    ),
    "cleanup": _body(["taskUuid", "storage", "ctx"], ctx=_CTX, **_TASK),
    # destination is optional here: an export resumed by another process needs its options
    "status": _body(
        ["taskUuid", "storage", "ctx"],
        ctx=_CTX,
        destination={"anyOf": [_STORAGE, {"type": "null"}]},
        **_TASK,
    ),
}


MAX_DEPTH = 64  # nesting a request may have: deeper bodies only exhaust the recursion of encoders


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode(raw: bytes) -> Any:
    """A request body as JSON (empty: an empty object); RequestError when it is not JSON, holds
    a lone surrogate (it could never be encoded back) or nests deeper than MAX_DEPTH."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise RequestError("the request body is not valid JSON") from exc
    problem = _unencodable(data)
    if problem is not None:
        raise RequestError(f"request body {problem}")
    return data


def _printable(token: str | int) -> str:
    """A pointer token as text that encodes: a lone surrogate shows as its escape."""
    return escape(token).encode("utf-8", "backslashreplace").decode("utf-8")


def _unencodable(data: Any) -> str | None:
    """Where ``data`` holds a lone surrogate or nests too deep, or None."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        node, pointer, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"{pointer}: nested deeper than {MAX_DEPTH} levels"
        if isinstance(node, str) and not _encodes(node):
            return f"{pointer or '/'}: holds a lone surrogate (not UTF-8 text)"
        for key, child in _children(node):
            if isinstance(key, str) and not _encodes(key):
                return f"{pointer}/{_printable(key)}: its key holds a lone surrogate"
            stack.append((child, f"{pointer}/{_printable(key)}", depth + 1))
    return None


def _children(node: Any) -> Iterable[tuple[str | int, Any]]:
    if isinstance(node, dict):
        return node.items()
    return enumerate(node) if isinstance(node, list) else ()


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_body(endpoint: str, body: Any) -> dict[str, Any]:
    """A decoded request body checked against the shape of ``endpoint``."""
    found = sorted(issues(REQUESTS[endpoint], body), key=lambda issue: issue.pointer)
    if found:
        problems = "; ".join(f"{issue.pointer or '/'}: {issue.message}" for issue in found)
        raise RequestError(f"request body {problems}")
    result: dict[str, Any] = body
    return result


def parse_body(endpoint: str, raw: bytes) -> dict[str, Any]:
    """The JSON body of a request to ``endpoint``, checked against its shape."""
    return check_body(endpoint, decode(raw))


def secret_trees(body: Any) -> tuple[Any, ...]:
    """The secret parts of a decoded body (auth, settings, each storage's options), whatever
    its shape: it is read before the body is checked, so that no error can show them."""
    if not isinstance(body, Mapping):
        return ()
    trees = [body.get("auth"), body.get("settings")]
    for place in (body.get("storage"), body.get("destination")):
        if isinstance(place, Mapping):
            trees.append(place.get("options"))
    return tuple(tree for tree in trees if tree)


def error_body(error: EngineError, payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The body of a fatal error answer (secrets masked)."""
    inner: dict[str, Any] = {"code": str(error.code), "description": scrub(error.message)}
    if payload is not None:
        inner["payload"] = dict(payload)
    return {"error": inner}


def version_body(
    identity: Identity, capabilities: Capabilities, engine_version: str
) -> dict[str, Any]:
    """The /api/version manifest."""
    return {
        "id": identity.id,
        "name": identity.name,
        "version": identity.version,
        "description": identity.description or "",
        "vendor": identity.vendor or "",
        "engineVersion": engine_version,
        "capabilities": {
            "auth": list(capabilities.auth),
            "features": list(capabilities.features),
            "supportedStorageTypes": list(capabilities.storage),
        },
    }


def form_body(form: Form) -> dict[str, Any]:
    """A form (auth, backup options, restore options) in its hycu-layout rendering: as the
    module wrote it (columns and payload)."""
    return dict(form.layout)


def auth_schema_body(form: Form) -> dict[str, Any]:
    """The /api/schemas/auth answer."""
    return {"schemaType": "hycu-layout", "schema": form_body(form)}


def validate_body(errors: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The /api/schemas/auth/validate answer."""
    return {"valid": not errors, "errors": list(errors)}


def listing_body(
    resources: Sequence[ResourceFields],
    errors: Sequence[Mapping[str, Any]],
    pagination: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The /api/roots and /api/resources answer."""
    body: dict[str, Any] = {
        "resources": [resource_body(each) for each in resources],
        "errors": list(errors),
    }
    if pagination is not None:
        body["paginationCtx"] = dict(pagination)
    return body


def exclusion_rule(
    rule_id: str, name: str, ctx: Mapping[str, Any], children: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """One ExclusionRule of /api/config/backup."""
    rule: dict[str, Any] = {"id": rule_id, "name": name, "ctx": dict(ctx)}
    if children:
        rule["subResources"] = list(children)
    return rule


def config_backup_body(
    excludes: Sequence[Mapping[str, Any]], options: Form | None
) -> dict[str, Any]:
    """The /api/config/backup answer."""
    body: dict[str, Any] = {"possibleExcludes": list(excludes)}
    if options is not None:
        body["possibleOptions"] = form_body(options)
    return body


def scenarios_body(scenarios: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
    """The /api/scenarios/restore answer from (type, name, description) triples."""
    return {
        "restoreScenarios": [
            {"type": kind, "name": name, "description": description}
            for kind, name, description in scenarios
        ]
    }


def config_restore_body(options: Form | None) -> dict[str, Any]:
    """The /api/config/restore answer."""
    return {"possibleOptions": form_body(options)} if options is not None else {}


# --------------------------------------------------------------------------- answer shapes
# What each endpoint answers (the builders above make them), for the OpenAPI document and the
# checks of answers: keys the builders always write are required.


def _shape(required: Sequence[str] = (), **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": properties}


def _list(items: Any) -> dict[str, Any]:
    return {"type": "array", "items": items}


_TEXT = {"type": "string"}
_KIND = {"type": "string", "pattern": "^[a-z]+@"}
_CTX_OUT = _shape(["kind"], kind=_KIND)
_CODES = {"enum": [str(code) for code in Code]}
ERROR_ENTRY = _shape(["code", "description"], code=_CODES, description=_TEXT, resource=_TEXT)
ERROR_ENTRY["properties"]["field"] = _TEXT
ERROR_ENTRY["properties"]["resourceType"] = _TEXT  # decided: the type of the named resource
_ERRORS = _list(ERROR_ENTRY)
_FIELD_TYPES = {"enum": ["text", "password", "switch", "dropdown", "number"]}
_FIELDS = _list(_shape(["id", "type"], id=_TEXT, type=_FIELD_TYPES))
_FORM = _shape(["columns", "payload"], columns=_list(_shape(["fields"], fields=_FIELDS)))
_FORM["properties"]["payload"] = {"type": "object"}
_LABEL = _shape(["key", "value"], key={"type": "string", "maxLength": 255}, value=_TEXT)
_RESOURCE = _shape(
    ["id", "name", "type", "hasSubresources", "canBackup", "ctx", "displayCtx"],
    id=_STRING_OR_NULL,
    name=_TEXT,
    type=_TEXT,
    hasSubresources={"type": "boolean"},
    canBackup={"type": "boolean"},
    ctx=_CTX_OUT,
    displayCtx={"type": "object", "additionalProperties": _TEXT},
    labels=_list(_LABEL),
    location={"type": "object"},
)
_LISTING = {"resources": _list(_RESOURCE), "errors": _ERRORS, "paginationCtx": _CTX_OUT}
_RULE = _shape(["id", "name", "ctx"], id=_TEXT, name=_TEXT, ctx=_CTX_OUT)
_RULE["properties"]["subResources"] = _list({"type": "object"})
_COUNT = {"type": ["integer", "null"], "minimum": 0}
_OUTCOMES = ["written", "conflicts", "skipped", "failed"]
_TASK_CTX = _shape(["kind", "taskUuid"], kind=_KIND, taskUuid=_TEXT)
_TASK_ANSWER = {
    "status": {"enum": ["PENDING", "RUNNING", "DONE"]},
    "taskUuid": _TEXT,
    "ctx": _TASK_CTX,
    "errors": _ERRORS,
    "progress": _shape(["done", "total", "bytes"], done=_COUNT, total=_COUNT, bytes=_COUNT),
    "workingPath": _TEXT,
    "dryRun": {"type": "object"},
    # decided (docs/tasks.md): a restore's records by outcome
    "restore": _shape(_OUTCOMES, **dict.fromkeys(_OUTCOMES, _COUNT)),
}
_SCENARIO = _shape(["type", "name", "description"], type=_TEXT, name=_TEXT, description=_TEXT)
_MANIFEST = ["id", "name", "version", "description", "vendor", "engineVersion"]
_CAPABILITIES = ["auth", "features", "supportedStorageTypes"]


def _answer(required: Sequence[str] = (), **properties: Any) -> dict[str, Any]:
    # any answer may carry the settings the platform must keep (spec: authUpdate)
    update = _shape(["settings"], settings={"type": "object"})
    return _shape(required, **properties, authUpdate=update)


RESPONSES: dict[str, dict[str, Any]] = {
    "version": _answer(
        [*_MANIFEST, "capabilities"],
        **dict.fromkeys(_MANIFEST, _TEXT),  # never mutated: shared safely
        capabilities=_shape(_CAPABILITIES, **{key: _list(_TEXT) for key in _CAPABILITIES}),
    ),
    "authSchema": _answer(
        ["schemaType", "schema"], schemaType={"const": "hycu-layout"}, schema=_FORM
    ),
    "authValidate": _answer(["valid", "errors"], valid={"type": "boolean"}, errors=_ERRORS),
    "roots": _answer(["resources", "errors"], **_LISTING),
    "resources": _answer(["resources", "errors"], **_LISTING),
    "configBackup": _answer(
        ["possibleExcludes"], possibleExcludes=_list(_RULE), possibleOptions=_FORM
    ),
    "scenariosRestore": _answer(["restoreScenarios"], restoreScenarios=_list(_SCENARIO)),
    "configRestore": _answer(possibleOptions=_FORM),
} | {
    name: _answer(["status", "taskUuid", "ctx", "errors"], **_TASK_ANSWER)
    for name in (*TASK_ROLES, "status", "bulkBackup", "bulkRestore", "bulkExport")
}
ERROR_ANSWER = _answer(
    ["error"],
    error=_shape(
        ["code", "description"], code=_CODES, description=_TEXT, payload={"type": "object"}
    ),
)
