"""Access tokens the engine obtains itself (OAuth2 client credentials, OAuth2 refresh token,
session login): one cache per process, keyed by a digest of everything that obtains them (token
URL, client id, client secret, scope and params, refresh token; a session's server and login
request), so API calls and tasks with the same credentials share a token until shortly before
it expires, and no others ever do. A token bound to the cookies of the connection that obtained
it is never shared. Tokens live in memory only; every token and rotated secret is masked in logs
and errors of each request or task that uses it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from engine import redaction
from engine.clock import Clock

LEEWAY_SECONDS = 30.0  # a token is renewed this long before it expires ...
LEEWAY_SHARE = 0.1  # ... or this share of its lifetime before, whichever is shorter
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")  # an OAuth2 error code (RFC 6749 5.2), safe to show


@dataclass
class Token:
    """An access token and when it stops being usable (None: until the SaaS refuses it)."""

    value: str
    expires_at: float | None = None
    refresh: str | None = None  # a rotated refresh token, when the endpoint gave one
    bound: bool = False  # works only with the cookies of the connection that obtained it

    def expired(self, now: float) -> bool:
        """Whether the token is due for renewal at ``now``."""
        return self.expires_at is not None and now >= self.expires_at


@dataclass
class _Slot:
    token: Token | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    refresh: str | None = None  # the latest refresh token, for rotating grants


Fetch = Callable[[str | None], Awaitable[Token]]  # obtains a token (given the refresh token)


@dataclass
class TokenCache:
    """The process's tokens."""

    clock: Clock
    _slots: dict[str, _Slot] = field(default_factory=dict)

    async def get(self, key: str, fetch: Fetch, *, refresh: str | None = None) -> Token:
        """The cached token for key, or a new one from fetch (one fetch at a time per key; a
        bound token is handed to its connection, not kept). Masked wherever it is used."""
        slot = self._slots.setdefault(key, _Slot(refresh=refresh))
        async with slot.lock:
            token = slot.token
            if token is None or token.expired(self.clock.now()):
                token = await fetch(slot.refresh)
                slot.token = None if token.bound else token
                slot.refresh = token.refresh or slot.refresh
            redaction.add_secrets(token.value, token.refresh)
            return token

    def latest_refresh(self, key: str) -> str | None:
        """The newest refresh token obtained under key (after rotations)."""
        slot = self._slots.get(key)
        return None if slot is None else slot.refresh

    def forget(self, key: str, token: Token) -> None:
        """Drops a token the SaaS refused, unless another caller already replaced it."""
        slot = self._slots.get(key)
        if slot is not None and slot.token is token:
            slot.token = None


def cache_key(kind: str, *parts: Any) -> str:
    """A digest naming one way of obtaining tokens (it holds secrets: never shown)."""
    text = json.dumps([kind, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def expiry(now: float, lifetime: Any) -> float | None:
    """When a token given for ``lifetime`` seconds should be renewed; None when unknown."""
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
        return None
    return now + lifetime - min(LEEWAY_SECONDS, lifetime * LEEWAY_SHARE)


def error_code(body: Any) -> str | None:
    """The OAuth2 ``error`` code of a token endpoint's answer, when it is a plain one."""
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else None
