"""The SaaS client against a real server: credentials, rendered requests, origin checks, and
failures translated into SaasError/SaasAuthError whose messages hold no secret and no URL."""

import asyncio
import base64
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from httpcore._async.http11 import AsyncHTTP11Connection

from engine.errors import SaasAuthError, SaasError, TemplateError
from engine.language import model
from engine.language.loader import build
from engine.language.schema import issues, module_schema
from engine.saas.client import READ_SIZE, Answer, Outbound, Saas, merge_headers, new_pool
from engine.saas.gate import Gate
from engine.saas.resilience import Policy
from tests.paged_server import PagedServer, closed_port_url, serve

PASSWORD = "pa55-w0rd/with?odd&chars"
SETTINGS = {"url": "", "user": "alice", "password_secret": PASSWORD, "tenant": "acme"}
BASIC = {
    "kind": "basic",
    "username": "{{ settings.user }}",
    "password": "{{ settings.password_secret }}",
}


@pytest.fixture(scope="module")
def server() -> Iterator[PagedServer]:
    with serve(items=3) as running:
        yield running


@pytest.fixture
def paged(server: PagedServer) -> PagedServer:
    server.clear()
    return server


def connection(**changes: Any) -> dict[str, Any]:
    """A connection to the test server with basic credentials, short timeouts, and changes."""
    return {
        "baseUrl": "{{ settings.url }}",
        "auth": BASIC,
        "timeouts": {"connect": 2, "read": 0.3},
    } | changes


def definition(conn: dict[str, Any]) -> Any:
    raw = {
        "module": {"id": "client-test", "name": "Client test", "version": "1.0.0"},
        "capabilities": {"auth": [], "features": [], "storage": ["STORAGE_SERVICE"]},
        "connection": conn,
        "resources": {
            "thing": {"list": {"request": {"path": "/all"}}, "resource": {"name": "x"}},
        },
    }
    assert issues(module_schema(), raw) == []
    return build(raw, Path())


async def _send(
    conn: dict[str, Any], settings: dict[str, Any], spec: dict[str, Any], params: Any
) -> Answer:
    async with new_pool() as pool:
        saas = Saas(Outbound(pool, Gate(2)), definition(conn), settings)
        request = model.build(model.Request, spec)
        return await saas.send(request, {"settings": saas.settings}, place="/test", params=params)


