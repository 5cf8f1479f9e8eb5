"""JMESPath selectors (record lists, cursors, next URLs, check expectations). The only module
that imports jmespath."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jmespath
from jmespath.exceptions import (
    EmptyExpressionError,
    IncompleteExpressionError,
    JMESPathError,
    LexerError,
    ParseError,
)

from engine.errors import SelectorError


def _problem(exc: JMESPathError) -> str:
    """What is wrong, without jmespath's multi-line banner."""
    if isinstance(exc, EmptyExpressionError):
        return "the expression is empty"
    if isinstance(exc, IncompleteExpressionError):
        return f"incomplete expression (at character {exc.lex_position + 1})"
    if isinstance(exc, LexerError):
        return f"{exc.message[:1].lower()}{exc.message[1:]} (at character {exc.lex_position + 1})"
    if isinstance(exc, ParseError):
        what = f"unexpected '{exc.token_value}'" if exc.msg == "invalid token" else exc.msg
        return f"{what[:1].lower()}{what[1:]} (at character {exc.lex_position + 1})"
    return str(exc).splitlines()[0]


@lru_cache(maxsize=1024)
def _compiled(expression: str) -> Any:
    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        raise SelectorError(_problem(exc)) from exc


def syntax_error(expression: str) -> str | None:
    """Why ``expression`` is not valid JMESPath, or None when it is."""
    try:
        _compiled(expression)
    except SelectorError as exc:
        return str(exc)
    return None


def select(expression: str, data: Any) -> Any:
    """The value ``expression`` selects in ``data`` (None when absent); SelectorError when the
    expression fails on this data (a function given the wrong type, for example)."""
    try:
        return _compiled(expression).search(data)
    except JMESPathError as exc:
        raise SelectorError(_problem(exc)) from exc
