"""How a module signs in, drafted: each credential kind the engine knows, as auth form fields,
settings payload and a ``connection.auth`` entry. ``engine init`` offers them by name and
``--from-openapi`` maps security schemes onto them (one table for both)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.authoring.openapi import Scheme


@dataclass(frozen=True)
class SignIn:
    """One way to sign in: the form fields it adds, their settings keys (payload), and the
    credential (``connection.auth`` entry, templates over ``settings``)."""

    key: str  # the scheme's name (the method dropdown's value)
    label: str
    fields: list[dict[str, Any]]
    payload: dict[str, str]
    credential: dict[str, Any]
    notes: tuple[str, ...] = field(default=())


def _field(id_: str, kind: str, label: str, **more: Any) -> dict[str, Any]:
    return {"id": id_, "type": kind, "label": label, **more}


def basic(scheme: Scheme, prefix: str) -> SignIn:
    """A user and a password (HTTP basic)."""
    user, password = f"{prefix}user", f"{prefix}password"
    return SignIn(
        scheme.name,
        "User and password",
        [_field(user, "text", "User", maxLength=256), _field(password, "password", "Password")],
        {f"{prefix}username": user, f"{prefix}password_secret": password},
        {
            "kind": "basic",
            "username": f"{{{{ settings.{prefix}username }}}}",
            "password": f"{{{{ settings.{prefix}password_secret }}}}",
        },
    )


def bearer(scheme: Scheme, prefix: str) -> SignIn:
    """A token sent as ``Authorization: Bearer``."""
    token = f"{prefix}token"
    return SignIn(
        scheme.name,
        "API token",
        [_field(token, "password", "API token")],
        {f"{prefix}token_secret": token},
        {"kind": "bearer", "token": f"{{{{ settings.{prefix}token_secret }}}}"},
    )


def api_key(scheme: Scheme, prefix: str) -> SignIn:
    """A key in a header or a query parameter."""
    key = f"{prefix}api_key"
    return SignIn(
        scheme.name,
        "API key",
        [_field(key, "password", "API key")],
        {f"{prefix}api_key_secret": key},
        {
            "kind": "apiKey",
            "in": scheme.location if scheme.location == "query" else "header",
            "name": scheme.key or "X-Api-Key",
            "value": f"{{{{ settings.{prefix}api_key_secret }}}}",
        },
    )


def client_credentials(scheme: Scheme, prefix: str) -> SignIn:
    """OAuth2 client credentials: a token fetched from the token URL with a client's id and
    secret."""
    url, client, secret = f"{prefix}token_url", f"{prefix}client_id", f"{prefix}client_secret"
    url_field = _field(url, "text", "Token URL", format="url")
    if scheme.token_url.startswith(("http://", "https://")):
        url_field["default"] = scheme.token_url
    return SignIn(
        scheme.name,
        "OAuth2 client credentials",
        [url_field, _field(client, "text", "Client ID"), _field(secret, "password", "Secret")],
        {url: url, client: client, f"{prefix}client_secret": secret},
        {
            "kind": "oauth2ClientCredentials",
            "tokenUrl": f"{{{{ settings.{url} }}}}",
            "clientId": f"{{{{ settings.{client} }}}}",
            "clientSecret": f"{{{{ settings.{prefix}client_secret }}}}",
        },
    )


KINDS: dict[str, Callable[[Scheme, str], SignIn]] = {
    "basic": basic,
    "bearer": bearer,
    "apiKey": api_key,
    "oauth2ClientCredentials": client_credentials,
}


def usable(scheme: Scheme) -> str:
    """Why the engine cannot sign in with scheme as drafted, or '' when it can."""
    if scheme.kind not in KINDS:
        return f"the {scheme.kind or 'unnamed'} kind has no drafted credential"
    if scheme.kind == "apiKey" and scheme.location not in ("header", "query"):
        return f"an API key in a {scheme.location or 'missing place'} is not drafted"
    return ""


def sign_ins(schemes: list[Scheme]) -> list[SignIn]:
    """The drafted sign-ins for usable schemes; field ids prefixed when there are several."""
    several = len(schemes) > 1
    found = []
    for scheme in schemes:
        prefix = f"{_slug(scheme.name)}_" if several else ""
        found.append(KINDS[scheme.kind](scheme, prefix))
    return found


def _slug(name: str) -> str:
    slug = "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
    return slug if slug[:1].isalpha() else f"s_{slug}"


def form_and_auth(found: list[SignIn]) -> tuple[list[dict[str, Any]], dict[str, str], Any]:
    """The form fields, settings payload and ``connection.auth`` for the sign-ins: one, or
    alternatives chosen by a ``method`` dropdown (the first is the default)."""
    if len(found) == 1:
        return found[0].fields, dict(found[0].payload), found[0].credential
    items = [{"label": f"{way.label} ({way.key})", "value": _slug(way.key)} for way in found]
    dropdown = _field("method", "dropdown", "Sign in with", items=items, default=items[0]["value"])
    fields = [dropdown, *(f for way in found for f in way.fields)]
    payload = {"method": "method", **{k: v for way in found for k, v in way.payload.items()}}
    alternatives = [
        {"when": f"{{{{ settings.method == '{_slug(way.key)}' }}}}", **way.credential}
        for way in found[:-1]
    ]
    return fields, payload, [*alternatives, found[-1].credential]
