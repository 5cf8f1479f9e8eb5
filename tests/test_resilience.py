"""Resilience end to end: the connection's retry policy (statuses, Retry-After in seconds or as a
date, backoff, timeouts, dropped and cut answers, maxWait), response rules and the rate limit,
against a real Kinto behind the fault proxy (tests/fault_proxy.py). A fake clock records every
wait the engine asks for and returns at once, so no test waits out a backoff."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient

from engine.api.app import create_app
from engine.errors import SaasError
from engine.language import model
from engine.language.definition import Definition
from engine.language.loader import load_module
from engine.saas.client import Answer, Saas, outbound
from engine.settings import Settings
from scripts import servers
from tests.fault_proxy import Fault, FaultProxy, proxying
from tests.taskflow import (
    KINTO_MODULE,
    Backend,
    Place,
    Shape,
    assert_done,
    assert_error,
    new_uuid,
    post,
    root_ctxs,
    run_task,
    seed,
)

pytestmark = pytest.mark.e2e

SECRET = "Resilience-Kinto-Secret-8841"  # the admin password: no log line may show it
BUCKET = "resilience"
START = 1_900_000_000.0  # the fake clock's epoch seconds (in 2030)
HEARTBEAT = 3600.0  # the tasks' heartbeat here: a wait this long is a real one
BUCKETS = {"path": "/buckets"}  # the roots listing's request, labelled "GET /buckets"
RECORDS = "/buckets/{{ ctx.bucket }}/collections/c01/records"
CREATE = {"method": "POST", "path": RECORDS, "body": {"data": {"title": "posted"}}}
ALL_ERRORS = ["connect", "timeout", "dropped", "invalid"]


class FakeClock:
    """Epoch seconds that move only when slept on. A wait shorter than a heartbeat is recorded
    and returns at once; a heartbeat's is real (its task cancels it when it ends)."""

    def __init__(self) -> None:
        self.time = START
        self.slept: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        if seconds >= HEARTBEAT:
            await asyncio.sleep(seconds)
            return
        self.slept.append(seconds)
        self.time += seconds
        await asyncio.sleep(0)


# --------------------------------------------------------------------------- fixtures, helpers


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.KintoServer]:
    """A Kinto of this file's own (its admin password is the secret), with one bucket of two
    collections (25 and 5 records) and a group."""
    folder = tmp_path_factory.mktemp("kinto-resilience")
    with servers.start_kinto(folder, paginate_by=10, admin_password=SECRET) as kinto:
        seed(kinto, Shape({BUCKET: [25, 5]}, {BUCKET: 1}))
        yield kinto


@pytest.fixture(scope="module")
def kinto_module() -> Definition:
    return load_module(KINTO_MODULE)


@pytest.fixture
def proxy(source: servers.KintoServer) -> Iterator[FaultProxy]:
    with proxying(source.url) as running:
        yield running


@pytest.fixture(autouse=True)
def no_secret_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test here logs at DEBUG, and no captured line shows the password (plain or as
    the Basic credentials it is sent in)."""
    caplog.set_level(logging.DEBUG)
    yield
    records = caplog.get_records("setup") + caplog.get_records("call")
    logs = "".join(f"{record.getMessage()} {record.__dict__}" for record in records)
    basic = base64.b64encode(f"admin:{SECRET}".encode()).decode()
    assert records  # captured: the check below is not vacuous
    assert SECRET not in logs
    assert basic not in logs


def settings_for(url: str) -> dict[str, Any]:
    """The Kinto module's auth settings for the admin account of the Kinto at url."""
    return {"server_url": url, "username": "admin", "password_secret": SECRET}