def send(
    base: str,
    spec: dict[str, Any],
    *,
    conn: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> Answer:
    """Sends one request spec through a fresh connection to ``base``."""
    chosen = (settings or SETTINGS) | {"url": base}
    return asyncio.run(_send(conn or connection(), chosen, spec, params))


def saas_for(base: str, conn: dict[str, Any] | None = None) -> Saas:
    """A connection to ``base`` for checks that send nothing (its pool is already closed)."""
    pool = new_pool()
    asyncio.run(pool.aclose())
    return Saas(
        Outbound(pool, Gate(1)),
        definition(conn or connection()),
        SETTINGS | {"url": base},
    )


def last(server: PagedServer) -> Any:
    [received] = server.received()
    return received


# ---------------------------------------------------------------------------- downloads


def test_a_download_streams_the_whole_answer_in_pieces_larger_than_httpcores_default(
    paged: PagedServer,
):
    size = 8 << 20
    pieces: list[int] = []

    async def download() -> int:
        async with new_pool() as pool:
            settings = SETTINGS | {"url": paged.url}
            saas = Saas(Outbound(pool, Gate(2)), definition(connection()), settings)

            async def sink(chunk: bytes) -> None:
                pieces.append(len(chunk))

            spec = model.build(model.Request, {"path": "/blob", "query": {"size": str(size)}})
            got = await saas.download(spec, {"settings": saas.settings}, sink, place="/test")
            return got.size

    assert asyncio.run(download()) == sum(pieces) == size
    assert 64 << 10 < max(pieces) <= READ_SIZE  # httpcore's own reads are 64 KiB
    assert "self.READ_NUM_BYTES" in inspect.getsource(AsyncHTTP11Connection._receive_event)


# ---------------------------------------------------------------------------- credentials


def test_basic_credentials_reach_the_server(paged: PagedServer):
    send(paged.url, {"path": "/echo"})

    expected = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert last(paged).headers["authorization"] == f"Basic {expected}"


def test_bearer_credentials_reach_the_server(paged: PagedServer):
    conn = connection(auth={"kind": "bearer", "token": "{{ settings.password_secret }}"})
    send(paged.url, {"path": "/echo"}, conn=conn)

    assert last(paged).headers["authorization"] == f"Bearer {PASSWORD}"


@pytest.mark.parametrize("auth", [{"kind": "none"}, None], ids=["none", "absent"])
def test_without_credentials_no_authorization_header_is_sent(
    paged: PagedServer, auth: dict[str, Any] | None
):
    conn = connection(auth=auth) if auth else {k: v for k, v in connection().items() if k != "auth"}
    send(paged.url, {"path": "/echo"}, conn=conn)

    assert "authorization" not in last(paged).headers


def test_credentials_are_sent_only_to_the_base_urls_host(paged: PagedServer):
    send(paged.url, {"path": "/echo"})

    assert last(paged).headers["host"] == f"127.0.0.1:{paged.port}"
    assert last(paged).path == "/api/echo"


# ---------------------------------------------------------------------------- rendering


def test_connection_and_request_headers_render_from_their_templates(paged: PagedServer):
    conn = connection(headers={"X-Tenant": "{{ settings.tenant }}", "Accept": "application/json"})
    spec = {"path": "/echo", "headers": {"X-Request": "for-{{ settings.tenant }}"}}
    send(paged.url, spec, conn=conn)

    headers = last(paged).headers
    assert headers["x-tenant"] == "acme"
    assert headers["accept"] == "application/json"
    assert headers["x-request"] == "for-acme"


def test_a_request_header_replaces_a_connection_header_whatever_its_case(paged: PagedServer):
    conn = connection(headers={"Accept": "application/json"})
    send(paged.url, {"path": "/echo", "headers": {"accept": "text/csv"}}, conn=conn)

    assert last(paged).headers["accept"] == "text/csv"


def test_the_path_renders_from_its_template(paged: PagedServer):
    send(paged.url, {"path": "/echo/{{ settings.tenant }}/items"})

    assert last(paged).path == "/api/echo/acme/items"


def test_query_templates_render_and_keep_their_native_types(paged: PagedServer):
    spec = {
        "path": "/echo",
        "query": {
            "tenant": "{{ settings.tenant }}",
            "limit": 25,
            "deep": True,
            "skip": "{{ none }}",
            "q": "name = 'a&b'",
        },
    }
    send(paged.url, spec)

    assert last(paged).query == {
        "tenant": "acme",
        "limit": "25",
        "deep": "true",
        "q": "name = 'a&b'",
    }


def test_pagination_parameters_override_the_requests_own_query(paged: PagedServer):
    send(paged.url, {"path": "/echo", "query": {"page": 1, "size": 5}}, params={"page": 3})

    assert last(paged).query == {"page": "3", "size": "5"}


def test_a_body_mapping_is_sent_as_json_with_its_native_types(paged: PagedServer):
    spec = {
        "method": "POST",
        "path": "/echo",
        "body": {
            "name": "{{ settings.tenant }}",
            "size": "{{ 2 * 21 }}",
            "tags": ["a", "{{ settings.user }}"],
        },
    }
    send(paged.url, spec)

    received = last(paged)
    assert received.method == "POST"
    assert received.headers["content-type"] == "application/json"
    assert received.json() == {"name": "acme", "size": 42, "tags": ["a", "alice"]}


def test_a_string_body_is_sent_as_text(paged: PagedServer):
    spec = {
        "method": "PUT",
        "path": "/echo",
        "body": "BEGIN:VCALENDAR\nX-TENANT:{{ settings.tenant }}\nEND:VCALENDAR",
    }
    send(paged.url, spec)

    received = last(paged)
    assert received.body == b"BEGIN:VCALENDAR\nX-TENANT:acme\nEND:VCALENDAR"
    assert received.headers["content-type"] == "text/plain; charset=utf-8"


def test_a_request_content_type_wins_over_the_bodys_default(paged: PagedServer):
    spec = {
        "method": "PUT",
        "path": "/echo",
        "headers": {"content-type": "text/calendar"},
        "body": "BEGIN:VCALENDAR",
    }
    send(paged.url, spec)

    assert last(paged).headers["content-type"] == "text/calendar"


def test_a_body_that_renders_to_something_json_cannot_hold_is_a_template_error(
    paged: PagedServer,
):
    spec = {"method": "POST", "path": "/echo", "body": {"size": "{{ settings.ratio | float }}"}}

    with pytest.raises(TemplateError, match=r"^/test/body: the body did not render to plain JSON$"):
        send(paged.url, spec, settings=SETTINGS | {"ratio": "nan"})
    assert paged.received() == []


@pytest.mark.parametrize("method", ["PROPFIND", "MKCALENDAR", "DELETE"])
def test_any_http_method_token_is_sent_as_given(paged: PagedServer, method: str):
    send(paged.url, {"method": method, "path": "/echo"})

    assert last(paged).method == method


def test_an_answer_knows_its_status_and_the_url_it_came_from(paged: PagedServer):
    answer = send(paged.url, {"path": "/link", "query": {"page": 2}})

    assert answer.status == 200
    assert answer.url == f"{paged.url}/link?page=2"
    assert answer.json()["items"] == []


@pytest.mark.parametrize(
    ("link", "links"),
    [
        (
            '<https://s/p2>; rel="next", <https://s/p1>; rel="first"',
            {"next": "https://s/p2", "first": "https://s/p1"},
        ),
        ('<https://s/p9>; rel="next last"', {"next": "https://s/p9", "last": "https://s/p9"}),
        ('<https://s/p2>; rel="NEXT"', {"next": "https://s/p2"}),
        ('<https://s/p2>; title="no relation"', {}),
    ],
    ids=["two links", "two relations", "upper case", "no rel"],
)
def test_an_answer_lists_its_link_header_targets_by_relation(
    paged: PagedServer, link: str, links: dict[str, str]
):
    answer = send(paged.url, {"path": "/echo", "query": {"link": link}})

    assert answer.links == links


# ---------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        ("/fail/401", SaasAuthError, "GET /fail/401: the SaaS refused the credentials (HTTP 401)"),
        ("/fail/403", SaasAuthError, "GET /fail/403: the SaaS refused the credentials (HTTP 403)"),
        ("/fail/500", SaasError, "GET /fail/500: the SaaS answered HTTP 500"),
        (
            "/redirect",
            SaasError,
            "GET /redirect: the SaaS answered HTTP 302 (redirects are not followed)",
        ),
        (
            "/fail/slow",
            SaasError,
            "GET /fail/slow: the SaaS did not answer in time (gave up after 3 attempts)",
        ),
    ],
)
def test_a_failing_answer_becomes_a_saas_error_naming_the_request(
    paged: PagedServer, path: str, error: type[SaasError], message: str
):
    with pytest.raises(error) as raised:
        send(paged.url, {"path": path})
    assert str(raised.value) == message
    assert type(raised.value) is error


