"""Block YAML written as text, so that a draft's comments (``# guess:``, ``# TODO:``, pointers
to docs/language.md) stand above the keys they are about: a YAML dumper would drop them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# a string YAML reads back as that same string when written bare
_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*\Z")
_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "null", "y", "n"})


@dataclass(frozen=True)
class Noted:
    """A value with comment lines written above its key (or its list item)."""

    value: Any
    notes: tuple[str, ...] = ()


def noted(value: Any, *notes: str) -> Noted:
    """value with the comment lines notes (empty ones left out)."""
    return Noted(value, tuple(note for note in notes if note))


def scalar(value: Any) -> str:
    """One scalar as YAML: bare where that reads back the same, else a JSON string (valid
    YAML double-quoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return json.dumps(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _WORDS:
        return text
    return json.dumps(text, ensure_ascii=False)


def document(header: tuple[str, ...], sections: Mapping[str, Any]) -> str:
    """A YAML document: the header comment lines, then each top-level key, a blank line
    between them."""
    blocks = ["\n".join(f"# {line}" if line else "#" for line in header)] if header else []
    blocks += ["\n".join(lines({key: value}, 0)) for key, value in sections.items()]
    return "\n\n".join(blocks) + "\n"


def lines(value: Any, indent: int) -> list[str]:
    """value as block YAML lines at indent (value: a mapping or a list)."""
    if isinstance(value, Mapping):
        return [line for key, item in value.items() for line in _entry(key, item, indent)]
    return [line for item in value for line in _item(item, indent)]


def _comments(notes: tuple[str, ...], indent: int) -> list[str]:
    return [" " * indent + f"# {note}" for note in notes]


def _unwrap(value: Any) -> tuple[Any, tuple[str, ...]]:
    return (value.value, value.notes) if isinstance(value, Noted) else (value, ())


def _entry(key: str, value: Any, indent: int) -> list[str]:
    value, notes = _unwrap(value)
    head = " " * indent + scalar(key) + ":"
    if _nested(value):
        return [*_comments(notes, indent), head, *lines(value, indent + 2)]
    return [*_comments(notes, indent), f"{head} {_leaf(value)}"]


def _item(value: Any, indent: int) -> list[str]:
    value, notes = _unwrap(value)
    pad = " " * indent
    if not _nested(value):
        return [*_comments(notes, indent), f"{pad}- {_leaf(value)}"]
    body = lines(value, indent + 2)
    first = next(i for i, line in enumerate(body) if not line.lstrip().startswith("#"))
    body[first] = pad + "- " + body[first][indent + 2 :]
    return [*_comments(notes, indent), *body]


def _nested(value: Any) -> bool:
    return isinstance(value, Mapping | list) and bool(value)


def _leaf(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return scalar(value)
