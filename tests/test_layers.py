"""The package layout: every module of engine/ imports only from its own layer and the layers
below it (read from the source with ast, lazy imports included), so `ls engine/` is the
architecture. The layers and what each may import are drawn in engine/__init__.py."""

from __future__ import annotations

import ast
import builtins
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
    "backups": frozenset({"base", "language", "storage", "tasks", "backups"}),
    "authoring": frozenset({"base", "language", "saas", "authoring"}),
    "runner": frozenset({"base", "language", "storage", "tasks", "api", "backups", "runner"}),
    "workbench": frozenset(
        {"base", "language", "storage", "saas", "tasks", "api", "runner", "workbench"}
    ),
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


# each outside library behind one module, its boundary (STYLE.md): where its errors are translated
BOUNDARIES = {
    "httpx": "engine.saas.client",
    "httpcore": "engine.saas.client",
    "aiolimiter": "engine.saas.client",
    "tenacity": "engine.saas.resilience",
    "fsspec": "engine.storage.filesystems",
    "zstandard": "engine.storage.transfers",
    "jinja2": "engine.language.templating",
    "jsonschema": "engine.language.schema",
    "jmespath": "engine.language.selectors",
    "yaml": "engine.language.document",
    "starlette": "engine.api.app",
    "uvicorn": "engine.serving",
    "referencing": "engine.authoring.openapi",
}


# engine dev's workbench is a second web app beside the module API: its page app and its server
SECOND_WEB_APP = {"starlette": "engine.workbench.app", "uvicorn": "engine.workbench.commands"}


def outside_imports(root: Path = ENGINE) -> dict[str, set[str]]:
    """For each library of BOUNDARIES, the engine modules that import it."""
    found: dict[str, set[str]] = {library: set() for library in BOUNDARIES}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in found:
                    found[name.split(".")[0]].add(module_name(path, root))
    return found


def test_each_outside_library_is_imported_by_its_boundary_module_only() -> None:
    expected = {library: {module} for library, module in BOUNDARIES.items()}
    for library, module in SECOND_WEB_APP.items():
        expected[library].add(module)
    assert outside_imports() == expected


def test_every_exception_class_of_the_engine_is_in_errors_and_derives_from_engine_error() -> None:
    from engine import errors

    raised = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, BaseException)
    ]
    assert all(issubclass(cls, errors.EngineError) for cls in raised), raised
    drawn = ast.get_docstring(ast.parse(Path(errors.__file__).read_text())) or ""
    assert [cls.__name__ for cls in raised if cls.__name__ not in drawn] == []
    known = {cls.__name__ for cls in raised} | {
        name
        for name, value in vars(builtins).items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    assert exception_classes_outside_errors(known) == []


def exception_classes_outside_errors(known: set[str], root: Path = ENGINE) -> list[str]:
    """Classes outside errors.py deriving from a known exception (or any ``x.SomeError``)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "errors.py" and path.parent == root:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef) and any(
                (isinstance(base, ast.Name) and base.id in known)
                or (isinstance(base, ast.Attribute) and base.attr.endswith(("Error", "Exception")))
                for base in node.bases
            ):
                found.append(f"{module_name(path, root)}: {node.name}")
    return found


def test_the_exception_check_catches_a_class_outside_errors(tmp_path: Path) -> None:
    package = tmp_path / "engine"
    (package / "saas").mkdir(parents=True)
    (package / "saas" / "client.py").write_text(
        "class Lost(StorageError): ...\nclass Odd(httpx.HTTPError): ...\nclass Fine: ...\n"
    )
    found = exception_classes_outside_errors({"StorageError"}, package)
    assert found == ["engine.saas.client: Lost", "engine.saas.client: Odd"]
