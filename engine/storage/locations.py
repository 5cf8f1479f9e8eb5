"""Where a backup may live: storage URLs inside the allow-list, paths that cannot leave their root
or land in the engine's own places, and the options that reach a backend.

Checks on text alone, but for a URL's path, which its filesystem class normalises
(engine.filesystems).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from engine.errors import ConfigError, EngineError, PathError, StorageNotAllowed
from engine.storage.filesystems import protocol_of, strip_protocol

ENGINE_DIR = ".engine"  # reserved for the engine (task records): module paths never land there
MANIFEST = "manifest.json"  # the engine's too, written last: a backup without one is incomplete
MAX_PATH_BYTES = 1024  # S3's key limit, the tightest of the backends


# --------------------------------------------------------------------------- URLs and allow-list

_ALIASES = {"local": "file", "gcs": "gs", "s3a": "s3"}

# Protocols whose URL names a host, or that wrap another filesystem named by the URL or the
# options: a request could aim them anywhere, so they are never storage.
_NEVER_STORAGE = frozenset(
    {
        *("http", "https", "ftp", "sftp", "ssh", "smb", "webdav", "webhdfs", "hdfs"),
        *("arrow_hdfs", "jupyter", "jlab", "git", "github", "gist", "root", "dask", "pyscript"),
        *("data", "async_wrapper", "asyncwrapper", "blockcache", "cached", "filecache"),
        *("simplecache", "dir", "generic", "reference", "zip", "tar", "libarchive"),
    }
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_GLOB = re.compile(r"[*?\[]")  # fsspec's rm() expands these: a root must never hold one

_URL_RULES: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda url: bool(_CONTROL.search(url)), "has a control character"),
    (lambda url: "?" in url or "#" in url, "has a query or a fragment"),
    (lambda url: "@" in url.partition("://")[2].split("/")[0], "carries credentials"),
    (lambda url: bool(_GLOB.search(url)), "has a glob character (*, ? or [)"),
)


def canonical_protocol(url: str) -> str:
    """The URL's protocol under one name per backend ("file" for a plain path)."""
    name = (protocol_of(url) or "file").lower()
    return _ALIASES.get(name, name)


def check_allowed(url: str, allow: Sequence[str]) -> str:
    """The URL's protocol, if url lies strictly below one of the allowed prefixes."""
    return allowed_area(url, allow)[0]


def allowed_area(url: str, allow: Sequence[str], *, itself: bool = False) -> tuple[str, str]:
    """(protocol, path of the allowed prefix) for a url strictly below one of the prefixes (or,
    with itself, one of the prefixes itself)."""
    protocol, path = _location(url)
    for prefix in allow:
        if canonical_protocol(prefix) != protocol:
            continue
        base = _prefix_path(prefix)
        if (not base and path) or path.startswith(f"{base}/") or (itself and path == base):
            return protocol, base
    raise StorageNotAllowed(
        f"storage url {url} is not inside an allowed storage area (ENGINE_STORAGE_ALLOW)"
    )


def _location(url: str) -> tuple[str, str]:
    """(protocol, path) of a storage URL, the path normalised by its filesystem's own rules."""
    if "::" in url:
        raise StorageNotAllowed("a storage url may not chain filesystems (::)")
    protocol = canonical_protocol(url)
    if protocol in _NEVER_STORAGE:
        raise StorageNotAllowed(f"{protocol}:// reaches arbitrary hosts and is never storage")
    for test, reason in _URL_RULES:
        if test(url):
            raise PathError(f"the storage url {reason}")
    path = strip_protocol(protocol, url).rstrip("/")
    segments = path.strip("/").split("/")
    if path.strip("/") and {"", ".", ".."} & set(segments):
        raise PathError(f"storage url {url} has an empty, '.' or '..' segment")
    return protocol, path


@lru_cache(maxsize=256)
def _prefix_path(prefix: str) -> str:
    try:
        return _location(prefix)[1]
    except EngineError as exc:
        raise ConfigError(f"ENGINE_STORAGE_ALLOW: {prefix}: {exc.message}") from exc


# --------------------------------------------------------------------------- paths

_PATH_RULES: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda path: not path, "is empty"),
    (lambda path: bool(_CONTROL.search(path)), "has a control or invalid character"),
    (lambda path: "\\" in path, "has a backslash"),
    (lambda path: bool(_SCHEME.search(path)), "names a URL scheme"),
    (lambda path: path.startswith("/"), "is absolute"),
    (lambda path: bool({".", ".."} & set(path.split("/"))), "has a '.' or '..' segment"),
    (lambda path: "" in path.split("/"), "has an empty segment"),
    (lambda path: len(path.encode()) > MAX_PATH_BYTES, f"is over {MAX_PATH_BYTES} bytes long"),
)
# Places only the engine writes (resolve(..., engine=True)); module paths may not.
_ENGINE_RULES: tuple[tuple[Callable[[str], bool], str], ...] = (
    (
        lambda path: path.split("/")[0].lower() == ENGINE_DIR,
        f"is under {ENGINE_DIR}/ (the engine's)",
    ),
    (lambda path: path.lower() == MANIFEST, f"is the engine's {MANIFEST}"),
)


