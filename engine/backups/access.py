"""Storage for ``engine backups``: a URL opened with the engine's settings (the allow-list,
ENGINE_STORAGE_OPTIONS, custom classes and deadlines) and the command line's ``--option
key=value`` pairs, refused exactly where the server would refuse it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from engine.errors import PathError, RequestError, StorageNotAllowed
from engine.settings import Settings
from engine.storage import Limits, Storage, configure, open_storage, register_classes


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """Storage options from ``key=value`` pairs: a dotted key nests (``client_kwargs.
    endpoint_url=...``), a value that is JSON counts as JSON (numbers, true, objects), else it
    is a string. RequestError names a bad pair by its key only: values may be secrets."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sign, text = pair.partition("=")
        if not sign or not key or "" in key.split("."):
            shown = f"'{key}=...'" if sign else "one without '='"
            raise RequestError(f"--option takes key=value (a dotted key nests), not {shown}")
        *outer, last = key.split(".")
        place = options
        for name in outer:
            nested = place.setdefault(name, {})
            if not isinstance(nested, dict):
                raise RequestError(f"--option {key}: {name} is given a value and keys")
            place = nested
        place[last] = _value(text)
    return options


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def open_url(
    url: str, options: Mapping[str, Any], settings: Settings, *, area_root: bool = False
) -> Storage:
    """The storage at url as the server would open it (area_root: an allowed prefix itself
    too, to list it); a URL it would refuse is StorageNotAllowed (exit 4), naming why."""
    register_classes(settings.storage_classes or {})
    threads, per_endpoint = settings.storage_threads, settings.storage_endpoint_threads
    configure(Limits(settings.storage_timeout, threads, min(per_endpoint, threads)))
    try:
        return open_storage(
            url,
            options,
            allow=settings.allowed_storage,
            defaults=settings.storage_options,
            area_root=area_root,
        )
    except PathError as exc:  # the server answers 400 for these; here they are all "refused"
        raise StorageNotAllowed(f"storage url refused: {exc.message}") from exc