def kinto_variant(
    folder: Path,
    *,
    connection: Mapping[str, Any] | None = None,
    bucket_steps: Sequence[Mapping[str, Any]] = (),
) -> Definition:
    """modules/kinto with connection keys replaced and backup steps added to its bucket type,
    written as a module of its own and loaded (validated) as the engine loads any module."""
    raw = yaml.safe_load((KINTO_MODULE / "module.yaml").read_text(encoding="utf-8"))
    raw["connection"] |= dict(connection or {})
    raw["resources"]["bucket"]["backup"] += [dict(step) for step in bucket_steps]
    folder.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    (folder / "module.yaml").write_text(text, encoding="utf-8")
    return load_module(folder)


def send(
    definition: Definition, proxy: FaultProxy, clock: FakeClock, *specs: Mapping[str, Any]
) -> list[Answer]:
    """Sends request specs one after the other through a fresh connection (the engine's
    Outbound, so its rate limit applies) to the Kinto behind proxy, as the admin."""

    async def run() -> list[Answer]:
        async with outbound(definition, clock=clock) as shared:
            saas = Saas(shared, definition, settings_for(proxy.url))
            names = {"settings": saas.settings, "ctx": {"bucket": BUCKET}}
            requests = [model.build(model.Request, spec) for spec in specs]
            return [await saas.send(request, names, place="/test") for request in requests]

    return asyncio.run(run())


def fails(
    definition: Definition, proxy: FaultProxy, clock: FakeClock, spec: Mapping[str, Any]
) -> str:
    """The message of the SaasError that sending spec ends in."""
    with pytest.raises(SaasError) as failure:
        send(definition, proxy, clock, spec)
    return failure.value.message


def bucket_ids(answer: Answer) -> list[str]:
    return [bucket["id"] for bucket in answer.json()["data"]]


def faults(proxy: FaultProxy) -> list[str | None]:
    """What each request the proxy received got: a fault's kind or status, or None (forwarded)."""
    return [_named(request.fault) for request in proxy.requests]


def _named(fault: Fault | None) -> str | None:
    if fault is None:
        return None
    return str(fault.status) if fault.kind == "status" else fault.kind


def http_date(seconds: float) -> str:
    return email.utils.format_datetime(datetime.fromtimestamp(seconds, UTC), usegmt=True)


@contextmanager
def engine(definition: Definition, area: Backend, clock: FakeClock | None) -> Iterator[TestClient]:
    """An in-process engine serving definition (tasks running between calls) on clock."""
    settings = Settings(storage_allow=(area.allow,), heartbeat_seconds=HEARTBEAT)
    app = create_app(definition, settings, clock=clock)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def backup_body(api: TestClient, url: str, place: Place, bucket: str = BUCKET) -> dict[str, Any]:
    """A backup of bucket (with permissions: one request per record too) from the Kinto at url
    to place."""
    auth = {"settings": settings_for(url)}
    return {
        "auth": auth,
        "taskUuid": new_uuid(),
        "storage": place.storage(),
        "ctx": root_ctxs(api, auth)[bucket],
        "options": {"with_permissions": True},
    }


def task_record(place: Place, body: Mapping[str, Any]) -> dict[str, Any]:
    """The record of the task body started, as it is stored at place."""
    record: dict[str, Any] = json.loads(place.read(f".engine/tasks/{body['taskUuid']}.json"))
    return record


# --------------------------------------------------------------------------- Retry-After, backoff


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [("7", 7.0), (http_date(START + 42), 42.0)],
    ids=["seconds", "http-date"],
)
def test_a_429_is_retried_after_the_wait_its_retry_after_asks_for(
    kinto_module: Definition, proxy: FaultProxy, retry_after: str, wait: float
) -> None:
    refusal = Fault("status", status=429, headers={"Retry-After": retry_after})
    proxy.inject(refusal, "/buckets$")
    clock = FakeClock()

    [answer] = send(kinto_module, proxy, clock, BUCKETS)

    assert answer.status == 200 and BUCKET in bucket_ids(answer)
    assert clock.slept == [wait]  # a date is read against the engine's clock, not the wall's
    assert faults(proxy) == ["429", None]


