"""What the Kinto benchmarks share: an `engine serve modules/kinto` process of their own (the
program users run), processes pinned to cores, the platform's auth and the ctx of a collection,
found through the API. Tasks are driven and timed by bench.serving.run_task."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from bench import serving
from bench.core import ROOT
from bench.serving import call
from scripts import servers

KINTO_MODULE = ROOT / "modules" / "kinto"


def start_engine(workdir: Path, env: Mapping[str, str]) -> servers.Server:
    """`python -m engine serve modules/kinto` on a free port with extra environment variables
    (its log in workdir)."""
    return serving.start_engine(KINTO_MODULE, workdir, env)


def pin(pid: int, cpus: set[int]) -> None:
    """Keep every thread of a process on ``cpus`` (as `taskset -a -p` does); the threads it
    starts later inherit the mask."""
    for thread in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(thread.name), cpus)


def auth_of(kinto: servers.KintoServer) -> dict[str, Any]:
    """The Kinto module's auth for a Kinto's admin account."""
    user, password = kinto.admin
    return {"settings": {"server_url": kinto.url, "username": user, "password_secret": password}}


def api_client(engine: servers.Server) -> httpx.Client:
    """A client of an engine's module API."""
    return httpx.Client(base_url=engine.url, timeout=60, trust_env=False)


def collection_ctx(
    http: httpx.Client, auth: Mapping[str, Any], bucket: str, collection: str
) -> dict[str, Any]:
    """The ctx of a Kinto collection, found as the platform finds it: /api/roots, then
    /api/resources below its bucket."""
    roots = call(http, "/api/roots", {"auth": auth})["resources"]
    bucket_ctx = next(root["ctx"] for root in roots if root["id"] == bucket)
    children = call(http, "/api/resources", {"auth": auth, "ctx": bucket_ctx})["resources"]
    return dict(next(c["ctx"] for c in children if c["id"] == f"{bucket}/{collection}"))


def new_task(auth: Mapping[str, Any], storage_url: str, ctx: Mapping[str, Any]) -> dict[str, Any]:
    """A single-resource task request."""
    return {
        "auth": dict(auth),
        "taskUuid": str(uuid.uuid4()),
        "storage": {"url": storage_url},
        "ctx": dict(ctx),
    }