def test_a_refused_connection_becomes_cannot_reach_the_saas():
    with pytest.raises(SaasError) as raised:
        send(closed_port_url(), {"path": "/all"})
    assert (
        str(raised.value)
        == "GET /all: cannot reach the SaaS (connection failed) (gave up after 3 attempts)"
    )


@pytest.mark.parametrize("how", ["not-json", "nan"])
def test_an_answer_that_is_not_json_says_so_when_read(paged: PagedServer, how: str):
    answer = send(paged.url, {"path": f"/fail/{how}"})

    with pytest.raises(SaasError, match=f"^GET /fail/{how}: the answer is not JSON$"):
        answer.json()


def test_deeply_nested_json_is_not_json_rather_than_a_crash():
    answer = Answer("GET /x", 200, {}, b"[" * 100_000 + b"]" * 100_000)

    with pytest.raises(SaasError, match="the answer is not JSON"):
        answer.json()


# ---------------------------------------------------------------------------- origins


@pytest.mark.parametrize(
    "base",
    [
        "ftp://saas.example/api",
        "file:///etc",
        "saas.example/api",
        "{{ settings.tenant }}",
        "http:///api",
        "http://saas.example:port/api",
    ],
)
def test_a_base_url_that_does_not_render_to_an_http_url_is_refused(base: str):
    with pytest.raises(SaasError, match=r"^connection\.baseUrl did not render to a"):
        saas_for("unused", connection(baseUrl=base))


def test_a_base_url_with_a_query_string_is_refused():
    with pytest.raises(SaasError, match="must not carry a query string or fragment"):
        saas_for("https://saas.example/api?key=abc")


@pytest.mark.parametrize(
    ("url", "resolved"),
    [
        ("https://saas.example/api/items?page=2", "https://saas.example/api/items?page=2"),
        ("https://SAAS.example:443/other", "https://SAAS.example:443/other"),
        ("/api/items?page=2", "https://saas.example/api/items?page=2"),
        ("items?page=2", "https://saas.example/api/items?page=2"),
    ],
)
def test_a_next_page_url_at_the_base_urls_origin_is_followed(url: str, resolved: str):
    assert saas_for("https://saas.example/api").resolve(url, "GET /items") == resolved