def test_two_503s_then_an_answer_succeed_after_two_backoffs_within_the_default_policy(
    kinto_module: Definition, proxy: FaultProxy
) -> None:
    proxy.inject(Fault("status", status=503), "/buckets$", times=2)
    clock = FakeClock()

    [answer] = send(kinto_module, proxy, clock, BUCKETS)

    assert answer.status == 200 and BUCKET in bucket_ids(answer)
    assert faults(proxy) == ["503", "503", None]
    first, second = clock.slept  # full jitter: up to 0.5 s, then up to 1 s
    assert 0 <= first <= 0.5
    assert 0 <= second <= 1.0


@pytest.mark.parametrize(
    ("connection", "retry_after", "said"),
    [
        ({}, "3600", "retry after 3600 s, longer than retry.maxWait (120 s)"),
        ({"retry": {"maxWait": 5}}, "7", "retry after 7 s, longer than retry.maxWait (5 s)"),
    ],
    ids=["default-max-wait", "own-max-wait"],
)
def test_a_retry_after_longer_than_max_wait_fails_at_once_saying_so(
    proxy: FaultProxy, tmp_path: Path, connection: dict[str, Any], retry_after: str, said: str
) -> None:
    definition = kinto_variant(tmp_path / "module", connection=connection)
    proxy.inject(Fault("status", status=503, headers={"Retry-After": retry_after}), "/buckets$")
    clock = FakeClock()

    message = fails(definition, proxy, clock, BUCKETS)

    assert message == f"GET /buckets: the SaaS asked to {said}"
    assert clock.slept == []
    assert faults(proxy) == ["503"]


def test_a_retry_after_on_a_successful_answer_is_no_error(
    kinto_module: Definition, proxy: FaultProxy
) -> None:
    body = b'{"data": []}'
    proxy.inject(Fault("status", status=200, headers={"Retry-After": "3600"}, body=body))
    clock = FakeClock()

    [answer] = send(kinto_module, proxy, clock, BUCKETS)

    assert answer.status == 200 and answer.json() == {"data": []}
    assert clock.slept == []


TOO_MANY = Fault("status", status=429, headers={"Retry-After": "1"})


def test_throttled_tries_are_free_until_their_waits_use_up_the_budget(
    kinto_module: Definition, proxy: FaultProxy, tmp_path: Path
) -> None:
    proxy.inject(TOO_MANY, "/buckets$", times=5)  # more 429s in a row than the 3 attempts
    clock = FakeClock()

    [answer] = send(kinto_module, proxy, clock, BUCKETS)

    assert BUCKET in bucket_ids(answer)
    assert clock.slept == [1.0] * 5
    assert faults(proxy) == ["429"] * 5 + [None]

    proxy.clear()
    budget = kinto_variant(tmp_path / "module", connection={"retry": {"throttleBudget": 2}})
    proxy.inject(TOO_MANY, "/buckets$", times=None)
    clock = FakeClock()

    message = fails(budget, proxy, clock, BUCKETS)

    # two waits fit the budget; then the 429s count: 3 attempts more
    assert message == "GET /buckets: the SaaS answered HTTP 429 (gave up after 3 attempts)"
    assert faults(proxy) == ["429"] * 5
    assert clock.slept == [1.0] * 4


# --------------------------------------------------------------------------- connections


def test_a_dropped_connection_on_a_get_is_retried(
    kinto_module: Definition, proxy: FaultProxy
) -> None:
    proxy.inject(Fault("drop"), "/buckets$")
    clock = FakeClock()

    [answer] = send(kinto_module, proxy, clock, BUCKETS)

    assert answer.status == 200 and BUCKET in bucket_ids(answer)
    assert faults(proxy) == ["drop", None]
    assert len(clock.slept) == 1


