"""API: requests per second and p50/p99 latency of `/api/version` and `/api/roots` under a native
load generator (wrk: 32 keep-alive connections, one thread), the server on one core and the
generator on the other. `engine serve modules/kinto` runs with ENGINE_LOG_LEVEL=WARNING.

Baselines: for /api/version, a bare Starlette app answering the same JSON body under the same
uvicorn settings (bench/bare_app.py); for /api/roots, which makes one Kinto request per call,
the Kinto request itself (GET /buckets) under the same load: the limit the engine cannot pass.
Where wrk is missing (and cannot be installed), bench/loadgen.py stands in, as the notes say."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import harness
from bench.core import ROOT, Context, Figure, median, pair_ratios
from scripts import servers

NAME = "api"
TITLE = "API: requests per second and latency under load"
CONNECTIONS = 32
SECONDS = {"full": 10.0, "smoke": 1.0}  # per run and target
WARMUP_SECONDS = 3.0  # full runs only: one untimed round first
BUCKETS = 5
SERVER_CPUS, LOAD_CPUS = {0}, {1}
LOG_LEVEL = "WARNING"
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class Request:
    """The request a load generator sends again and again."""

    url: str
    method: str = "GET"
    body: bytes = b""
    headers: tuple[str, ...] = ()  # "Name: value"


@dataclass(frozen=True)
class Load:
    """What a load run measured."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float


Generator = Callable[[Request, float, Path], Load]


# --------------------------------------------------------------------------- generators


def pinned(cpus: set[int]) -> list[str]:
    """The taskset prefix that runs a command on ``cpus`` (nothing where pinning is impossible:
    no taskset, or a single core)."""
    taskset = shutil.which("taskset")
    if taskset is None or (os.cpu_count() or 1) < 2:
        return []
    return [taskset, "-c", ",".join(map(str, sorted(cpus)))]


def pin(pid: int, cpus: set[int]) -> None:
    """Keep a running server on ``cpus``, where the load generator is pinned too."""
    if pinned(cpus):
        harness.pin(pid, cpus)


def lua_script(request: Request) -> str:
    """A wrk script sending ``request``."""
    body = request.body.decode()
    if "]==]" in body:
        raise ValueError("the body holds the Lua long-string terminator ]==]")
    lines = [f'wrk.method = "{request.method}"']
    if body:
        lines.append(f"wrk.body = [==[{body}]==]")
    for header in request.headers:
        name, value = (part.strip() for part in header.split(":", 1))
        lines.append(f'wrk.headers["{name}"] = "{value}"')
    return "\n".join(lines) + "\n"


def run_wrk(request: Request, seconds: float, scratch: Path) -> Load:
    """One wrk run; fails when any answer was not a 2xx or any connection failed."""
    script = scratch / "request.lua"
    script.write_text(lua_script(request))
    argv = [*pinned(LOAD_CPUS), "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:.0f}s"]
    argv += ["--latency", "--timeout", "10s", "-s", str(script), request.url]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-1000:]}")
    return parse_wrk(done.stdout)


def parse_wrk(output: str) -> Load:
    """Requests/sec and the 50% and 99% latencies of wrk's output (run with --latency)."""
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read \d+, write \d+, timeout (\d+)", output)
    if bad or (errors and any(int(count) for count in errors.groups())):
        raise RuntimeError(f"wrk saw failures:\n{output}")
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if rate is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{output}")
    return Load(float(rate.group(1)), _percentile(output, 50), _percentile(output, 99))


def _percentile(output: str, percent: int) -> float:
    found = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
    if found is None:
        raise RuntimeError(f"no {percent}% latency in wrk's output:\n{output}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def run_python(request: Request, seconds: float, scratch: Path) -> Load:
    """One run of bench/loadgen.py, the fallback; fails on any answer that was not a 2xx."""
    body = scratch / "body"
    body.write_bytes(request.body)
    argv = [*pinned(LOAD_CPUS), sys.executable, "-m", "bench.loadgen", request.url]
    argv += ["--connections", str(CONNECTIONS), "--seconds", str(seconds)]
    argv += ["--method", request.method, "--body", str(body)]
    for header in request.headers:
        argv += ["--header", header]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"bench.loadgen failed ({done.returncode}): {done.stderr[-1000:]}")
    result = json.loads(done.stdout)
    if result["failures"]:
        raise RuntimeError(f"bench.loadgen saw {result['failures']} failed answers")
    return Load(result["requests_per_second"], result["p50_ms"], result["p99_ms"])


GENERATORS: dict[str, Generator] = {"wrk": run_wrk, "python": run_python}


def generator_name(smoke: bool) -> str:
    """wrk, installed first where missing (full runs as root only); else the fallback."""
    if shutil.which("wrk") is None and not smoke and os.geteuid() == 0 and shutil.which("apt-get"):
        for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
            subprocess.run(step, capture_output=True, check=False)
    return "wrk" if shutil.which("wrk") else "python"


# --------------------------------------------------------------------------- servers