def check_path(relative: str, *, template: str | None = None, engine: bool = False) -> str:
    """relative, if it is a safe path below a root; PathError names the template, not values."""
    rules = _PATH_RULES if engine else _PATH_RULES + _ENGINE_RULES
    reason = next((why for test, why in rules if test(relative)), None)
    if reason is None:
        return relative
    subject = f"storage path {relative[:200]!r}"
    if template is not None:
        subject = f"path template {template!r} renders a path that"
    raise PathError(f"{subject} {reason}", template=template)


# --------------------------------------------------------------------------- options

# The storage layer's own defaults, below the engine's: 5 MiB parts (S3's smallest; they grow
# with the object, engine.transfers) keep s3fs's memory bounded (50 MiB per open file
# otherwise); no listings cache, as other engine processes write task records under the same
# root.
_BUILTIN_OPTIONS: dict[str, dict[str, Any]] = {
    "s3": {"default_block_size": 5 << 20, "use_listings_cache": False},
    "gs": {"use_listings_cache": False},
}
# Each Storage owns its filesystem instance and closes its sessions (aclose): fsspec's instance
# cache would keep one instance, and its connections, per set of credentials for ever.
_MANAGED = {"skip_instance_cache": True}
_DROPPED = ("asynchronous", "loop")  # the storage layer calls the sync API from threads


def _aws_options(aws: Mapping[str, Any]) -> dict[str, Any]:
    """s3fs options from an awsSessionToken."""
    options: dict[str, Any] = {
        "key": aws.get("accessKeyId"),
        "secret": aws.get("secretAccessKey"),
        "token": aws.get("sessionToken"),
    }
    if aws.get("region"):
        options["client_kwargs"] = {"region_name": aws["region"]}
    return {key: value for key, value in options.items() if value}


def _gc_options(gc: Mapping[str, Any]) -> dict[str, Any]:
    """gcsfs options from a gcAccessToken."""
    options = {"token": gc.get("accessToken"), "project": gc.get("projectId")}
    return {key: value for key, value in options.items() if value}


def _no_token_options(aws: Mapping[str, Any], gc: Mapping[str, Any]) -> dict[str, Any]:
    return {}


_TOKEN_OPTIONS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]] = {
    "s3": lambda aws, gc: _aws_options(aws),
    "gs": lambda aws, gc: _gc_options(gc),
}


def merge_options(
    protocol: str,
    request: Mapping[str, Any] | None,
    *,
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
    aws: Mapping[str, Any] | None = None,
    gc: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """The options for protocol, later layers winning: engine defaults, options derived from
    awsSessionToken/gcAccessToken, the request's; nested objects merge key by key. With a
    timeout (seconds per call), the backend's own timeouts are set within it: no layer may
    raise them (see _DEADLINES)."""
    protocol = _ALIASES.get(protocol, protocol)
    engine = {_ALIASES.get(name, name): options for name, options in (defaults or {}).items()}
    tokens = _TOKEN_OPTIONS.get(protocol, _no_token_options)(aws or {}, gc or {})
    merged: dict[str, Any] = {}
    for layer in (_BUILTIN_OPTIONS.get(protocol, {}), engine.get(protocol, {}), tokens, request):
        merged = _deep_merge(merged, layer or {})
    for key in _DROPPED:
        merged.pop(key, None)
    if timeout is not None:
        merged = _DEADLINES.get(protocol, _no_deadlines)(merged, timeout)
    return {**merged, **_MANAGED}


def _deep_merge(base: Mapping[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in layer.items():
        if isinstance(value, Mapping):
            below = merged.get(key)
            merged[key] = _deep_merge(below if isinstance(below, Mapping) else {}, value)
        else:
            merged[key] = value
    return merged


# --------------------------------------------------------------------------- backend deadlines

# A call's total deadline (ENGINE_STORAGE_TIMEOUT) ends the engine's wait, not the backend's
# thread: these keep that thread's own waits short too, so a hung endpoint lets its threads go.
# Each attempt may read for half the deadline, and botocore tries twice.
_CONNECT_SECONDS = 5.0


def _at_most(given: Any, limit: float) -> float:
    """given, if it is a positive number below limit; else limit."""
    number = isinstance(given, int | float) and not isinstance(given, bool) and given > 0
    return min(given, limit) if number else limit


def _s3_deadlines(options: dict[str, Any], timeout: float) -> dict[str, Any]:
    config = dict(options.get("config_kwargs") or {})
    connect = min(_CONNECT_SECONDS, timeout / 2)
    config["connect_timeout"] = _at_most(config.get("connect_timeout"), connect)
    config["read_timeout"] = _at_most(config.get("read_timeout"), timeout / 2)
    retries = config.get("retries")
    retries = dict(retries) if isinstance(retries, Mapping) else {}
    retries["max_attempts"] = int(_at_most(retries.get("max_attempts"), 1))
    retries.pop("total_max_attempts", None)
    config["retries"] = retries
    return options | {"config_kwargs": config}


def _gs_deadlines(options: dict[str, Any], timeout: float) -> dict[str, Any]:
    return options | {"requests_timeout": _at_most(options.get("requests_timeout"), timeout / 2)}


def _no_deadlines(options: dict[str, Any], timeout: float) -> dict[str, Any]:
    return options


_DEADLINES: dict[str, Callable[[dict[str, Any], float], dict[str, Any]]] = {
    "s3": _s3_deadlines,
    "gs": _gs_deadlines,
}
