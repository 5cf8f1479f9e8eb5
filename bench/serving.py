"""`engine serve` processes for the benchmarks, backups driven through their HTTP API as the
platform drives them (start, then poll /api/status), and a process's peak resident memory."""

from __future__ import annotations

import re
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.core import ROOT
from scripts import servers

POLL_SECONDS = 0.05  # the wall time is known to within this; more often loads the engine
TASK_TIMEOUT = 1800.0


def start_engine(module: Path, log_folder: Path, env: Mapping[str, str]) -> servers.Server:
    """`python -m engine serve module` on a free port, with extra environment variables."""
    port = servers.free_port()
    url = f"http://{servers.HOST}:{port}"
    return servers.start_process(
        "engine",
        [sys.executable, "-m", "engine", "serve", module, "--port", str(port)],
        url=url,
        health_url=f"{url}/healthz",
        log_path=log_folder / f"engine-{port}.log",
        cwd=ROOT,
        env=env,
    )


def peak_mib(pid: int) -> float:
    """The peak resident memory of a live process so far (VmHWM), in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    if found is None:
        raise RuntimeError(f"no VmHWM in /proc/{pid}/status")
    return int(found.group(1)) / 1024


def roots(engine: str, auth: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every root's ctx by its id (one /api/roots page is enough for the benchmarks)."""
    answer = httpx.post(f"{engine}/api/roots", json={"auth": auth}, timeout=60, trust_env=False)
    answer.raise_for_status()
    return {root["id"]: root["ctx"] for root in answer.json()["resources"]}


@dataclass(frozen=True)
class Done:
    """A finished backup: its wall time (start call to the first DONE answer) and last answer."""

    seconds: float
    answer: dict[str, Any]


def backup(
    engine: str, auth: Mapping[str, Any], ctx: Mapping[str, Any], storage: Mapping[str, Any]
) -> Done:
    """Run one backup of a root through the API; fails unless it ends DONE without errors."""
    start = {"taskUuid": str(uuid.uuid4()), "auth": auth, "ctx": ctx, "storage": storage}
    with httpx.Client(base_url=engine, timeout=60, trust_env=False) as client:
        return run_task(client, "/api/backup", start)


def run_task(http: httpx.Client, path: str, body: Mapping[str, Any]) -> Done:
    """Start a task and poll /api/status until it is DONE, as the platform does. Fails on any
    error answer or any non-fatal error the task reports (a benchmark counts only whole work)."""
    began = time.perf_counter()
    answer = call(http, path, body)
    while answer["status"] != "DONE":
        if time.perf_counter() - began > TASK_TIMEOUT:
            raise RuntimeError(f"{path} did not finish within {TASK_TIMEOUT:.0f} s: {answer}")
        time.sleep(POLL_SECONDS)
        status = {key: body[key] for key in ("taskUuid", "auth", "storage")}
        answer = call(http, "/api/status", status | {"ctx": answer["ctx"]})
    elapsed = time.perf_counter() - began
    if answer["errors"]:
        raise RuntimeError(f"{path} reported errors: {answer['errors'][:3]}")
    return Done(elapsed, answer)


def call(http: httpx.Client, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """POST body to the API; its JSON answer, which must be a 200."""
    answer = http.post(path, json=dict(body))
    if answer.status_code != 200:
        raise RuntimeError(f"{path} answered {answer.status_code}: {answer.text[:1000]}")
    found: dict[str, Any] = answer.json()
    return found