@pytest.mark.parametrize(
    "url",
    [
        "http://saas.example/api/items",
        "https://saas.example:8443/api/items",
        "https://evil.example/api/items",
        "//evil.example/api/items",
        "https://saas.example@evil.example/api/items",
        "https://saas.example.evil.example/api/items",
    ],
)
def test_a_next_page_url_at_another_origin_is_refused(url: str):
    with pytest.raises(SaasError, match=r"^GET /items: refused: a next-page URL leaves the origin"):
        saas_for("https://saas.example/api").resolve(url, "GET /items")


def test_a_request_path_that_renders_to_another_host_is_refused_before_sending(
    paged: PagedServer,
):
    settings = SETTINGS | {"tenant": "@localhost"}
    spec = {"path": "{{ settings.tenant }}:{{ 1 }}/api/echo"}
    label = re.escape("GET {{ settings.tenant }}:{{ 1 }}/api/echo: refused")
    with pytest.raises(SaasError, match=f"^{label}"):
        send(paged.origin, spec, settings=settings)
    assert paged.received() == []


# ---------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    "path",
    ["/fail/401", "/fail/500", "/fail/slow", "/redirect", "/fail/not-json"],
)
def test_no_failure_message_holds_the_password_or_the_full_url(paged: PagedServer, path: str):
    spec = {"path": path, "query": {"key": "{{ settings.password_secret }}"}}
    with pytest.raises(SaasError) as raised:
        send(paged.url, spec).json()

    message = str(raised.value)
    assert PASSWORD not in message
    assert "key=" not in message
    assert "127.0.0.1" not in message
    assert message.startswith(f"GET {path}:")


def test_an_unreachable_saas_message_holds_neither_the_password_nor_the_url():
    spec = {"path": "/all", "query": {"key": "{{ settings.password_secret }}"}}
    with pytest.raises(SaasError) as raised:
        send(closed_port_url(), spec)

    assert PASSWORD not in str(raised.value)
    assert "127.0.0.1" not in str(raised.value)


@pytest.mark.parametrize("token", ["t\u00f6ken-secret", "token\r\nX-Injected: 1"])
def test_a_header_value_http_cannot_carry_is_refused_without_echoing_it(
    paged: PagedServer, token: str
):
    conn = connection(auth={"kind": "bearer", "token": "{{ settings.password_secret }}"})
    with pytest.raises(SaasError) as raised:
        send(
            paged.url, {"path": "/echo"}, conn=conn, settings=SETTINGS | {"password_secret": token}
        )

    assert str(raised.value) == (
        "GET /echo: the value of header 'Authorization' holds a character HTTP cannot carry"
        " (non-ASCII or a line break)"
    )
    assert paged.received() == []


def test_the_base_url_refusal_does_not_echo_the_url():
    with pytest.raises(SaasError) as raised:
        saas_for(f"ftp://alice:{PASSWORD}@saas.example/api")
    assert PASSWORD not in str(raised.value)


# ---------------------------------------------------------------------------- helpers


def test_headers_merge_case_insensitively_with_later_layers_winning():
    merged = merge_headers({"Accept": "a", "X-One": 1}, {"accept": "b"}, {"X-Two": "2"})

    assert merged == {"accept": "b", "X-One": "1", "X-Two": "2"}


def test_a_pool_is_an_async_client_that_does_not_follow_redirects():
    pool = new_pool(max_connections=3)
    try:
        assert pool.follow_redirects is False
    finally:
        asyncio.run(pool.aclose())


def test_a_connection_without_retry_gets_the_schemas_retry_defaults() -> None:
    retry = module_schema()["$defs"]["connection"]["properties"]["retry"]["properties"]
    backoff = retry["backoff"]["properties"]
    policy = Policy(definition(connection()).connection.retry)
    assert retry["attempts"]["default"] == policy.retry.attempts
    assert tuple(retry["statuses"]["default"]) == policy.retry.statuses
    assert tuple(retry["errors"]["default"]) == policy.retry.errors
    assert retry["maxWait"]["default"] == policy.retry.max_wait
    assert retry["throttleBudget"]["default"] == policy.retry.throttle_budget
    assert retry["unsafe"]["default"] is policy.retry.unsafe is False
    waits = policy.retry.backoff
    assert [backoff[key]["default"] for key in ("initial", "max", "multiplier", "jitter")] == [
        waits.initial,
        waits.max,
        waits.multiplier,
        waits.jitter,
    ]
