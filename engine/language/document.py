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


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _mark(mark: yaml.Mark) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def _offset(text: str, index: int) -> Position:
    """The position of character ``index`` of ``text``."""
    line_start = text.rfind("\n", 0, index) + 1
    return Position(text.count("\n", 0, index) + 1, index - line_start + 1)


class _Builder:
    """Turns a composed YAML node tree into plain data, recording positions."""

    def __init__(self, document: Document, loader: yaml.SafeLoader) -> None:
        self.document = document
        self.loader = loader
        self.problems: list[Problem] = []
        self.merged: dict[int, int] = {}
        self.building: set[int] = set()

    def build(self, node: yaml.Node, pointer: str) -> Any:
        self.document.values[pointer] = _mark(node.start_mark)
        if id(node) in self.building:
            self._report(node, pointer, "recursive alias: this value contains itself")
            return None
        self.building.add(id(node))
        try:
            return self._content(node, pointer)
        finally:
            self.building.discard(id(node))

    def _content(self, node: yaml.Node, pointer: str) -> Any:
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, pointer)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, f"{pointer}/{i}") for i, item in enumerate(node.value)]
        return self.loader.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, pointer: str) -> dict[str, Any]:
        merged = self._flatten(node)
        result: dict[str, Any] = {}
        explicit: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            key = str(self.loader.construct_object(key_node, deep=True))
            child = f"{pointer}/{escape(key)}"
            if index >= merged and key in explicit:
                self._report(key_node, child, f"duplicate key '{key}'")
                continue
            if index >= merged:  # a key written here overrides the same key merged in (<<)
                explicit.add(key)
            self.document.keys[child] = _mark(key_node.start_mark)
            result[key] = self.build(value_node, child)
        return result

    def _flatten(self, node: yaml.MappingNode) -> int:
        """Resolves the merge keys (``<<``) of ``node`` in place, once; returns how many of its
        leading pairs were merged in."""
        if id(node) not in self.merged:
            written = sum(key.tag != _MERGE_TAG for key, _ in node.value)
            self.loader.flatten_mapping(node)
            self.merged[id(node)] = len(node.value) - written
        return self.merged[id(node)]

    def _report(self, node: yaml.Node, pointer: str, message: str) -> None:
        self.problems.append(Problem(self.document.file, _mark(node.start_mark), pointer, message))


def parse(text: str, file: str) -> tuple[Document, list[Problem]]:
    """Parses YAML ``text``; syntax errors and duplicate keys come back as problems. After a
    syntax error ``data`` is None; after a duplicate key the first value is kept."""
    document = Document(file, None)
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        message = f"invalid YAML: unacceptable character #x{exc.character:04x}: {exc.reason}"
        return document, [Problem(file, _offset(text, exc.position), "", message)]
    try:
        node = loader.get_single_node()
        if node is None:
            return document, []
        builder = _Builder(document, loader)
        document.data = builder.build(node, "")
        return document, builder.problems
    except yaml.MarkedYAMLError as exc:
        return Document(file, None), [_syntax_problem(file, exc)]
    except RecursionError:
        where = _mark(loader.get_mark())
        return Document(file, None), [Problem(file, where, "", "invalid YAML: nested too deeply")]
    finally:
        loader.dispose()


def _syntax_problem(file: str, exc: yaml.MarkedYAMLError) -> Problem:
    """A YAML syntax error, at the place the parser stopped, with where its context began."""
    mark = exc.problem_mark or exc.context_mark
    where = _mark(mark) if mark else Position(1, 1)
    message = (exc.problem or exc.context or "syntax error").removeprefix("but ")
    begun = exc.context_mark
    if exc.problem and exc.context and begun and begun is not mark:
        message += f" ({exc.context} at line {begun.line + 1}, column {begun.column + 1})"
    return Problem(file, where, "", f"invalid YAML: {message}")


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
