"""Starting the server: settings from the environment, the module loaded and validated (serve
refuses a module with problems), JSON logs, uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path

import uvicorn

from engine import logs
from engine.api.app import create_app
from engine.errors import ConfigError
from engine.language.loader import load_module
from engine.settings import Settings

log = logging.getLogger("engine.serving")


def serve(module: Path | None, *, host: str | None = None, port: int | None = None) -> None:
    """Loads ``module`` (or ENGINE_MODULE) and serves it until interrupted."""
    settings = Settings.from_env()
    folder = module or settings.module
    if folder is None:
        raise ConfigError("no module given: pass a module folder or set ENGINE_MODULE")
    definition = load_module(folder)
    logs.configure(settings.log_level)
    for warning in definition.warnings:
        log.warning(warning)
    app = create_app(definition, settings)
    log.info("serving module %s %s", definition.id, definition.identity.version)
    uvicorn.run(
        app,
        host=host or settings.host,
        port=port if port is not None else settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=request_grace(settings),
    )


def request_grace(settings: Settings) -> int:
    """Seconds open requests get after SIGTERM: half of ENGINE_SHUTDOWN_GRACE, in the whole
    seconds uvicorn takes; the lifespan's task shutdown then takes the other half."""
    return max(1, round(settings.shutdown_grace / 2))


def longest_stop(settings: Settings) -> float:
    """The most seconds a process takes from SIGTERM to its exit: open requests finish, then
    its tasks save their records and release their leases (engine/tasks/lifecycle.py)."""
    return request_grace(settings) + settings.shutdown_grace / 2
