"""The engine's exceptions and the table of wire error codes.

Every exception the engine raises derives from ``EngineError``, and every class is here (a
foreign library's exceptions are translated at its boundary: httpx in engine.saas.client,
fsspec and the backends in engine.storage.objects, jinja2 in engine.language.templating)::

    EngineError                 (500 INTERNAL; CLI exit 1)
    +-- DefinitionError         a module definition has problems (CLI exit 1; serve refuses)
    +-- RequestError            a bad request body or field (400 BAD_REQUEST)
    |   +-- CtxError            a ctx of another module, unknown role, missing values (400 BAD_CTX)
    |   +-- MethodError         a method the endpoint does not take (405 BAD_REQUEST)
    |   +-- PathError           a storage path or URL that is malformed or leaves its root (400)
    |   +-- BodyTooLarge        a request body over ENGINE_MAX_BODY (413 BODY_TOO_LARGE)
    +-- UnauthorizedError       missing or wrong ENGINE_API_TOKEN (401 UNAUTHORIZED)
    +-- NotFoundError           unknown endpoint or undeclared feature (404 NOT_FOUND)
    +-- SettingsError           auth settings break the form's rules (422 INVALID_SETTINGS)
    +-- TemplateError           a template failed to render (500, or 400 BAD_CTX via CtxError)
    +-- LimitExceeded           a render went past a limit (templating names the template)
    +-- FilterFailed            a template filter was given a value it cannot take (likewise)
    +-- SelectorError           a JMESPath selector does not parse (its caller names where)
    +-- MappingError            an item cannot be mapped to a platform resource
    +-- SaasError               the SaaS failed or answered nonsense (502 SAAS_ERROR)
    |   +-- SaasAuthError       the SaaS refused the credentials (502 SAAS_AUTH_FAILED)
    |   +-- Ignored             a response rule ignored the answer (the caller yields nothing)
    |   +-- Retryable           a failure a new attempt may cure (the retry policy's to judge)
    +-- HookError               a module hook failed or answered wrongly (500 HOOK_FAILED)
    +-- PaginationStopped       a pagination safety rule stopped a listing (non-fatal)
    +-- StorageNotAllowed       a storage URL outside ENGINE_STORAGE_ALLOW (403 STORAGE_NOT_ALLOWED)
    |   +-- LinkEscape          a local path whose links lead out of the allowed folder
    +-- StorageError            storage unreachable or failing (503 STORAGE_ERROR)
    |   +-- ObjectNotFound      an object to read does not exist (503 STORAGE_ERROR)
    |   +-- Deadline            a storage call past ENGINE_STORAGE_TIMEOUT (its thread may go on)
    |   +-- BackupDamaged       a backup's object is missing or unreadable, or its manifest entry
    |   |   |                   is malformed or names an unknown type (400 BACKUP_DAMAGED)
    |   |   +-- ChecksumMismatch  an object differs from its record (400 CHECKSUM_MISMATCH)
    |   +-- LeaseLost           a conditional write found another writer first (503 UNAVAILABLE)
    +-- NotText                 a raw object written back as text is not UTF-8 (400 NOT_TEXT)
    +-- IncompleteBackup        no manifest, or a malformed one (400 INCOMPLETE_BACKUP)
    +-- BackupExists            a new backup at a url holding a complete one (400 BACKUP_EXISTS)
    +-- RecordedError           a failed task's error, as its record keeps it (its own status)
    +-- Unavailable             the process is shutting down (503 UNAVAILABLE)
    +-- ConfigError             a bad ENGINE_* setting (CLI exit 2)
    +-- DescriptionError        an API description that cannot be read or is not OpenAPI 3.x or
    |                           Swagger 2.0 (engine init --from-openapi; CLI exit 2)
    +-- ModuleExists            engine init would overwrite a module's file (CLI exit 3)

Each class knows its wire ``code``, HTTP ``status`` and CLI ``exit_code`` (1 by default; 2 bad
input, 3 an incomplete backup, 4 storage failing or refused; a damaged backup 1 again); messages
never hold secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from engine.redaction import scrub


class Code(StrEnum):
    """The wire error codes (spec: "one table in the code")."""

    BAD_REQUEST = "BAD_REQUEST"
    BAD_CTX = "BAD_CTX"
    UNAUTHORIZED = "UNAUTHORIZED"
    NOT_FOUND = "NOT_FOUND"
    INVALID_SETTINGS = "INVALID_SETTINGS"
    SAAS_ERROR = "SAAS_ERROR"
    SAAS_AUTH_FAILED = "SAAS_AUTH_FAILED"
    STORAGE_ERROR = "STORAGE_ERROR"
    STORAGE_NOT_ALLOWED = "STORAGE_NOT_ALLOWED"
    CHECKSUM_MISMATCH = "CHECKSUM_MISMATCH"
    BACKUP_DAMAGED = "BACKUP_DAMAGED"
    NOT_TEXT = "NOT_TEXT"
    INCOMPLETE_BACKUP = "INCOMPLETE_BACKUP"
    BACKUP_EXISTS = "BACKUP_EXISTS"
    PAGINATION_STOPPED = "PAGINATION_STOPPED"
    HOOK_FAILED = "HOOK_FAILED"
    UNAVAILABLE = "UNAVAILABLE"
    BODY_TOO_LARGE = "BODY_TOO_LARGE"
    INTERNAL = "INTERNAL"


class EngineError(Exception):
    """Root of the engine's exceptions; renders as the wire error shape."""

    code: Code = Code.INTERNAL
    status: int = 500
    exit_code: int = 1
    payload: Mapping[str, Any] | None = None  # extra detail for the wire error (a task's ids)
    # settings the platform must keep though the call failed (a refresh token rotated before)
    auth_update: Mapping[str, Any] | None = None

    def __init__(
        self, message: str, *, resource: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.resource = resource
        self.field = field


class DefinitionError(EngineError):
    """Raised when a module definition has problems; carries them all."""

    def __init__(self, problems: list[object]) -> None:
        super().__init__(f"the module definition has {len(problems)} problem(s)")
        self.problems = problems


class RequestError(EngineError):
    """Raised for a malformed request body or an invalid field in it."""

    code = Code.BAD_REQUEST
    status = 400
    exit_code = 2  # bad input: a usage error


class CtxError(RequestError):
    """Raised for a ctx of another module, of an unknown role, or missing values."""

    code = Code.BAD_CTX


class UnauthorizedError(EngineError):
    """Raised when ENGINE_API_TOKEN is set and a call lacks it (HTTP 401 means only this)."""

    code = Code.UNAUTHORIZED
    status = 401


class MethodError(RequestError):
    """Raised for an HTTP method the endpoint does not take (every endpoint but two is POST)."""

    status = 405


class NotFoundError(EngineError):
    """Raised for an unknown endpoint or a feature the module does not declare."""

    code = Code.NOT_FOUND
    status = 404


class SettingsError(EngineError):
    """Raised when auth settings break the auth form's rules."""

    code = Code.INVALID_SETTINGS
    status = 422


class TemplateError(EngineError):
    """Raised when a template fails to render; names the template's place."""

    def __init__(self, message: str, *, place: str) -> None:
        super().__init__(f"{place}: {message}")
        self.place = place


class LimitExceeded(EngineError):
    """Raised when a render goes past one of its limits; the message names which (templating
    turns it into a TemplateError naming the template)."""


class FilterFailed(EngineError):
    """Raised by a template filter for a value it cannot take; the message says why, never the
    value (templating turns it into a TemplateError naming the template)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"the filter {name} {reason}")


class SelectorError(EngineError):
    """Raised for a selector that does not parse (or cannot apply); the message says why."""


class MappingError(EngineError):
    """Raised when an item cannot be mapped (a template fails, a value has the wrong shape)."""


class SaasError(EngineError):
    """Raised when the SaaS fails, is unreachable, or answers something unusable."""

    code = Code.SAAS_ERROR
    status = 502


class SaasAuthError(SaasError):
    """Raised when the SaaS refuses the credentials (HTTP 401/403)."""

    code = Code.SAAS_AUTH_FAILED


class Ignored(SaasError):
    """Raised when a response rule says to ignore an answer: the request yields nothing (an
    empty page, no object, a skipped write)."""


class Retryable(SaasError):
    """A failure a new attempt may cure: ``kind`` is a status or an error kind of the retry
    policy (connect, timeout, dropped, invalid)."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        retry_after: float | None = None,
        throttled: bool = False,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after
        self.throttled = throttled  # the SaaS said "too many requests", not "I failed"


class HookError(EngineError):
    """Raised when a module's hook is missing, raises, or answers what its point does not take."""

    code = Code.HOOK_FAILED
    status = 500


class PaginationStopped(EngineError):
    """Raised (and reported as non-fatal) when a pagination safety rule stops a listing."""

    code = Code.PAGINATION_STOPPED


class PathError(RequestError):
    """Raised for a storage path or URL that is malformed or would leave its root."""

    def __init__(self, message: str, *, template: str | None = None) -> None:
        super().__init__(message)
        self.template = template


class BodyTooLarge(RequestError):
    """Raised for a request body longer than ENGINE_MAX_BODY (declared or counted)."""

    code = Code.BODY_TOO_LARGE
    status = 413


class StorageNotAllowed(EngineError):
    """Raised for a storage URL outside ENGINE_STORAGE_ALLOW, or of a protocol never storage."""

    code = Code.STORAGE_NOT_ALLOWED
    status = 403
    exit_code = 4


class LinkEscape(StorageNotAllowed):
    """Raised (in a storage worker) for a local path that a symbolic link leads out of the
    allowed folder; the storage boundary names the action and the place."""

    def __init__(self, path: str) -> None:
        super().__init__("a symbolic link leads outside the allowed storage area")
        self.path = path


class StorageError(EngineError):
    """Raised when storage fails or is unreachable; names the URL (no credentials), the action."""

    code = Code.STORAGE_ERROR
    status = 503
    exit_code = 4

    def __init__(self, message: str, *, url: str, path: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.path = path


class ObjectNotFound(StorageError):
    """Raised when an object to read (or its bucket) does not exist."""


class Deadline(StorageError):
    """Raised when a storage call does not finish within its deadline (its thread may go on);
    the storage boundary names the action and the place."""

    def __init__(self, message: str) -> None:
        super().__init__(message, url="")


class BackupDamaged(StorageError):
    """Raised when a backup's manifest is there but what it lists cannot be restored: an object
    missing or unreadable, an entry malformed or of a type the module does not have."""

    code = Code.BACKUP_DAMAGED
    status = 400
    exit_code = 1


class ChecksumMismatch(BackupDamaged):
    """Raised when a stored object's size or SHA-256 differs from its record."""

    code = Code.CHECKSUM_MISMATCH


class NotText(EngineError):
    """Raised when a restore step without ``upload`` reads a raw object as a text record and
    its bytes are not UTF-8 (a binary needs ``upload``); the object is intact."""

    code = Code.NOT_TEXT
    status = 400


class IncompleteBackup(EngineError):
    """Raised when a backup has no manifest, or one that cannot be read."""

    code = Code.INCOMPLETE_BACKUP
    status = 400
    exit_code = 3


class BackupExists(EngineError):
    """Raised when a new backup task names a url that already holds a complete backup."""

    code = Code.BACKUP_EXISTS
    status = 400


class RecordedError(EngineError):
    """A failed task's error as its record keeps it, answered to every later status call."""

    def __init__(
        self, code: Code, status: int, message: str, payload: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.payload = payload


class Unavailable(EngineError):
    """Raised for a task start while the process shuts down (another replica takes it)."""

    code = Code.UNAVAILABLE
    status = 503


class ConfigError(EngineError):
    """Raised for an invalid ENGINE_* setting."""

    exit_code = 2


class LeaseLost(StorageError):
    """Raised when a conditional write finds the object changed since its writer read it (or
    already there): another runner took the task over, and this one must write nothing more."""

    code = Code.UNAVAILABLE


def error_entry(
    code: Code, description: str, *, resource: str | None = None, field: str | None = None
) -> dict[str, Any]:
    """One non-fatal Error of a response's ``errors`` list (secrets masked)."""
    entry: dict[str, Any] = {"code": str(code), "description": scrub(description)}
    if resource is not None:
        entry["resource"] = resource
    if field is not None:
        entry["field"] = field
    return entry


def entry_of(error: EngineError) -> dict[str, Any]:
    """The Error entry for an engine exception reported as non-fatal."""
    return error_entry(error.code, error.message, resource=error.resource, field=error.field)


class DescriptionError(EngineError):
    """Raised when an API description (``engine init --from-openapi``) cannot be read, does not
    parse, or is not an OpenAPI 3.x or Swagger 2.0 document."""

    exit_code = 2


class ModuleExists(EngineError):
    """Raised when ``engine init`` would overwrite a file of an existing module."""

    exit_code = 3