def start_bare(workdir: Path, body: bytes) -> servers.Server:
    """bench/bare_app.py answering ``body`` on /api/version, on a free port."""
    answer = workdir / "version.json"
    answer.write_bytes(body)
    port = servers.free_port()
    url = f"http://{servers.HOST}:{port}"
    return servers.start_process(
        "bare-app",
        [sys.executable, "-m", "bench.bare_app", "--port", str(port), "--body", answer],
        url=url,
        health_url=f"{url}/healthz",
        log_path=workdir / f"bare-app-{port}.log",
        cwd=ROOT,
    )


def _targets(stack: ExitStack, workdir: Path) -> dict[str, Request]:
    """Start Kinto (with a few buckets), the engine and the bare app, each pinned; the requests
    to load them with."""
    kinto = stack.enter_context(servers.start_kinto(workdir))
    servers.seed_kinto(kinto.url, kinto.admin, buckets=BUCKETS, collections=0, groups=0, records=0)
    pin(kinto.process.pid, LOAD_CPUS)
    engine = stack.enter_context(harness.start_engine(workdir, {"ENGINE_LOG_LEVEL": LOG_LEVEL}))
    pin(engine.process.pid, SERVER_CPUS)
    version = httpx.get(f"{engine.url}/api/version", trust_env=False, timeout=30)
    version.raise_for_status()
    bare = stack.enter_context(start_bare(workdir, version.content))
    pin(bare.process.pid, SERVER_CPUS)
    roots = json.dumps({"auth": harness.auth_of(kinto)}).encode()
    user, password = kinto.admin
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {
        "engine version": Request(f"{engine.url}/api/version"),
        "bare version": Request(f"{bare.url}/api/version"),
        "engine roots": Request(
            f"{engine.url}/api/roots", "POST", roots, ("Content-Type: application/json",)
        ),
        "kinto buckets": Request(
            f"{kinto.url}/buckets",
            headers=(f"Authorization: Basic {basic}", "Accept: application/json"),
        ),
    }


# --------------------------------------------------------------------------- the run


API_EXTRAS = {
    "/api/version": "the engine's app goes through its endpoint table and error handling and"
    " answers from its loaded module; the bare Starlette app returns a constant",
    "/api/roots": "the engine checks the body against the module API, renders the module's"
    " listing request and maps Kinto's answer; Kinto's own GET /buckets is what it calls",
}


def _loads(context: Context, generate: Generator) -> dict[str, list[Load]]:
    seconds = SECONDS["smoke" if context.smoke else "full"]
    workdir = context.workdir / NAME
    scratch = workdir / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        targets = _targets(stack, workdir)
        if not context.smoke:
            for request in targets.values():
                generate(request, WARMUP_SECONDS, scratch)
        loads: dict[str, list[Load]] = {name: [] for name in targets}
        for _ in range(context.runs):  # interleaved, so a noisy moment hits all alike
            for name, request in targets.items():
                loads[name].append(generate(request, seconds, scratch))
    return loads


def _medians(loads: Sequence[Load]) -> Iterator[float]:
    yield median(load.requests_per_second for load in loads)
    yield median(load.p50_ms for load in loads)
    yield median(load.p99_ms for load in loads)


def run(context: Context) -> list[Figure]:
    """/api/version beside the bare app, /api/roots beside Kinto's own listing."""
    name = generator_name(context.smoke)
    loads = _loads(context, GENERATORS[name])
    seconds = SECONDS["smoke" if context.smoke else "full"]
    where = "server on core 0, load on core 1" if pinned(LOAD_CPUS) else "unpinned"
    load = "wrk" if name == "wrk" else "bench/loadgen.py (wrk missing)"
    note = f"{load}, {CONNECTIONS} connections, {seconds:.0f} s runs, {where}"
    figures: list[Figure] = []
    pairs = [
        ("/api/version", "engine version", "bare version", "bare Starlette app", 0.7),
        ("/api/roots", "engine roots", "kinto buckets", "Kinto GET /buckets", None),
    ]
    for path, engine, baseline, baseline_name, target in pairs:
        rate, p50, p99 = _medians(loads[engine])
        base_rate, base_p50, base_p99 = _medians(loads[baseline])
        detail = (
            f"{note}, ENGINE_LOG_LEVEL={LOG_LEVEL}"
            if target
            else f"{BUCKETS} buckets, one Kinto request per call; Kinto shares the load's core"
        )
        figures += [
            Figure(
                NAME,
                f"{path} throughput",
                "requests/s",
                rate,
                base_rate,
                baseline_name=baseline_name,
                target=target,
                note=detail,
                ratios=pair_ratios(
                    [load.requests_per_second for load in loads[engine]],
                    [load.requests_per_second for load in loads[baseline]],
                ),
                differs=API_EXTRAS[path],
            ),
            Figure(NAME, f"{path} p50 latency", "ms", p50, base_p50, baseline_name, higher=False),
            Figure(NAME, f"{path} p99 latency", "ms", p99, base_p99, baseline_name, higher=False),
        ]
    return figures
