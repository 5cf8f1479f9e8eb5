"""Loads a module folder (``module.yaml``): parse with positions, check, build the model."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.errors import DefinitionError
from engine.language import checks, hooks, model
from engine.language.definition import Definition
from engine.language.document import Document, Position, Problem, load
from engine.language.schema import check_definition
from engine.language.tree import TypeTree

MODULE_FILE = "module.yaml"


def definition_file(path: Path) -> Path:
    """The module.yaml of a module folder, or the file itself."""
    return path / MODULE_FILE if path.is_dir() else path


def inspect(path: Path) -> tuple[Document, list[Problem]]:
    """Every problem (errors and warnings) of one module, sorted by place."""
    file = definition_file(path)
    if not file.exists():
        return Document(str(file), None), [Problem(str(file), Position(1, 1), "", "no such file")]
    document, problems = load(file)
    if document.data is None and not problems:
        problems = [Problem(str(file), Position(1, 1), "", "the file is empty")]
    if document.data is None:  # unreadable, invalid YAML, or empty: nothing more to check
        return document, sorted(problems)
    shape = check_definition(document)
    if isinstance(document.data, Mapping):
        shape += checks.check(document, shape_ok=not shape)
    return document, sorted(problems + shape)


def validate(paths: Iterable[Path]) -> list[Problem]:
    """Every problem of every given module, in order."""
    return [problem for path in paths for problem in inspect(path)[1]]


def load_module(path: Path) -> Definition:
    """The validated definition of the module at ``path``; raises DefinitionError."""
    document, problems = inspect(path)
    errors = [problem for problem in problems if not problem.warning]
    if errors:
        raise DefinitionError(list(problems))
    warnings = tuple(str(problem) for problem in problems)
    return build(document.data, definition_file(path).parent, warnings)


def build(raw: Mapping[str, Any], folder: Path, warnings: tuple[str, ...] = ()) -> Definition:
    """The model of a definition already known to be valid."""
    specs: Mapping[str, Any] = raw["resources"]
    tree = TypeTree(specs)
    types = {name: _resource_type(tree, name) for name in specs}
    written = raw.get("hooks", {})
    section = model.build(model.HooksSection, written)
    needed = "file" in written or any(True for _ in hooks.bindings(raw))
    identity = model.build(model.Identity, raw["module"])
    found = hooks.load(identity.id, folder, section.file, needed)
    return Definition(
        folder=folder,
        identity=identity,
        capabilities=model.build(model.Capabilities, raw["capabilities"]),
        auth=model.build(model.Auth, raw.get("auth", {})),
        connection=model.build(model.Connection, raw["connection"]),
        types=types,
        backup=model.build(model.BackupSection, raw.get("backup", {})),
        restore=model.build(model.RestoreSection, raw.get("restore", {})),
        task_hooks=section,
        warnings=warnings,
        hooks=found,
    )


def _resource_type(tree: TypeTree, name: str) -> model.ResourceType:
    kind = model.build(model.ResourceType, tree.types[name])
    return replace(
        kind,
        name=name,
        label=kind.label or name.replace("_", " ").title(),
        ctx_keys=tuple(tree.ctx_keys(name)),
        required_keys=tuple(tree.required_keys(name)),
        children=tuple(tree.children(name)),
        depth=tree.depths[name],
        recursive=tree.recursive(name),
    )
