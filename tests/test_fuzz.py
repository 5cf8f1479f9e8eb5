"""Fuzzing the live module API: schemathesis reads the OpenAPI document a real `engine serve`
process serves, and sends every operation positive and negative bodies over HTTP (some carrying
a real Kinto's credentials, a real root ctx and memory:// storage, so tasks really start). The
run fails on any 500, any answer off its schema, and any secret echoed in an answer."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from scripts import servers
from tests.taskflow import KINTO_MODULE, ROOT, Shape, auth_of, root_ctxs, seed

pytestmark = pytest.mark.e2e

# per operation and generation mode: about 520 requests in ~40 s on 2 cores, most of it spent
# generating them (the engine answers all of them in about 7 s)
EXAMPLES = 16
STORAGE_SECRET = "Fuzz-Storage-Secret-8841"  # distinctive, so a leak shows up in any text
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]
_SECRET_PLACES = (("auth",), ("settings",), ("storage", "options"), ("destination", "options"))


@pytest.fixture(scope="module")
def live(
    kinto: servers.KintoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """A live engine serving modules/kinto; the real auth and a real root ctx to overlay."""
    bucket = f"fuzz-{uuid.uuid4().hex[:8]}"
    seed(kinto, Shape({bucket: [3, 2]}, {bucket: 1}))
    folder = tmp_path_factory.mktemp("fuzz")
    env = {"ENGINE_STORAGE_ALLOW": "memory://", "ENGINE_BACKUP_DIR": str(folder)}
    port = servers.free_port()
    argv: list[str | Path] = [sys.executable, "-m", "engine", "serve", KINTO_MODULE]
    with (
        servers.start_process(
            "engine",
            [*argv, "--port", str(port)],
            url=f"http://{servers.HOST}:{port}",
            health_url=f"http://{servers.HOST}:{port}/healthz",
            log_path=folder / "engine.log",
            cwd=ROOT,
            env=env,
        ) as engine,
        httpx.Client(base_url=engine.url) as client,
    ):
        yield engine.url, auth_of(kinto), root_ctxs(client, auth_of(kinto))[bucket]


def _overlay(real: tuple[dict[str, Any], dict[str, Any]]) -> Callable[[Any, int], Any]:
    """Mixes real parts into a generated body: none, the real auth, or auth, ctx and storage."""
    auth, ctx = real

    def mix(body: Any, level: int) -> Any:
        if not isinstance(body, dict) or level == 0:
            return body
        storage = {"url": f"memory://fuzz/{uuid.uuid4().hex}", "options": {"token": STORAGE_SECRET}}
        parts = {"auth": auth} if level == 1 else {"auth": auth, "ctx": ctx, "storage": storage}
        return body | parts | {"taskUuid": str(uuid.uuid4())}

    return mix


def _leaves(tree: Any) -> Iterator[str]:
    if isinstance(tree, dict):
        for value in tree.values():
            yield from _leaves(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _leaves(value)
    elif isinstance(tree, str):
        yield tree


def _secrets(body: Any) -> set[str]:
    """The secret strings of a request: long enough to be told apart from ordinary words, and
    found nowhere else in the request (a value also sent as a ctx may come back)."""
    if not isinstance(body, dict):
        return set()
    found: set[str] = set()
    for place in _SECRET_PLACES:
        node: Any = body
        for key in place:
            node = node.get(key) if isinstance(node, dict) else None
        found |= {leaf for leaf in _leaves(node) if len(leaf) >= 8}
    rest = json.dumps({k: v for k, v in body.items() if k not in {"auth", "settings"}})
    public = {leaf for leaf in found if json.dumps(leaf)[1:-1] in rest.replace(STORAGE_SECRET, "")}
    return found - public


def test_the_live_api_never_answers_500_off_its_schema_or_with_a_secret(live):
    url, auth, ctx = live
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    mix = _overlay((auth, ctx))
    counts: Counter[str] = Counter()
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        # a GET takes nothing, so nothing can be made invalid: it is only fuzzed positively
        modes = [GenerationMode.POSITIVE] + [GenerationMode.NEGATIVE] * (operation.method != "get")
        for mode in modes:
            label = operation.label
            cases = st.tuples(operation.as_strategy(generation_mode=mode), st.integers(0, 2))

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(drawn=cases)
            def fuzz(drawn: tuple[Any, int]) -> None:
                case, level = drawn
                if case.body is not schemathesis.core.NOT_SET:
                    case.body = mix(case.body, level)
                response = case.call(base_url=url, timeout=30)
                counts[_label(response)] += 1
                case.validate_response(response, checks=CHECKS)
                for secret in _secrets(case.body):
                    assert secret not in response.text, f"{label} echoed a secret"  # noqa: B023

            fuzz()
    elapsed = time.monotonic() - started
    total = sum(counts.values())
    print(f"\nfuzzed {total} requests in {elapsed:.1f} s: {dict(sorted(counts.items()))}")
    assert not [label for label in counts if label.startswith("500")]
    assert total >= 500, counts


def _label(response: Any) -> str:
    """'200', or an error's status and code: '400 BAD_REQUEST'."""
    if response.status_code == 200:
        return "200"
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = "?"
    return f"{response.status_code} {code}"
