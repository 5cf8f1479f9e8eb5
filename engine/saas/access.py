"""Opening a source for a request: the auth settings checked against the module's form, the
connection built from them, and the connection check of /api/schemas/auth/validate."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import (
    Code,
    SaasAuthError,
    SaasError,
    SettingsError,
    TemplateError,
    entry_of,
    error_entry,
)
from engine.language import forms
from engine.language.definition import Definition
from engine.language.selectors import select
from engine.language.templating import Usage, inspect
from engine.saas.client import Outbound, Saas


def form_errors(definition: Definition, settings: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The auth form's rules broken by ``settings``, as Error entries naming each field."""
    form = definition.auth.form
    if form is None:
        return []
    labels = {field.id: field.label for field in form.fields}
    return [
        error_entry(
            Code.INVALID_SETTINGS, f"{labels.get(p.field or '', p.key)}: {p.message}", field=p.field
        )
        for p in forms.validate_values(form, settings)
    ]


def open_saas(definition: Definition, shared: Outbound, body: Mapping[str, Any]) -> Saas:
    """The source a request's auth names; SettingsError (422) when the settings break the form."""
    settings = settings_of(body)
    errors = form_errors(definition, settings)
    if errors:
        fields = ", ".join(entry["description"] for entry in errors)
        raise SettingsError(
            f"the auth settings break the form's rules: {fields}", field=errors[0].get("field")
        )
    try:
        return Saas(shared, definition, settings, platform_of(body))
    except TemplateError as exc:
        raise SettingsError(
            f"the auth settings lack a value the connection needs ({exc.message})"
        ) from exc
    except SaasError as exc:  # the base URL, rendered from the settings, is not usable
        field = _base_url_field(definition)
        raise SettingsError(f"the auth settings give {exc.message}", field=field) from exc


def _base_url_field(definition: Definition) -> str | None:
    usage = inspect(str(definition.connection.base_url))
    form = definition.auth.form
    if not isinstance(usage, Usage) or form is None:
        return None
    by_key = forms.payload_fields(form)
    keys = [key for name, key in usage.attributes if name == "settings" and key in by_key]
    return by_key[keys[0]] if keys else None


async def check(
    definition: Definition, body: Mapping[str, Any], opener: Callable[[], Saas]
) -> list[dict[str, Any]]:
    """Form rules first, then the module's connection check against the SaaS (opener: the
    call's way of opening its source)."""
    errors = form_errors(definition, settings_of(body))
    if errors:
        return errors
    try:
        saas = opener()
        return await _connection_check(definition, saas)
    except SaasAuthError as exc:
        return [entry_of(exc)]
    except (SaasError, SettingsError) as exc:
        return [error_entry(exc.code, exc.message, field=_base_url_field(definition))]


async def _connection_check(definition: Definition, saas: Saas) -> list[dict[str, Any]]:
    spec = definition.auth.check
    if spec is None:
        return []
    names = {"settings": saas.settings}
    answer = await saas.send(spec.request, names, place="/auth/check/request")
    if spec.expect is not None and not select(spec.expect, answer.json()):
        message = spec.message or f"the connection check found nothing at '{spec.expect}'"
        return [error_entry(Code.SAAS_AUTH_FAILED, message, field=spec.field)]
    return []


def settings_of(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The auth settings of a request: a top-level ``settings`` wins over ``auth.settings``."""
    if body.get("settings") is not None:
        return dict(body["settings"])
    settings = (body.get("auth") or {}).get("settings")
    return dict(settings) if settings is not None else None


PLATFORM_TOKENS = ("awsSessionToken", "gcAccessToken")


def platform_of(body: Mapping[str, Any]) -> dict[str, Any]:
    """The platform's own credentials a request carries (AUTH_AWS_SESSION_TOKEN,
    AUTH_GC_ACCESS_TOKEN): templates see them as ``platform``."""
    auth = body.get("auth") or {}
    return {key: auth[key] for key in PLATFORM_TOKENS if auth.get(key) is not None}
