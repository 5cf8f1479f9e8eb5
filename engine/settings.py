"""The engine's own settings, read from ``ENGINE_*`` environment variables (and ``PORT``).
The table below is the one list of them; the README's table mirrors it."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ConfigError


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, default, parser and meaning."""

    name: str
    default: str | None
    parse: Callable[[str], Any]
    help: str


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise ValueError(f"must be a whole number, not {text!r}") from exc


def _positive(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise ValueError(f"must be a number of seconds, not {text!r}") from exc
    if not value > 0:
        raise ValueError("must be more than 0 seconds")
    return value


def _port(text: str) -> int:
    value = _whole(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be a port number (0-65535)")
    return value


def _level(text: str) -> str:
    if text.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
    return text.upper()


def _file_url(text: str) -> str:
    """A local folder (a path or a file:// URL) as an absolute file:// URL."""
    path = text.removeprefix("file://")
    if "://" in path:
        raise ValueError("must be a local folder (a path or a file:// URL)")
    # normpath, not resolve(): a symlinked folder keeps the name requests use
    return f"file://{os.path.normpath(Path(path).expanduser().absolute())}"


def _prefixes(text: str) -> tuple[str, ...]:
    """A comma-separated list of storage URL prefixes."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:  # its message names a position, never the content
        raise ValueError(f"must be a JSON object: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    return value


def _storage_options(text: str) -> dict[str, dict[str, Any]]:
    """A JSON object of storage options per protocol; the error never echoes a value."""
    value = _json_object(text)
    if not all(isinstance(options, dict) for options in value.values()):
        raise ValueError('must map each protocol to an object of options, e.g. {"s3": {...}}')
    return value


def _storage_classes(text: str) -> dict[str, str]:
    """A JSON object from protocol to "module:Class" of an fsspec filesystem."""
    value = _json_object(text)
    for protocol, name in value.items():
        if not isinstance(name, str) or not _CLASS_NAME.fullmatch(name):
            raise ValueError(f'{protocol}: must be "module:Class", not {name!r}')
    return value


_CLASS_NAME = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")

VARIABLES: dict[str, Variable] = {
    "module": Variable(
        "ENGINE_MODULE", None, Path, "Module folder served when none is given on the command line."
    ),
    "host": Variable(
        "ENGINE_HOST", "127.0.0.1", str, "Address to listen on (the Dockerfile sets 0.0.0.0)."
    ),
    "port": Variable("PORT", "8080", _port, "Port to listen on (the platform's rule)."),
    "api_token": Variable(
        "ENGINE_API_TOKEN",
        None,
        str,
        "When set, every /api/* call needs `Authorization: Bearer <token>`.",
    ),
    "pages_per_call": Variable(
        "ENGINE_PAGES_PER_CALL",
        "10",
        _positive,
        "SaaS pages fetched per /api/roots or /api/resources call before a paginationCtx.",
    ),
    "max_connections": Variable(
        "ENGINE_MAX_CONNECTIONS", "64", _positive, "Size of the outbound HTTP connection pool."
    ),
    "max_body": Variable(
        "ENGINE_MAX_BODY",
        str(4 << 20),
        _positive,
        "Largest request body in bytes (413 `BODY_TOO_LARGE` past it): 4 MiB holds a bulk "
        "request of 1,000 items with ctxs of 4 KB each.",
    ),
    "log_level": Variable("ENGINE_LOG_LEVEL", "INFO", _level, "Log level of the JSON logs."),
    "backup_dir": Variable(
        "ENGINE_BACKUP_DIR", "./backups", _file_url, "The local backup folder (a file:// URL)."
    ),
    "storage_allow": Variable(
        "ENGINE_STORAGE_ALLOW",
        None,
        _prefixes,
        "Comma-separated storage URL prefixes a request may name "
        "(default: the local backup folder and `memory://`).",
    ),
    "storage_options": Variable(
        "ENGINE_STORAGE_OPTIONS",
        None,
        _storage_options,
        'Default storage options per protocol, a JSON object: `{"s3": {"client_kwargs": {...}}}`.',
    ),
    "storage_classes": Variable(
        "ENGINE_STORAGE_CLASSES",
        None,
        _storage_classes,
        'Custom fsspec filesystems, a JSON object: `{"protocol": "module:Class"}`.',
    ),
    "storage_timeout": Variable(
        "ENGINE_STORAGE_TIMEOUT",
        "60",
        _seconds,
        "Deadline in seconds of one storage call (a stream: of each chunk); backends' connect "
        "and read timeouts are kept within it.",
    ),
    "storage_threads": Variable(
        "ENGINE_STORAGE_THREADS", "32", _positive, "Worker threads for storage calls, in all."
    ),
    "storage_endpoint_threads": Variable(
        "ENGINE_STORAGE_ENDPOINT_THREADS",
        "8",
        _positive,
        "Worker threads one storage endpoint (protocol and host, or bucket) may hold at once.",
    ),
    "shutdown_grace": Variable(
        "ENGINE_SHUTDOWN_GRACE",
        "20",
        _seconds,
        "Seconds a stopping process (SIGTERM) gives open requests and then its tasks to save "
        "and release their leases, half each; keep it below Kubernetes' grace period (30).",
    ),
    "heartbeat_seconds": Variable(
        "ENGINE_HEARTBEAT_SECONDS",
        "5",
        _seconds,
        "How often a running task rewrites its record (its heartbeat) in storage.",
    ),
    "stale_seconds": Variable(
        "ENGINE_TASK_STALE_SECONDS",
        "30",
        _seconds,
        "A task whose heartbeat is older is resumed by the process that gets its /api/status.",
    ),
    "max_items": Variable(
        "ENGINE_MAX_ITEMS",
        "1000",
        _positive,
        "Most items one bulk request may name; more is 400 BAD_REQUEST.",
    ),
}


@dataclass(frozen=True)
class Settings:
    """The engine's settings for one process."""

    module: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    api_token: str | None = None
    pages_per_call: int = 10
    max_connections: int = 64
    max_body: int = 4 << 20
    log_level: str = "INFO"
    backup_dir: str = field(default_factory=lambda: _file_url("./backups"))
    storage_allow: tuple[str, ...] | None = None
    storage_options: dict[str, dict[str, Any]] | None = field(default=None, repr=False)
    storage_classes: dict[str, str] | None = None
    storage_timeout: float = 60.0
    storage_threads: int = 32
    storage_endpoint_threads: int = 8
    shutdown_grace: float = 20.0
    heartbeat_seconds: float = 5.0
    stale_seconds: float = 30.0
    max_items: int = 1000

    @property
    def allowed_storage(self) -> tuple[str, ...]:
        """ENGINE_STORAGE_ALLOW, or by default the local backup folder and memory://."""
        return self.storage_allow or (self.backup_dir, "memory://")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from the environment; ConfigError names a variable that does not parse."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for key, variable in VARIABLES.items():
            text = source.get(variable.name) or variable.default
            if text is None:
                continue
            try:
                values[key] = variable.parse(text)
            except ValueError as exc:
                raise ConfigError(f"{variable.name}: {exc}") from exc
        return cls(**values)
