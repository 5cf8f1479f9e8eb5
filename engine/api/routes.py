"""The API's endpoints: one small function each, listed in one table with the request shape
it takes. Each gets a ``Call`` (the loaded module, shared resources, the parsed body)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from engine.api import discovery, wire
from engine.errors import NotFoundError
from engine.language.definition import Definition
from engine.saas import access
from engine.saas.client import Outbound, Saas
from engine.settings import Settings
from engine.tasks.lifecycle import Tasks

ENGINE_VERSION = "0.1.0"


@dataclass
class Call:
    """One API call: the module, the process's shared resources, and the request body."""

    definition: Definition
    settings: Settings
    outbound: Outbound
    body: dict[str, Any]
    tasks: Tasks
    opened: list[Saas] = field(default_factory=list)

    def saas(self) -> Saas:
        """The source named by the request's auth settings (422 when they break the form)."""
        saas = access.open_saas(self.definition, self.outbound, self.body)
        self.opened.append(saas)
        return saas

    def auth_update(self) -> dict[str, Any]:
        """Settings the platform must keep, obtained while serving this call."""
        update: dict[str, Any] = {}
        for saas in self.opened:
            update |= saas.auth_update
        return update


Handler = Callable[[Call], Awaitable[dict[str, Any]]]


async def version(call: Call) -> dict[str, Any]:
    definition = call.definition
    return wire.version_body(definition.identity, definition.capabilities, ENGINE_VERSION)


async def auth_schema(call: Call) -> dict[str, Any]:
    form = call.definition.auth.form
    if form is None or "AUTH_SETTINGS" not in call.definition.capabilities.auth:
        raise NotFoundError("this module has no auth form (AUTH_SETTINGS is not declared)")
    return wire.auth_schema_body(form)


async def auth_validate(call: Call) -> dict[str, Any]:
    errors = await access.check(call.definition, call.body, call.saas)
    return wire.validate_body(errors)


async def roots(call: Call) -> dict[str, Any]:
    lister = discovery.Lister(call.definition, call.saas(), call.settings.pages_per_call)
    return await lister.roots(call.body.get("paginationCtx"))


async def resources(call: Call) -> dict[str, Any]:
    lister = discovery.Lister(call.definition, call.saas(), call.settings.pages_per_call)
    return await lister.children(call.body["ctx"], call.body.get("paginationCtx"))


async def config_backup(call: Call) -> dict[str, Any]:
    excludes = discovery.exclusions(call.definition, call.body["ctx"])
    return wire.config_backup_body(excludes, call.definition.backup.options)


async def scenarios_restore(call: Call) -> dict[str, Any]:
    found = discovery.scenarios(call.definition, call.body["ctx"], call.body.get("types"))
    return wire.scenarios_body(found)


async def config_restore(call: Call) -> dict[str, Any]:
    options = discovery.restore_options(
        call.definition, call.body["ctx"], call.body.get("scenario")
    )
    return wire.config_restore_body(options)


def _task(role: str, *, bulk: bool = False) -> Handler:
    async def start(call: Call) -> dict[str, Any]:
        if bulk and not call.definition.has_feature("BULK_OPERATIONS"):
            raise NotFoundError("this module does not declare the BULK_OPERATIONS feature")
        return await call.tasks.start(role, call.body, bulk=bulk)

    return start


async def status(call: Call) -> dict[str, Any]:
    return await call.tasks.status(call.body)


@dataclass(frozen=True)
class Endpoint:
    """One API path: its handler, its HTTP methods and the name of its request shape."""

    path: str
    handler: Handler
    methods: tuple[str, ...]
    shape: str


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("/api/version", version, ("GET", "POST"), "version"),
    Endpoint("/api/schemas/auth", auth_schema, ("GET", "POST"), "authSchema"),
    Endpoint("/api/schemas/auth/validate", auth_validate, ("POST",), "authValidate"),
    Endpoint("/api/roots", roots, ("POST",), "roots"),
    Endpoint("/api/resources", resources, ("POST",), "resources"),
    Endpoint("/api/config/backup", config_backup, ("POST",), "configBackup"),
    Endpoint("/api/scenarios/restore", scenarios_restore, ("POST",), "scenariosRestore"),
    Endpoint("/api/config/restore", config_restore, ("POST",), "configRestore"),
    Endpoint("/api/backup", _task("backup"), ("POST",), "backup"),
    Endpoint("/api/restore", _task("restore"), ("POST",), "restore"),
    Endpoint("/api/export", _task("export"), ("POST",), "export"),
    Endpoint("/api/cleanup", _task("cleanup"), ("POST",), "cleanup"),
    Endpoint("/api/status", status, ("POST",), "status"),
    Endpoint("/api/bulk/backup", _task("backup", bulk=True), ("POST",), "bulkBackup"),
    Endpoint("/api/bulk/restore", _task("restore", bulk=True), ("POST",), "bulkRestore"),
    Endpoint("/api/bulk/export", _task("export", bulk=True), ("POST",), "bulkExport"),
)
