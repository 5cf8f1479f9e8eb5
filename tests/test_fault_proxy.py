"""The fault proxy (tests/fault_proxy.py) forwards faithfully to a real upstream, keeps
pagination behind it, and gives each scripted fault as an HTTP client really sees it."""

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from scripts import servers
from tests.fault_proxy import Fault, FaultProxy, proxying
from tests.paged_server import PagedServer, closed_port_url, serve

CONNECTION_LOST = (httpx.RemoteProtocolError, httpx.ReadError)


@pytest.fixture(scope="module")
def upstream() -> Iterator[PagedServer]:
    with serve(items=25, page_size=10) as server:
        yield server


@pytest.fixture
def proxy(upstream: PagedServer) -> Iterator[FaultProxy]:
    upstream.clear()
    with proxying(upstream.url) as running:
        yield running


@pytest.fixture
def client(proxy: FaultProxy) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, trust_env=False, timeout=10) as through_proxy:
        yield through_proxy


def statuses(proxy: FaultProxy) -> list[int | None]:
    """The status of the fault each recorded request got (None: forwarded as it was)."""
    return [r.fault.status if r.fault else None for r in proxy.requests]


def test_a_request_reaches_the_upstream_as_sent_and_its_answer_comes_back(
    upstream: PagedServer, proxy: FaultProxy, client: httpx.Client
):
    headers = {"X-Custom": "yes", "Content-Type": "application/json"}
    answer = client.post("/echo/x?a=1&b=two", content=b'{"k": 1}', headers=headers)
    assert answer.status_code == 200
    assert answer.json() == {"items": [], "method": "POST"}
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["content-length"] == str(len(answer.content))

    [received] = upstream.received("/echo/x")
    assert (received.method, received.query, received.body) == (
        "POST",
        {"a": "1", "b": "two"},
        b'{"k": 1}',
    )
    assert received.headers["x-custom"] == "yes"
    assert received.headers["host"] == upstream.origin.removeprefix("http://")
    [seen] = proxy.requests
    assert (seen.method, seen.path, seen.query, seen.fault) == (
        "POST",
        "/api/echo/x",
        "a=1&b=two",
        None,
    )
    assert seen.headers["x-custom"] == "yes"


@pytest.mark.parametrize("method", ["HEAD", "PUT", "DELETE", "PROPFIND"])
def test_any_method_is_forwarded(upstream: PagedServer, client: httpx.Client, method: str):
    answer = client.request(method, "/echo")
    assert answer.status_code == 200
    assert [r.method for r in upstream.received("/echo")] == [method]
    if method == "HEAD":
        assert answer.content == b""
        assert int(answer.headers["content-length"]) > 0  # the GET's length, as HEAD says


def test_upstream_urls_in_answer_headers_point_back_at_the_proxy(
    upstream: PagedServer, proxy: FaultProxy, client: httpx.Client
):
    link = client.get("/link").headers["Link"]
    assert link.startswith(f"<{proxy.url}/link?page=2>")
    assert upstream.origin not in link
    next_page = client.get("/header").headers["Next-Page"]
    assert next_page.startswith(f"{proxy.url}/header?")
    assert client.get(next_page).status_code == 200
    assert len(proxy.requests) == 3


def test_kinto_pagination_keeps_going_through_the_proxy(kinto: servers.KintoServer):
    prefix = f"fp{uuid.uuid4().hex[:8]}"
    servers.seed_kinto(
        kinto.url, kinto.admin, buckets=1, collections=1, groups=0, records=25, prefix=prefix
    )
    path = f"/buckets/{prefix}b000/collections/c000/records"
    with (
        proxying(kinto.url) as proxy,
        httpx.Client(base_url=proxy.url, auth=kinto.admin, trust_env=False) as client,
    ):
        assert client.get(path).headers["Next-Page"].startswith(f"{proxy.url}{path}?")
        pages = list(servers.kinto_list(client, path))
    assert [len(page) for page in pages] == [10, 10, 5]
    assert [r.path for r in proxy.requests] == [f"/v1{path}"] * 4
    assert all(r.headers["authorization"].startswith("Basic ") for r in proxy.requests)


@pytest.mark.parametrize(
    ("status", "retry_after"), [(429, "2"), (503, "Wed, 21 Oct 2026 07:28:00 GMT")]
)
def test_a_status_fault_answers_without_the_upstream_then_is_used_up(
    upstream: PagedServer, proxy: FaultProxy, client: httpx.Client, status: int, retry_after: str
):
    body = b'{"error": "slow down"}'
    proxy.inject(
        Fault("status", status=status, headers={"Retry-After": retry_after}, body=body), "/all"
    )
    refused = client.get("/all")
    assert refused.status_code == status
    assert refused.headers["Retry-After"] == retry_after
    assert refused.json() == {"error": "slow down"}
    assert upstream.received("/all") == []
    assert client.get("/all").status_code == 200
    assert len(upstream.received("/all")) == 1
    assert statuses(proxy) == [status, None]


def test_a_delay_holds_the_answer_then_forwards_it(proxy: FaultProxy, client: httpx.Client):
    proxy.inject(Fault("delay", seconds=0.3))
    started = time.monotonic()
    answer = client.get("/all")
    assert time.monotonic() - started >= 0.3
    assert answer.status_code == 200
    assert len(answer.json()["items"]) == 25
    assert proxy.requests[0].fault == Fault("delay", seconds=0.3)


