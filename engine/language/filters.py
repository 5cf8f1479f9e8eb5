"""The engine's own template filters (templating registers them beside Jinja's built-ins):
URL quoting, base64 both ways and dropping keys from a mapping. A filter refuses a value it
cannot take with FilterFailed, which templating turns into a TemplateError naming the place."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from engine.errors import FilterFailed


def urlquote(value: Any) -> str:
    """The value as one URL path segment or query value (every reserved character quoted)."""
    return quote(str(value), safe="")


def b64encode(value: Any) -> str:
    """Bytes, or text encoded as UTF-8, as base64 text."""
    if isinstance(value, str):
        value = value.encode()
    if not isinstance(value, bytes | bytearray):
        raise FilterFailed("b64encode", f"takes text or bytes, not {type(value).__name__}")
    return base64.b64encode(value).decode("ascii")


def b64decode(value: Any) -> str:
    """Base64 text decoded to text; the decoded bytes must be UTF-8 (a template renders text or
    JSON, where raw bytes have no place)."""
    if not isinstance(value, str | bytes):
        raise FilterFailed("b64decode", f"takes base64 text, not {type(value).__name__}")
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise FilterFailed("b64decode", "was given text that is not base64") from None
    try:
        return decoded.decode()
    except UnicodeDecodeError:
        raise FilterFailed("b64decode", "decoded bytes that are not UTF-8 text") from None


def omit(value: Any, *keys: Any) -> dict[Any, Any]:
    """A copy of the mapping without the given keys: ``omit('a')``, ``omit('a', 'b')`` or
    ``omit(['a', 'b'])``; keys it does not have are no error."""
    if not isinstance(value, Mapping):
        raise FilterFailed("omit", f"takes a mapping, not {type(value).__name__}")
    dropped: set[Any] = set()
    for key in keys:
        dropped.update(key if isinstance(key, list | tuple) else [key])
    return {name: item for name, item in value.items() if name not in dropped}


# name in templates -> function; Jinja's built-in filters come on top of these
FILTERS: dict[str, Callable[..., Any]] = {
    "urlquote": urlquote,
    "b64encode": b64encode,
    "b64decode": b64decode,
    "omit": omit,
}
