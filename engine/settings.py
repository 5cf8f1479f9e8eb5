"""The engine's own settings, read from ``ENGINE_*`` environment variables (and ``PORT``).
The table below is the one list of them; the README's table mirrors it."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be a port number (0-65535)")
    return value


def _level(text: str) -> str:
    if text.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
    return text.upper()


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
    "log_level": Variable("ENGINE_LOG_LEVEL", "INFO", _level, "Log level of the JSON logs."),
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
    log_level: str = "INFO"

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
