"""Keeps secrets out of logs and errors: every value under a request's ``auth`` and storage
options is a secret, scrubbed from any text the engine writes while that request is served."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
# Shorter values would mask ordinary words in messages; forms should require longer secrets.
_MIN_LENGTH = 3
_SECRETS: ContextVar[tuple[str, ...]] = ContextVar("engine_secrets", default=())


def _spellings(secret: str) -> set[str]:
    """A secret as text may show it: verbatim, URL-encoded (query strings), JSON-escaped."""
    return {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}


def _longest_first(values: set[str]) -> tuple[str, ...]:
    # A secret that contains another must be masked first, or its remainder would show.
    return tuple(sorted(values, key=lambda text: (-len(text), text)))


def secret_values(*trees: Any) -> tuple[str, ...]:
    """Every string and number leaf of ``trees``, in each of its spellings, longest first."""
    found: set[str] = set()
    stack = list(trees)
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
        elif isinstance(node, str | int | float) and not isinstance(node, bool):
            text = str(node)
            if len(text) >= _MIN_LENGTH:
                found |= _spellings(text)
    return _longest_first(found)


@contextmanager
def guarding(*trees: Any) -> Iterator[None]:
    """Scrubs the secret values of ``trees`` from errors and logs inside the block."""
    if not any(trees):  # a GET, say: nothing to add
        yield
        return
    token = _SECRETS.set(_longest_first({*_SECRETS.get(), *secret_values(*trees)}))
    try:
        yield
    finally:
        _SECRETS.reset(token)


def add_secrets(*values: str | None) -> None:
    """Masks values the engine obtained itself (tokens, rotated secrets) from here on, in the
    current request or task."""
    known = _SECRETS.get()
    # a cached token is added by every request that uses it: only the first one pays
    found = secret_values([value for value in values if value and value not in known])
    if found:
        _SECRETS.set(_longest_first({*known, *found}))


def scrub(text: str) -> str:
    """``text`` with every secret of the current request masked."""
    for secret in _SECRETS.get():
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that masks the current request's secrets in every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS.get():
            record.msg = scrub(record.getMessage())
            record.args = ()
        return True