def test_a_dropped_connection_on_a_post_is_not_repeated_by_default(
    kinto_module: Definition, proxy: FaultProxy
) -> None:
    proxy.inject(Fault("drop"), "/records$", method="POST")
    clock = FakeClock()

    message = fails(kinto_module, proxy, clock, CREATE)

    # the SaaS may have created the record before the connection broke: a repeat may double it
    assert message.startswith(f"POST {RECORDS}: cannot reach the SaaS (")
    assert "gave up" not in message
    assert faults(proxy) == ["drop"]
    assert clock.slept == []


def test_a_dropped_connection_on_a_post_is_repeated_when_the_policy_says_unsafe(
    proxy: FaultProxy, tmp_path: Path
) -> None:
    definition = kinto_variant(tmp_path / "module", connection={"retry": {"unsafe": True}})
    proxy.inject(Fault("drop"), "/records$", method="POST")
    clock = FakeClock()

    [answer] = send(definition, proxy, clock, CREATE)

    assert answer.status == 201
    assert answer.json()["data"]["title"] == "posted"
    assert faults(proxy) == ["drop", None]


def test_a_slow_answer_past_the_read_timeout_is_retried_then_given_up_on(
    proxy: FaultProxy, tmp_path: Path
) -> None:
    definition = kinto_variant(tmp_path / "module", connection={"timeouts": {"read": 0.5}})
    proxy.inject(Fault("delay", seconds=2.0), "/buckets$")
    clock = FakeClock()

    [answer] = send(definition, proxy, clock, BUCKETS)

    assert answer.status == 200 and BUCKET in bucket_ids(answer)
    assert faults(proxy) == ["delay", None]

    proxy.clear()
    proxy.inject(Fault("delay", seconds=2.0), "/buckets$", times=None)

    message = fails(definition, proxy, clock, BUCKETS)

    assert message == "GET /buckets: the SaaS did not answer in time (gave up after 3 attempts)"
    assert faults(proxy) == ["delay"] * 3


def test_a_cut_json_answer_is_not_retried_by_default_and_names_the_request(
    kinto_module: Definition, proxy: FaultProxy
) -> None:
    proxy.inject(Fault("truncate"), "/buckets$")
    clock = FakeClock()

    [answer] = send(kinto_module, proxy, clock, BUCKETS)

    with pytest.raises(SaasError, match=r"^GET /buckets: the answer is not JSON$"):
        answer.json()
    assert faults(proxy) == ["truncate"]
    assert clock.slept == []


def test_a_cut_json_answer_is_retried_when_the_policy_opts_in_to_invalid(
    proxy: FaultProxy, tmp_path: Path
) -> None:
    definition = kinto_variant(tmp_path / "module", connection={"retry": {"errors": ALL_ERRORS}})
    proxy.inject(Fault("truncate"), "/buckets$")
    clock = FakeClock()

    [answer] = send(definition, proxy, clock, BUCKETS)

    assert BUCKET in bucket_ids(answer)
    assert faults(proxy) == ["truncate", None]
    assert len(clock.slept) == 1


# --------------------------------------------------------------------------- response rules


def test_a_retry_rule_repeats_a_status_the_policy_would_not(
    kinto_module: Definition, proxy: FaultProxy, tmp_path: Path
) -> None:
    proxy.inject(Fault("status", status=409), "/buckets$")
    assert (
        fails(kinto_module, proxy, FakeClock(), BUCKETS)
        == "GET /buckets: the SaaS answered HTTP 409"
    )

    proxy.clear()
    rules = [{"status": [409], "action": "retry"}]
    definition = kinto_variant(tmp_path / "module", connection={"responses": rules})
    proxy.inject(Fault("status", status=409), "/buckets$", times=2)
    clock = FakeClock()

    [answer] = send(definition, proxy, clock, BUCKETS)

    assert BUCKET in bucket_ids(answer)
    assert faults(proxy) == ["409", "409", None]
    assert len(clock.slept) == 2


