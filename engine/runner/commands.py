"""The work of each ``engine run`` command: the module loaded, the settings gathered, the app
running in process; the command's calls; its answer printed for people (or as JSON); the exit
code answered (engine.runner.exits). No output, error or file holds an auth setting."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from engine.backups import access
from engine.ctx import build_ctx
from engine.errors import Code, DefinitionError, EngineError, RequestError
from engine.language.definition import Definition
from engine.language.loader import load_module
from engine.redaction import guarding, scrub
from engine.runner import authsettings, exits, progress, text
from engine.runner.session import Session, session
from engine.settings import Settings
from engine.tasks import manifest

Work = Callable[[Session], Awaitable[int]]


@dataclass(frozen=True)
class Run:
    """What every command is given: the module folder, a settings file, JSON or text."""

    module: Path
    settings_file: Path | None
    as_json: bool


def execute(run: Run, work: Work) -> int:
    """work(a session of the module) to its exit code; an error printed as ``Error: ...`` (and
    as JSON with --json), its exit code answered."""
    auth: dict[str, Any] = {}
    try:
        definition = load_module(run.module)
        settings = Settings.from_env()
        interactive = sys.stdin.isatty() and sys.stderr.isatty()
        auth = authsettings.gather(definition, run.settings_file, os.environ, interactive)
        with guarding(auth):
            return asyncio.run(_inside(definition, settings, auth, work))
    except EngineError as exc:
        with guarding(auth):
            return _failed(exc, run.as_json)
    except KeyboardInterrupt:  # the app's lifespan has saved its tasks and released them
        click.echo("Error: interrupted (a task's record keeps its progress)", err=True)
        return exits.INTERRUPTED


async def _inside(
    definition: Definition, settings: Settings, auth: Mapping[str, Any], work: Work
) -> int:
    async with session(definition, settings, auth) as running:
        return await work(running)


def _failed(exc: EngineError, as_json: bool) -> int:
    for problem in getattr(exc, "problems", []):
        click.echo(str(problem), err=True)
    code = exits.exit_code(exc.code) if exc.code != Code.INTERNAL else exc.exit_code
    if isinstance(exc, DefinitionError):
        code = 2
    message = scrub(exc.message)
    click.echo(f"Error: {exc.code}: {message}", err=True)
    if as_json:
        show({"error": {"code": str(exc.code), "description": message, "exitCode": code}})
    return code


def show(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


def _lines(lines: Sequence[str]) -> None:
    for line in lines:
        click.echo(line)


def _errors_exit(errors: Sequence[Mapping[str, Any]]) -> int:
    return exits.PARTLY_DONE if errors else 0


# --------------------------------------------------------------------------- discovery


def check(run: Run) -> Work:
    async def work(api: Session) -> int:
        answer = await api.post("/api/schemas/auth/validate", {})
        if run.as_json:
            show(answer)
        elif answer["valid"]:
            click.echo("valid: the settings meet the form and the connection check passed")
        for error in answer["errors"]:
            where = f" ({error['field']})" if error.get("field") else ""
            click.echo(f"Error: {error['code']}: {error['description']}{where}", err=True)
        return exits.exit_code(answer["errors"][0]["code"]) if answer["errors"] else 0

    return work


def roots(run: Run) -> Work:
    async def work(api: Session) -> int:
        found = await api.listing(None)
        _print_listing(run, found.resources, found.errors)
        return _errors_exit(found.errors)

    return work


def resources(run: Run, item: str) -> Work:
    async def work(api: Session) -> int:
        found = await api.listing(await api.ctx_of(item))
        _print_listing(run, found.resources, found.errors)
        return _errors_exit(found.errors)

    return work


def _print_listing(
    run: Run, found: Sequence[Mapping[str, Any]], errors: Sequence[Mapping[str, Any]]
) -> None:
    if run.as_json:
        show({"resources": list(found), "errors": list(errors)})
    else:
        _lines(text.resources(found) + text.errors(errors))


def tree(run: Run, depth: int | None) -> Work:
    async def work(api: Session) -> int:
        errors: list[dict[str, Any]] = []
        found = await _grow(api, None, depth, errors)
        if run.as_json:
            show({"resources": [node.to_json() for node in found], "errors": errors})
        else:
            _lines(text.tree(found) + text.errors(errors))
        return _errors_exit(errors)

    return work


async def _grow(
    api: Session, ctx: Mapping[str, Any] | None, depth: int | None, errors: list[dict[str, Any]]
) -> list[text.Node]:
    """The resources below ctx (the roots for None), each with its own, ``depth`` levels down."""
    found = await api.listing(ctx)
    errors += found.errors
    nodes = [text.Node(resource) for resource in found.resources]
    if depth is None or depth > 1:
        below = None if depth is None else depth - 1
        for node in nodes:
            if node.resource.get("hasSubresources"):
                node.children = await _grow(api, node.resource["ctx"], below, errors)
    return nodes


# --------------------------------------------------------------------------- tasks


def _items(ctxs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One item as ``ctx``; several as a bulk request's ``items``."""
    if len(ctxs) == 1:
        return {"ctx": ctxs[0]}
    return {"items": [{"ctx": ctx} for ctx in ctxs]}


