"""What the Kinto benchmarks share: an `engine serve modules/kinto` process of their own (the
program users run), processes pinned to cores, and tasks of any kind driven through the API,
timed as the platform sees them (from the start call to the status answer that says DONE)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from bench import serving
from bench.core import ROOT
from scripts import servers

KINTO_MODULE = ROOT / "modules" / "kinto"
POLL_SECONDS = 0.05  # the platform's status polling; ~20 cheap calls a second
TASK_TIMEOUT = 1800.0


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


def call(http: httpx.Client, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """POST body to the API; its JSON answer, which must be a 200."""
    answer = http.post(path, json=dict(body))
    if answer.status_code != 200:
        raise RuntimeError(f"{path} answered {answer.status_code}: {answer.text[:1000]}")
    found: dict[str, Any] = answer.json()
    return found


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


def run_task(http: httpx.Client, path: str, body: Mapping[str, Any]) -> float:
    """Start a task and poll /api/status until it is DONE; the seconds it took. Fails on any
    error answer or any non-fatal error the task reports (a benchmark counts only whole work)."""
    started = time.perf_counter()
    answer = call(http, path, body)
    while answer["status"] != "DONE":
        if time.perf_counter() - started > TASK_TIMEOUT:
            raise RuntimeError(f"{path} did not finish within {TASK_TIMEOUT:.0f} s: {answer}")
        time.sleep(POLL_SECONDS)
        status = {key: body[key] for key in ("auth", "taskUuid", "storage")}
        answer = call(http, "/api/status", status | {"ctx": answer["ctx"]})
    elapsed = time.perf_counter() - started
    if answer["errors"]:
        raise RuntimeError(f"{path} reported errors: {answer['errors'][:3]}")
    return elapsed
