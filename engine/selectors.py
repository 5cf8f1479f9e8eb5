"""JMESPath selectors (record lists, cursors, next URLs, check expectations). The only module
that imports jmespath."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError


class SelectorError(ValueError):
    """Raised for a selector that does not parse."""


@lru_cache(maxsize=1024)
def _compiled(expression: str) -> Any:
    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        raise SelectorError(str(exc).splitlines()[0]) from exc


def syntax_error(expression: str) -> str | None:
    """Why ``expression`` is not valid JMESPath, or None when it is."""
    try:
        _compiled(expression)
    except SelectorError as exc:
        return str(exc)
    return None


def select(expression: str, data: Any) -> Any:
    """The value ``expression`` selects in ``data`` (None when absent)."""
    return _compiled(expression).search(data)