def test_stopping_the_proxy_cuts_a_held_delay_short(upstream: PagedServer):
    upstream.clear()
    outcome: list[BaseException | httpx.Response] = []
    proxy = FaultProxy(upstream.url).start()
    proxy.inject(Fault("delay", seconds=60))

    def call() -> None:
        try:
            outcome.append(httpx.get(f"{proxy.url}/all", timeout=30, trust_env=False))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    proxy.wait_for_requests(1)
    started = time.monotonic()
    proxy.stop()
    caller.join(10)
    assert time.monotonic() - started < 3
    assert len(outcome) == 1 and isinstance(outcome[0], CONNECTION_LOST)
    assert upstream.received("/all") == []


def test_a_drop_closes_the_connection_without_any_answer(
    upstream: PagedServer, proxy: FaultProxy, client: httpx.Client
):
    proxy.inject(Fault("drop"), "/all", times=2)
    with pytest.raises(CONNECTION_LOST):
        client.get("/all")
    with socket.create_connection(("127.0.0.1", int(proxy.origin.rsplit(":", 1)[1]))) as raw:
        raw.sendall(b"GET /api/all HTTP/1.1\r\nHost: proxy\r\n\r\n")
        raw.settimeout(10)
        assert raw.recv(1024) == b""  # closed, not a single byte of answer
    assert client.get("/all").status_code == 200  # used up; the client's pool recovers
    assert [r.fault.kind if r.fault else None for r in proxy.requests] == ["drop", "drop", None]
    assert len(upstream.received("/all")) == 1


def test_a_truncated_answer_keeps_its_status_and_carries_half_the_body(
    proxy: FaultProxy, client: httpx.Client
):
    whole = client.get("/all").content
    proxy.inject(Fault("truncate"), "/all")
    cut = client.get("/all")
    assert cut.status_code == 200
    assert cut.content == whole[: len(whole) // 2]
    assert cut.headers["content-length"] == str(len(whole) // 2)
    with pytest.raises(json.JSONDecodeError):
        cut.json()


def test_a_body_fault_replaces_the_upstreams_body(proxy: FaultProxy, client: httpx.Client):
    proxy.inject(Fault("body", body=b"<html>Bad Gateway</html>"), "/all")
    answer = client.get("/all")
    assert (answer.status_code, answer.content) == (200, b"<html>Bad Gateway</html>")
    assert answer.headers["content-type"] == "application/json"  # the upstream's, now a lie


def test_faults_match_method_and_path_and_apply_in_the_order_injected(
    proxy: FaultProxy, client: httpx.Client
):
    proxy.inject(Fault("status", status=500), r"^/api/echo$", method="post", times=2)
    proxy.inject(Fault("status", status=503), r"/echo")
    proxy.inject(Fault("status", status=504), r"/echo")
    calls = [("GET", "/echo"), ("POST", "/echo"), ("GET", "/all"), ("POST", "/echo")]
    calls += [("POST", "/echo"), ("POST", "/echo"), ("PUT", "/echo/deeper")]
    answers = [client.request(method, path).status_code for method, path in calls]
    assert answers == [503, 500, 200, 500, 504, 200, 200]
    assert statuses(proxy) == [503, 500, None, 500, 504, None, None]


def test_a_fault_can_match_the_query_too(proxy: FaultProxy, client: httpx.Client):
    proxy.inject(Fault("status", status=500), r"/header\?.*_token=o10")
    first = client.get("/header")
    assert client.get(first.headers["Next-Page"]).status_code == 500
    assert client.get(first.headers["Next-Page"]).status_code == 200


def test_a_fault_for_every_match_lasts_until_cleared(proxy: FaultProxy, client: httpx.Client):
    proxy.inject(Fault("status", status=503), times=None)
    assert [client.get("/all").status_code for _ in range(3)] == [503, 503, 503]
    proxy.clear()
    assert proxy.requests == []
    assert client.get("/all").status_code == 200


def test_a_fault_with_a_share_takes_about_that_share_of_the_matches_and_leaves_the_rest(
    proxy: FaultProxy, client: httpx.Client
):
    proxy.inject(Fault("status", status=429), "/all", times=None, share=0.1)
    answers = [client.get("/all").status_code for _ in range(200)]
    assert client.get("/echo").status_code == 200
    assert set(answers) == {200, 429}
    assert 10 <= answers.count(429) <= 30  # seeded: the same picks on every run
    assert statuses(proxy).count(429) == answers.count(429)


def test_requests_are_recorded_in_order_with_monotonic_arrival_times(
    proxy: FaultProxy, client: httpx.Client
):
    proxy.inject(Fault("delay", seconds=0.2), "/all")
    before = time.monotonic()
    client.get("/all")
    client.get("/echo")
    after = time.monotonic()
    first, second = proxy.requests
    assert (first.path, second.path) == ("/api/all", "/api/echo")
    assert before <= first.at and first.at + 0.2 <= second.at <= after
    assert proxy.wait_for_requests(2) == [first, second]


def test_an_unreachable_upstream_answers_502():
    with proxying(closed_port_url()) as proxy:
        answer = httpx.get(f"{proxy.url}/all", trust_env=False)
    assert answer.status_code == 502
    assert proxy.requests[0].fault is None


def test_unknown_fault_kinds_and_non_positive_times_are_refused(proxy: FaultProxy):
    with pytest.raises(ValueError, match="unknown fault kind 'explode'"):
        Fault("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times"):
        proxy.inject(Fault("drop"), times=0)
    with pytest.raises(ValueError, match="share"):
        proxy.inject(Fault("drop"), share=0)
