"""A YAML document loaded with the position of every node, for located error messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True, order=True)
class Position:
    """A 1-based line and column in a file."""

    line: int
    column: int


@dataclass(frozen=True, order=True)
class Problem:
    """One problem found in a module definition, located in its file."""

    file: str
    position: Position
    pointer: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        kind = "warning: " if self.warning else ""
        where = f"{self.file}:{self.position.line}:{self.position.column}"
        return f"{where}: {self.pointer or '/'}: {kind}{self.message}"


@dataclass
class Document:
    """Parsed YAML data with, per JSON pointer, where its key and its value stand."""

    file: str
    data: Any
    values: dict[str, Position] = field(default_factory=dict)
    keys: dict[str, Position] = field(default_factory=dict)

    def value_position(self, pointer: str) -> Position:
        """Where the value at ``pointer`` (or its nearest located ancestor) starts."""
        return self._nearest(pointer, self.values)

    def key_position(self, pointer: str) -> Position:
        """Where the key of ``pointer`` stands; for an unlocated key, its parent's key."""
        return self._nearest(pointer, self.keys, fallback=self.values)

    def problem(self, pointer: str, message: str, *, at_key: bool = False) -> Problem:
        """A problem at ``pointer``: at its key when ``at_key``, else at its value."""
        position = self.key_position(pointer) if at_key else self.value_position(pointer)
        return Problem(self.file, position, pointer, message)

    def warning(self, pointer: str, message: str, *, at_key: bool = False) -> Problem:
        """A warning (legal but risky) at ``pointer``."""
        found = self.problem(pointer, message, at_key=at_key)
        return Problem(found.file, found.position, pointer, message, warning=True)

    def _nearest(
        self, pointer: str, table: dict[str, Position], fallback: dict[str, Position] | None = None
    ) -> Position:
        while True:
            if pointer in table:
                return table[pointer]
            if fallback is not None and pointer in fallback:
                return fallback[pointer]
            if not pointer:
                return Position(1, 1)
            pointer = pointer.rsplit("/", 1)[0]


def escape(token: str | int) -> str:
    """One JSON pointer reference token (RFC 6901)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer_of(parts: Any) -> str:
    """The JSON pointer of a sequence of keys and indexes."""
    return "".join("/" + escape(part) for part in parts)


def _mark(mark: yaml.Mark) -> Position:
    return Position(mark.line + 1, mark.column + 1)


class _Builder:
    """Turns a composed YAML node tree into plain data, recording positions."""

    def __init__(self, document: Document, loader: yaml.SafeLoader) -> None:
        self.document = document
        self.loader = loader
        self.problems: list[Problem] = []

    def build(self, node: yaml.Node, pointer: str) -> Any:
        self.document.values[pointer] = _mark(node.start_mark)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, pointer)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, f"{pointer}/{i}") for i, item in enumerate(node.value)]
        return self.loader.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, pointer: str) -> dict[str, Any]:
        self.loader.flatten_mapping(node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(self.loader.construct_object(key_node, deep=True))
            child = f"{pointer}/{escape(key)}"
            if key in result:
                self.problems.append(
                    Problem(
                        self.document.file,
                        _mark(key_node.start_mark),
                        child,
                        f"duplicate key '{key}'",
                    )
                )
                continue
            self.document.keys[child] = _mark(key_node.start_mark)
            result[key] = self.build(value_node, child)
        return result


def parse(text: str, file: str) -> tuple[Document, list[Problem]]:
    """Parses YAML ``text``; syntax errors and duplicate keys come back as problems."""
    document = Document(file, None)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return document, []
        builder = _Builder(document, loader)
        document.data = builder.build(node, "")
        return document, builder.problems
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _mark(mark) if mark else Position(1, 1)
        message = f"invalid YAML: {exc.problem or exc.context}"
        return document, [Problem(file, where, "", message)]
    finally:
        loader.dispose()


def load(path: Path) -> tuple[Document, list[Problem]]:
    """Reads and parses a YAML file; an unreadable file is a problem, not a crash."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        return Document(str(path), None), [
            Problem(str(path), Position(1, 1), "", f"cannot read: {reason}")
        ]
    return parse(text, str(path))
