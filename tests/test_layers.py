"""The package layout: every module of engine/ imports only from its own layer and the layers
below it (read from the source with ast, lazy imports included), so `ls engine/` is the
architecture. The layers and what each may import are drawn in engine/__init__.py."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parent.parent / "engine"
ENTRY_POINTS = frozenset({"cli", "serving", "__main__"})
# what each layer may import (its own layer included); entry points may import anything
MAY_IMPORT: dict[str, frozenset[str]] = {
    "base": frozenset({"base"}),
    "language": frozenset({"base", "language"}),
    "storage": frozenset({"base", "language", "storage"}),
    "saas": frozenset({"base", "language", "saas"}),
    "tasks": frozenset({"base", "language", "storage", "saas", "tasks"}),
    "api": frozenset({"base", "language", "storage", "saas", "tasks", "api"}),
}
PACKAGES = frozenset(MAY_IMPORT) - {"base"}


def layer_of(dotted: str) -> str:
    """The layer of an engine module named ``engine.x`` or ``engine.x.y``."""
    parts = dotted.split(".")
    if len(parts) > 1 and parts[1] in PACKAGES:
        return parts[1]
    if len(parts) > 1 and parts[1] in ENTRY_POINTS:
        return "entry"
    return "base"


def module_name(path: Path, root: Path = ENGINE) -> str:
    """The dotted name of the module at path, in the engine package at root."""
    relative = path.relative_to(root.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def engine_imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for each engine module that path imports, ``from engine import x`` as
    ``engine.x``."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "engine":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "engine":
                for alias in node.names:
                    yield node.lineno, f"engine.{alias.name}"
            elif node.module.startswith("engine."):
                yield node.lineno, node.module


def upward_imports(root: Path = ENGINE) -> list[str]:
    """Every import that goes up a layer (or sideways between storage and saas), located."""
    found = []
    for path in sorted(root.rglob("*.py")):
        importer = layer_of(module_name(path, root))
        if importer == "entry":
            continue
        for line, imported in engine_imports(path):
            target = layer_of(imported)
            if target == "entry" or target not in MAY_IMPORT[importer]:
                where = path.relative_to(root.parent)
                found.append(f"{where}:{line}: {importer} imports {imported} ({target})")
    return found


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    assert upward_imports() == []


def test_every_layer_is_a_package_whose_docstring_says_what_it_may_import() -> None:
    for layer in PACKAGES:
        init = ENGINE / layer / "__init__.py"
        docstring = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "may import" in docstring.lower(), f"{init} does not say what the layer may import"


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    package = tmp_path / "engine"
    (package / "language").mkdir(parents=True)
    (package / "language" / "loader.py").write_text("from engine.tasks import lifecycle\n")
    (package / "errors.py").write_text("def f() -> None:\n    from engine.api import app\n")
    assert upward_imports(package) == [
        "engine/errors.py:2: base imports engine.api (api)",
        "engine/language/loader.py:1: language imports engine.tasks (tasks)",
    ]


@pytest.mark.parametrize(
    ("dotted", "layer"),
    [("engine.errors", "base"), ("engine.saas.client", "saas"), ("engine.cli", "entry")],
)
def test_a_module_s_layer_is_its_package(dotted: str, layer: str) -> None:
    assert layer_of(dotted) == layer