def test_a_fail_rule_matching_a_body_fragment_answers_with_its_message(
    proxy: FaultProxy, tmp_path: Path, storage_area: Callable[[str], Backend]
) -> None:
    message = "The Kinto tenant is over its quota: ask for a bigger one"
    rules = [{"body": "tenant quota exceeded", "action": "fail", "message": message}]
    definition = kinto_variant(tmp_path / "module", connection={"responses": rules})
    body = b'{"code": 400, "errno": 107, "message": "tenant quota exceeded"}'
    proxy.inject(Fault("status", status=400, body=body), "/buckets$")
    request = {"auth": {"settings": settings_for(proxy.url)}}

    with engine(definition, storage_area("local"), FakeClock()) as api:
        status, answer = post(api, "/api/roots", request)
        assert status == 502, answer
        assert answer["error"] == {"code": "SAAS_ERROR", "description": f"GET /buckets: {message}"}

        status, answer = post(api, "/api/roots", request)  # a plain answer: the rule is silent
        assert status == 200, answer
    assert BUCKET in [root["id"] for root in answer["resources"]]


ABSENT: dict[str, Any] = {
    "id": "absent",
    "fetch": "object",
    "request": {"path": "/buckets/{{ ctx.bucket | urlquote }}/collections/absent"},
    "to": "{{ ctx.bucket }}/absent.json",
}


def test_an_ignore_rule_on_a_step_makes_a_missing_object_no_error(
    source: servers.KintoServer, tmp_path: Path, storage_area: Callable[[str], Backend]
) -> None:
    area = storage_area("local")
    place = area.place("plain")
    plain = kinto_variant(tmp_path / "plain", bucket_steps=[ABSENT])
    with engine(plain, area, None) as api:
        body = backup_body(api, source.url, place)
        assert_error(run_task(api, "/api/backup", body), 502, "SAAS_ERROR")
    [error] = task_record(place, body)["errors"]
    assert error["description"] == (
        "GET /buckets/{{ ctx.bucket | urlquote }}/collections/absent: the SaaS answered HTTP 404"
    )

    rule = [{"status": [404], "action": "ignore"}]
    absent = ABSENT | {"request": ABSENT["request"] | {"responses": rule}}
    ignoring = kinto_variant(tmp_path / "ignoring", bucket_steps=[absent])
    place = area.place("ignoring")
    with engine(ignoring, area, None) as api:
        body = backup_body(api, source.url, place)
        assert_done(run_task(api, "/api/backup", body))
    paths = [entry["path"] for entry in place.manifest()["objects"]]
    assert f"{BUCKET}/bucket.json.zst" in paths
    assert f"{BUCKET}/absent.json.zst" not in paths


# --------------------------------------------------------------------------- a whole backup


def test_a_backup_cures_a_passing_503_and_names_the_request_a_lasting_one_gave_up_on(
    kinto_module: Definition, proxy: FaultProxy, storage_area: Callable[[str], Backend]
) -> None:
    area = storage_area("local")
    place = area.place("backup")
    clock = FakeClock()
    trail: list[Any] = []
    with engine(kinto_module, area, clock) as api:
        body = backup_body(api, proxy.url, place)
        proxy.inject(Fault("status", status=503), r"/collections/c00/records(\?|$)", times=2)
        proxy.inject(Fault("status", status=503), r"/collections/c01/records(\?|$)", times=None)
        result = run_task(api, "/api/backup", body, trail=trail)

    description = assert_error(result, 502, "SAAS_ERROR")
    assert description.startswith("the backup is incomplete: 1 required part(s) failed")
    [error] = task_record(place, body)["errors"]
    # named by its mapped name and type, as the listing gave them
    assert (error["resourceType"], error["resource"]) == ("collection", "c01")
    assert error["description"] == (
        "GET /buckets/{{ ctx.bucket | urlquote }}/collections/{{ ctx.collection | urlquote }}"
        "/records: the SaaS answered HTTP 503 (gave up after 3 attempts)"
    )
    assert faults(proxy).count("503") == 2 + 3
    assert len(clock.slept) == 2 + 2
    # every answer on the way was a task's state or this SaaS error, never a 500
    assert {answer.get("error", {}).get("code") for answer in trail} <= {None, "SAAS_ERROR"}


