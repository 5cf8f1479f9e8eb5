"""Keeps secrets out of logs and errors: every value under a request's ``auth`` and storage
options is a secret, scrubbed from any text the engine writes while that request is served."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

MASK = "***"
# Shorter values would mask ordinary words in messages; forms should require longer secrets.
_MIN_LENGTH = 3
_SECRETS: ContextVar[tuple[str, ...]] = ContextVar("engine_secrets", default=())


def secret_values(*trees: Any) -> tuple[str, ...]:
    """Every string and number leaf of ``trees``, longest first."""
    found: set[str] = set()
    stack = list(trees)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str | int | float) and not isinstance(node, bool):
            text = str(node)
            if len(text) >= _MIN_LENGTH:
                found.add(text)
    return tuple(sorted(found, key=len, reverse=True))


@contextmanager
def guarding(*trees: Any) -> Iterator[None]:
    """Scrubs the secret values of ``trees`` from errors and logs inside the block."""
    token = _SECRETS.set(_SECRETS.get() + secret_values(*trees))
    try:
        yield
    finally:
        _SECRETS.reset(token)


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
