"""Hooks: a module's Python functions for what YAML cannot say, bound by name in the YAML to
named points. This module is the one place that lists the points and their signatures (POINTS),
loads a module's ``hooks.py`` (importlib, a unique module name per module, normal tracebacks),
and calls hooks: sync or async, their failures and wrong answers turned into HookError
(HOOK_FAILED) naming the module, the hook, the point and the resource.

A hooks file is imported once per process and serves every tenant: its module-level names must
hold constants only, and any cache it keeps must be keyed by everything that authorises what it
holds (docs/security.md)."""

from __future__ import annotations

import importlib.util
import inspect
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from engine.errors import HookError

log = logging.getLogger("engine.language.hooks")


def _is_list(value: Any) -> bool:
    return isinstance(value, list)


def _is_next(value: Any) -> bool:
    return value is None or (
        isinstance(value, dict)
        and len(value) == 1
        and (isinstance(value.get("params"), dict) or isinstance(value.get("url"), str))
    )


def _is_credentials(value: Any) -> bool:
    return isinstance(value, dict) and all(
        key in ("headers", "query")
        and isinstance(part, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in part.items())
        for key, part in value.items()
    )


def _anything(value: Any) -> bool:
    return True


@dataclass(frozen=True)
class Point:
    """A hook point: where the YAML binds it, its signature, and what it must return."""

    where: str
    signature: str
    returns: str
    check: Callable[[Any], bool]


POINTS: dict[str, Point] = {
    "parse": Point(
        "`parse:` of a list (instead of `records`), of an object step or an `each` (instead of"
        " `select`)",
        "parse(answer: engine.client.Answer, ctx: dict) -> list | Any",
        "a list of records for a list; any JSON value for an object step or an each",
        _anything,
    ),
    "transform": Point(
        "`transform:` of a backup step (each record before it is stored) or a restore step (each"
        " stored record before it is written)",
        "transform(record: Any, ctx: dict) -> Any",
        "the record to use (None drops it)",
        _anything,
    ),
    "paginate": Point(
        "`pagination: {kind: hook, function: ...}` of a list",
        "paginate(answer: engine.client.Answer, records: list, step: dict) -> dict | None",
        'the next page as {"params": {...}} or {"url": "..."}, or None at the end',
        _is_next,
    ),
    "authenticate": Point(
        "`connection.auth: {kind: hook, function: ...}`",
        "authenticate(settings: dict, renew: bool) -> dict",
        '{"headers": {...}, "query": {...}} to put on every request (renew: the SaaS refused'
        " the last ones)",
        _is_credentials,
    ),
    "beforeTask": Point(
        "`hooks.beforeTask`",
        "beforeTask(task: dict) -> None",
        "nothing; raising fails the task before any work",
        _anything,
    ),
    "afterTask": Point(
        "`hooks.afterTask`",
        "afterTask(task: dict) -> None",
        "nothing; raising adds an error to the finished task",
        _anything,
    ),
}


@dataclass(frozen=True)
class Binding:
    """A hook named in the YAML: where, which point, which function."""

    pointer: str
    point: str
    function: str


def bindings(data: Mapping[str, Any]) -> Iterator[Binding]:
    """Every hook the definition binds, with its place (the values of parse/transform keys,
    hook pagination and auth kinds, and the task hooks)."""
    yield from _walk(data, "")


def _walk(node: Any, pointer: str) -> Iterator[Binding]:
    if isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{pointer}/{index}")
        return
    if not isinstance(node, Mapping):
        return
    if pointer == "/hooks":
        for point in ("beforeTask", "afterTask"):
            if isinstance(node.get(point), str):
                yield Binding(f"{pointer}/{point}", point, node[point])
        return
    for key in ("parse", "transform"):
        if isinstance(node.get(key), str):
            yield Binding(f"{pointer}/{key}", key, node[key])
    if node.get("kind") == "hook" and isinstance(node.get("function"), str):
        point = "authenticate" if pointer.startswith("/connection/auth") else "paginate"
        yield Binding(f"{pointer}/function", point, node["function"])
    for key, value in node.items():
        yield from _walk(value, f"{pointer}/{key}")


class Hooks:
    """A module's loaded hooks file (or none), and the calls into it."""

    def __init__(self, module_id: str, file: Path | None, module: ModuleType | None) -> None:
        self.module_id = module_id
        self.file = file
        self.module = module

    def function(self, name: str) -> Callable[..., Any] | None:
        """The callable ``name`` of the hooks file; None when there is none."""
        found = getattr(self.module, name, None) if self.module is not None else None
        return found if callable(found) else None

    def names(self) -> list[str]:
        """The public callables of the hooks file (for "did you mean")."""
        if self.module is None:
            return []
        return sorted(
            name
            for name, value in vars(self.module).items()
            if callable(value) and not name.startswith("_") and not isinstance(value, type)
        )

    async def call(self, point: str, name: str, *args: Any, resource: str | None = None) -> Any:
        """Calls the hook ``name`` bound at ``point``; HookError when it is missing, raises, or
        answers what the point does not take."""
        file = self.file.name if self.file is not None else "hooks"
        where = f"hook '{name}' ({self.module_id}/{file}, {point})"
        on = f" on {resource}" if resource else ""
        function = self.function(name)
        if function is None:
            raise HookError(f"{where}: there is no such function")
        try:
            result = function(*args)
            if inspect.isawaitable(result):
                result = await result
        except HookError:
            raise
        except Exception as exc:
            log.exception("%s failed%s", where, on)
            raise HookError(f"{where} failed{on}: {type(exc).__name__}: {exc}") from exc
        if not POINTS[point].check(result):
            raise HookError(
                f"{where} returned {type(result).__name__}{on}; expected {POINTS[point].returns}"
            )
        return result


def load(module_id: str, folder: Path, file: str, needed: bool) -> Hooks:
    """The module's hooks file, imported under a name of its own; no file when none is needed
    (no hook bound and no file named). ImportError/SyntaxError and the like propagate to the
    caller (validate reports them with their place)."""
    path = folder / file
    if not needed:
        return Hooks(module_id, None, None)
    if not path.is_file():
        raise FileNotFoundError(f"the hooks file {path.name} is missing beside module.yaml")
    name = f"engine_hooks_{module_id.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, "a .py file always has a loader"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return Hooks(module_id, path, module)