THROTTLED = "throttled"  # a bucket of its own, 2,000 records, read one request per record
ONE_RECORD = r"/collections/c00/records/rec-throttled-00-00007$"


def test_a_backup_reading_each_record_finishes_complete_through_429s_on_a_tenth_of_requests(
    source: servers.KintoServer,
    kinto_module: Definition,
    proxy: FaultProxy,
    storage_area: Callable[[str], Backend],
) -> None:
    shape = Shape({THROTTLED: [1000, 1000]}, {})
    seed(source, shape)
    area = storage_area("local")
    place = area.place("throttled")
    clock = FakeClock()
    with engine(kinto_module, area, clock) as api:
        body = backup_body(api, proxy.url, place, THROTTLED)
        proxy.clear()
        proxy.inject(TOO_MANY, ONE_RECORD, times=4)  # 4 in a row: past 3 attempts by itself
        proxy.inject(TOO_MANY, f"/buckets/{THROTTLED}/", times=None, share=0.1)
        assert_done(run_task(api, "/api/backup", body, timeout=600))

    objects = place.manifest()["objects"]
    assert sum(entry["records"] for entry in objects if "records.jsonl" in entry["path"]) == 2000
    got = faults(proxy)
    assert 0.07 * len(got) < got.count("429") < 0.13 * len(got)
    assert clock.slept == [1.0] * got.count("429")  # each waited out as asked, on the fake clock


# --------------------------------------------------------------------------- rate limit


def test_the_rate_limit_spaces_requests_out_on_the_wall_clock(
    proxy: FaultProxy, tmp_path: Path
) -> None:
    # the one wall-clock test here: 5 requests at once, then one every 0.2 s, so 15 requests
    # span (15 - 5) / 5 = 2 s
    definition = kinto_variant(tmp_path / "module", connection={"rateLimit": 5})

    answers = send(definition, proxy, FakeClock(), *[BUCKETS] * 15)

    assert [answer.status for answer in answers] == [200] * 15
    times = [request.at for request in proxy.requests]
    assert times[-1] - times[0] >= 1.7


class _Waits:
    """A clock that records the waits asked of it instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def now(self) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def _policy(attempts: int) -> Any:
    from engine.saas.resilience import Policy

    backoff = model.Backoff(initial=1.0, max=8.0, multiplier=2.0, jitter=False)
    retry = model.Retry(attempts, (503,), ("connect",), backoff, 60.0, 60.0, False)
    return Policy(retry)


@pytest.mark.parametrize(
    ("failures", "attempts", "tries", "waits", "outcome"),
    [
        (0, 3, 1, [], "answer"),  # the first try's own path: no wait, no second try
        (1, 3, 2, [5.0], "answer"),  # a first failure is judged as tenacity's first try
        (2, 3, 3, [5.0, 5.0], "answer"),
        (3, 3, 3, [5.0, 5.0], "gave up after 3 attempts"),
        (1, 1, 1, [], "busy$"),  # one attempt allowed: a first failure is final
    ],
)
def test_the_first_try_and_the_retries_after_it_count_and_wait_as_one_policy(
    failures: int, attempts: int, tries: int, waits: list[float], outcome: str
):
    from engine.errors import Retryable

    calls: list[int] = []

    async def attempt() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise Retryable("busy", kind="503", retry_after=5.0)
        return "answer"

    clock = _Waits()

    async def run() -> str:
        result: str = await _policy(attempts).run("GET", attempt, clock)
        return result

    if outcome == "answer":
        assert asyncio.run(run()) == "answer"
    else:
        with pytest.raises(SaasError, match=outcome):
            asyncio.run(run())
    assert len(calls) == tries and clock.waits == waits
