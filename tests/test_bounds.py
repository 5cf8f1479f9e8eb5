"""Bounds on the work one request can cause: bulk items per request (ENGINE_MAX_ITEMS, no item
twice) against a real Kinto, and template bombs failing fast, located, while the app answers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.testclient import TestClient

from scripts import servers
from tests.taskflow import (
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
