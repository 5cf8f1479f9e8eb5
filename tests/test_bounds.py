"""Bounds on the work one request can cause: bulk items per request (ENGINE_MAX_ITEMS, no item
twice) against a real Kinto, and template bombs failing fast, located, while the app answers."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from scripts import servers
from tests.taskflow import (
    KINTO_MODULE,
    ROOT,
    Backend,
    Shape,
    assert_done,
    auth_of,
    check_manifest,
    delete_buckets,
    new_uuid,
    post,
    root_ctxs,
    run_task,
    seed,
    status_body,
)

LIMIT = 3


@dataclass
class Buckets:
    """LIMIT + 1 small seeded buckets, an engine allowing LIMIT items per request, a place."""

    kinto: servers.KintoServer
    api: TestClient
    area: Backend
    items: list[dict[str, Any]]

    def backup(self, items: list[dict[str, Any]], name: str) -> dict[str, Any]:
        return {
            "auth": auth_of(self.kinto),
            "taskUuid": new_uuid(),
            "storage": self.area.place(name).storage(),
            "items": items,
        }


@pytest.fixture
def buckets(
    kinto: servers.KintoServer,
    storage_area: Callable[[str], Backend],
    engine_api: Callable[..., TestClient],
) -> Iterator[Buckets]:
    names = [f"bounds-{uuid.uuid4().hex[:8]}-{n}" for n in range(LIMIT + 1)]
    seed(kinto, Shape({name: [3] for name in names}, {}))
    area = storage_area("local")
    api = engine_api(storage_allow=(area.allow,), max_items=LIMIT)
    roots = root_ctxs(api, auth_of(kinto))
    yield Buckets(kinto, api, area, [{"ctx": roots[name]} for name in names])
    delete_buckets(kinto, names)


@pytest.mark.e2e
def test_a_bulk_backup_of_more_items_than_the_limit_is_refused_with_400(buckets: Buckets):
    status, answer = post(buckets.api, "/api/bulk/backup", buckets.backup(buckets.items, "over"))

    assert status == 400, answer
    assert answer["error"]["code"] == "BAD_REQUEST"
    assert answer["error"]["description"] == (
        f"items: {LIMIT + 1} items; a request may name at most {LIMIT} (ENGINE_MAX_ITEMS)"
    )
    assert buckets.area.place("over").files() == []


@pytest.mark.e2e
def test_a_bulk_request_naming_an_item_twice_is_refused_naming_each_repeat(buckets: Buckets):
    first, second = buckets.items[:2]
    items = [first, second, first]
    for path in ("/api/bulk/backup", "/api/bulk/restore"):
        status, answer = post(buckets.api, path, buckets.backup(items, "twice"))

        assert status == 400, answer
        assert answer["error"]["code"] == "BAD_REQUEST"
        assert answer["error"]["description"] == "items[2] repeats items[0]"

    status, answer = post(
        buckets.api, "/api/bulk/backup", buckets.backup([first, first, second], "again")
    )
    assert (status, answer["error"]["description"]) == (400, "items[1] repeats items[0]")


@pytest.mark.e2e
def test_a_bulk_backup_of_exactly_the_limit_backs_every_item_up(buckets: Buckets):
    body = buckets.backup(buckets.items[:LIMIT], "at-limit")

    assert_done(run_task(buckets.api, "/api/bulk/backup", body))

    manifest = check_manifest(buckets.area.place("at-limit"))
    backed_up = {entry["values"]["bucket"] for entry in manifest["objects"]}
    assert backed_up == {item["ctx"]["values"]["bucket"] for item in buckets.items[:LIMIT]}


# --------------------------------------------------------------------------- template bombs
# The kinto module with one backup path that, by the bucket's name, renders a template bomb;
# each bomb on its own line, so the error's line names it.
BOMB_LINES = [
    "{%- set bomb = ctx.bucket.split('-')[-1] %}",
    "{%- if bomb == 'nested' %}{% for i in range(10 ** 5) %}{% for j in range(10 ** 5) %}",
    "{%- endfor %}{% endfor %}",
    "{%- elif bomb == 'power' %}{{ 10 ** (10 ** 8) }}",
    "{%- elif bomb == 'repeat' %}{{ 'x' * 200000000 }}",
    "{%- elif bomb == 'loop' %}{% for i in range(10 ** 5) %}{{ range(10 ** 5) | sum }}",
    "{%- endfor %}{% endif %}{{ ctx.bucket }}/bucket.json",
]
BOMB_PATH = "|-\n" + "\n".join(f"          {line}" for line in BOMB_LINES)
BOMBS = {
    "nested": "at line 2: the render took over 0.25 s",
    "power": "at line 4: a power of over 4096 bits (10 ** 100000000)",
    "repeat": "at line 5: a repeat ('*') would build 200,000,000 characters or items"
    " (at most 8,388,608)",
    "loop": "at line 6: the render took over 0.25 s",
}
QUICK = 5.0  # seconds: what /healthz and each call may take while a bomb renders


@pytest.fixture(scope="module")
def bomb_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A live `engine serve` of the kinto module with the bomb path, and a client of it."""
    folder = tmp_path_factory.mktemp("bomb-module")
    text = (KINTO_MODULE / "module.yaml").read_text(encoding="utf-8")
    plain = 'to: "{{ ctx.bucket }}/bucket.json"'
    assert text.count(plain) == 1
    (folder / "module.yaml").write_text(text.replace(plain, f"to: {BOMB_PATH}"))
    port = servers.free_port()
    argv: list[str | Path] = [sys.executable, "-m", "engine", "serve", folder, "--port", str(port)]
    url = f"http://{servers.HOST}:{port}"
    log = folder / "engine.log"
    server = servers.start_process(
        "engine", argv, url=url, health_url=f"{url}/healthz", log_path=log, cwd=ROOT
    )
    try:
        with httpx.Client(base_url=url, timeout=QUICK) as client:
            yield client
    finally:
        server.stop()


@pytest.mark.e2e
@pytest.mark.parametrize("bomb", list(BOMBS))
def test_a_template_bomb_fails_its_task_fast_with_a_located_error_and_healthz_answers(
    bomb: str, bomb_engine: httpx.Client, kinto: servers.KintoServer
):
    bucket = f"bomb-{uuid.uuid4().hex[:8]}-{bomb}"
    seed(kinto, Shape({bucket: [1]}, {}))
    try:
        ctx = root_ctxs(bomb_engine, auth_of(kinto))[bucket]
        body = {
            "auth": auth_of(kinto),
            "taskUuid": new_uuid(),
            "storage": {"url": f"memory://bounds/{uuid.uuid4().hex}"},
            "ctx": ctx,
        }
        began = time.monotonic()
        status, answer = post(bomb_engine, "/api/backup", body)
        while status == 200 and answer["status"] != "DONE":
            assert bomb_engine.get("/healthz").status_code == 200
            assert time.monotonic() - began < 60, answer
            status, answer = post(bomb_engine, "/api/status", status_body(body, answer))
    finally:
        delete_buckets(kinto, [bucket])

    assert status == 502 and answer["error"]["code"] == "SAAS_ERROR", answer
    [error] = answer["error"]["payload"]["errors"]
    place = "/resources/bucket/backup/0/to"
    assert error["description"] == f"{place}: over a limit {BOMBS[bomb]}"