def _finish(run: Run, verb: str, answer: Mapping[str, Any], url: str) -> int:
    if run.as_json:
        show(answer)
    else:
        _lines(text.task(verb, answer, url))
    return _errors_exit(answer.get("errors") or [])


def _meter(run: Run, label: str) -> progress.Bar | progress.Lines:
    return progress.meter(sys.stderr, label)


def backup(run: Run, items: Sequence[str], url: str, options: Mapping[str, Any]) -> Work:
    async def work(api: Session) -> int:
        body = {"storage": {"url": url}, "options": dict(options)}
        body |= _items(await api.ctxs_of(items))
        answer = await api.task("backup", body, _meter(run, "backup"))
        return _finish(run, "backed up", answer, f"to {url}")

    return work


@dataclass(frozen=True)
class Restore:
    """A restore's choices: where from, what, how."""

    url: str
    items: Sequence[str]
    scenario: str | None
    options: Mapping[str, Any]
    dry_run: bool


def restore(run: Run, asked: Restore) -> Work:
    async def work(api: Session) -> int:
        ctxs = await _chosen(api, asked.items, asked.url)
        body: dict[str, Any] = {"storage": {"url": asked.url}, "options": dict(asked.options)}
        body |= {"dryRun": asked.dry_run} | _items(ctxs)
        if asked.scenario:
            body["scenario"] = asked.scenario
        answer = await api.task("restore", body, _meter(run, "restore"))
        verb = "would restore" if asked.dry_run else "restored"
        return _finish(run, verb, answer, f"from {asked.url}")

    return work


def export(run: Run, url: str, items: Sequence[str], destination: str) -> Work:
    async def work(api: Session) -> int:
        body: dict[str, Any] = {"storage": {"url": url}, "destination": {"url": destination}}
        body |= _items(await _chosen(api, items, url))
        answer = await api.task("export", body, _meter(run, "export"))
        return _finish(run, "exported", answer, f"from {url} to {destination}")

    return work


async def _chosen(api: Session, items: Sequence[str], url: str) -> list[dict[str, Any]]:
    """The items named, or else every item the backup at url was asked for."""
    if items:
        return await api.ctxs_of(items)
    definition = api.definition
    rows = await _backed_up(url, definition.id)
    if not rows:
        raise RequestError(f"the backup at {url} names no items: name the ones to restore")
    return [_ctx_of_row(definition, row) for row in rows]


async def _backed_up(url: str, module_id: str) -> Sequence[Mapping[str, Any]]:
    settings = Settings.from_env()
    async with access.open_url(url, {}, settings) as storage:
        return (await manifest.read(storage, module_id)).items


def _ctx_of_row(definition: Definition, row: Mapping[str, Any]) -> dict[str, Any]:
    kind = definition.types.get(row["type"])
    role = "resource" if kind is not None and kind.parents else "root"
    return build_ctx(definition.id, role, row["type"], row["values"])


def status(run: Run, url: str, task_uuid: str, role: str, once: bool) -> Work:
    async def work(api: Session) -> int:
        ctx = {"kind": f"{role}@{api.definition.id}", "taskUuid": task_uuid}
        body = {"taskUuid": task_uuid, "ctx": ctx, "storage": {"url": url}}
        answer = await api.post("/api/status", body)
        if not once:  # a task this process resumed must run to its end here
            meter = _meter(run, role)
            try:
                answer = await api.follow(body, answer, meter)
            finally:
                meter.close()
        if run.as_json:
            show(answer)
        else:
            _lines([f"{role} {task_uuid}: {answer['status']}", *text.task(role, answer, url)[1:]])
        return _errors_exit(answer.get("errors") or [])

    return work
