"""Isolation between the tenants of one engine process: no cookie outlives its connection (one
API call or task), a session login's cookie stays in the connection that logged in, and cached
tokens are shared only by callers with the very same credentials, against real servers (the
cookie SaaS of tests/cookie_server.py, the test OAuth2 provider)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from engine import redaction
from engine.api.app import create_app
from engine.clock import SystemClock
from engine.errors import SaasAuthError
from engine.language import model
from engine.language.definition import Definition
from engine.language.loader import build
from engine.language.schema import issues, module_schema
from engine.saas.client import Outbound, Saas, outbound
from engine.saas.tokens import Token, TokenCache
from engine.settings import Settings
from scripts import servers
from tests.cookie_server import CookieSaas, serve
from tests.taskflow import post

pytestmark = pytest.mark.e2e

GOOD = "Good-Bearer-Token-7731"
WRONG = "Wrong-Bearer-Token-0042"
VALIDATE = "/api/schemas/auth/validate"
BEARER = {"kind": "bearer", "token": "{{ settings.token_secret }}"}
LOGIN = {"user": "{{ settings.user }}", "password": "{{ settings.password_secret }}"}


def session(mode: str) -> dict[str, Any]:
    """A session login at /<mode>/login (mode: session or plain)."""
    login = {"method": "POST", "path": f"/{mode}/login", "body": LOGIN}
    return {"kind": "session", "login": login, "token": "token"}


def module(auth: dict[str, Any], mode: str) -> Definition:
    """A module of the cookie SaaS: its things under /<mode>, checked at /<mode>/me."""
    raw = {
        "module": {"id": f"cookies-{mode}", "name": "Cookie SaaS", "version": "1.0.0"},
        "capabilities": {"auth": [], "features": [], "storage": ["STORAGE_SERVICE"]},
        "auth": {"check": {"request": {"path": f"/{mode}/me"}, "expect": "user"}},
        "connection": {"baseUrl": "{{ settings.url }}", "auth": auth},
        "resources": {
            "thing": {
                "list": {"request": {"path": f"/{mode}/things"}, "records": "items"},
                "resource": {"id": "{{ item.id }}", "name": "{{ item.name }}"},
            },
        },
    }
    assert issues(module_schema(), raw) == []
    return build(raw, Path())


@pytest.fixture
def saas() -> Iterator[CookieSaas]:
    with serve(GOOD) as running:
        yield running


@pytest.fixture
def other_saas() -> Iterator[CookieSaas]:
    with serve(GOOD) as running:
        yield running


def engine(definition: Definition) -> TestClient:
    return TestClient(create_app(definition, Settings()), raise_server_exceptions=False)


def login_settings(saas: CookieSaas) -> dict[str, Any]:
    return {"url": saas.url, "user": saas.user, "password_secret": saas.password}


def connect(shared: Outbound, definition: Definition, saas: CookieSaas) -> Saas:
    return Saas(shared, definition, login_settings(saas))


async def things(connection: Saas, mode: str) -> list[str]:
    request = model.build(model.Request, {"path": f"/{mode}/things"})
    answer = await connection.send(request, {}, place="/test")
    return [thing["id"] for thing in answer.json()["items"]]


# --------------------------------------------------------------------------- cookies


def test_a_wrong_token_after_a_good_one_is_refused_though_the_saas_set_a_login_cookie(
    saas: CookieSaas,
) -> None:
    good = {"auth": {"settings": {"url": saas.url, "token_secret": GOOD}}}
    wrong = {"auth": {"settings": {"url": saas.url, "token_secret": WRONG}}}
    with engine(module(BEARER, "sticky")) as api:
        assert post(api, VALIDATE, good) == (200, {"valid": True, "errors": []})
        assert saas.sids  # the SaaS did hand out its cookie

        status, validated = post(api, VALIDATE, wrong)
        assert status == 200, validated
        assert validated["valid"] is False
        assert [error["code"] for error in validated["errors"]] == ["SAAS_AUTH_FAILED"]

        status, roots = post(api, "/api/roots", wrong)
        assert status == 502, roots
        assert roots["error"]["code"] == "SAAS_AUTH_FAILED"

        status, roots = post(api, "/api/roots", good)
        assert status == 200, roots
    assert len(roots["resources"]) == 3
    assert all(seen.cookies == {} for seen in saas.seen)  # no call sent another call's cookie


def test_a_session_whose_cookie_is_needed_works_within_its_connection_and_dies_with_it(
    saas: CookieSaas,
) -> None:
    definition = module(session("session"), "session")

    async def run() -> tuple[list[list[str]], list[str]]:
        async with outbound(definition) as shared:
            first = connect(shared, definition, saas)
            got = await asyncio.gather(*[things(first, "session") for _ in range(3)])
            second = connect(shared, definition, saas)
            return list(got), await things(second, "session")

    first, second = asyncio.run(run())

    assert first == [["thing-0", "thing-1", "thing-2"]] * 3
    assert second == first[0]
    assert saas.logins == 2  # one per connection: the second could not ride on the first's
    cookies = [seen.cookies.get("session") for seen in saas.seen if seen.path.endswith("things")]
    assert len(set(cookies[:3])) == 1 and cookies[3] not in cookies[:3]


def test_two_api_calls_with_a_cookie_session_each_log_in_and_list(saas: CookieSaas) -> None:
    body = {"auth": {"settings": login_settings(saas)}}
    with engine(module(session("session"), "session")) as api:
        answers = [post(api, "/api/roots", body) for _ in range(2)]

    for status, answer in answers:
        assert status == 200, answer
        assert [thing["id"] for thing in answer["resources"]] == ["thing-0", "thing-1", "thing-2"]
    assert saas.logins == 2
    logins = [seen for seen in saas.seen if seen.path.endswith("login")]
    assert all(seen.cookies == {} for seen in logins)


# --------------------------------------------------------------------------- token cache


def test_the_same_login_at_two_servers_never_shares_a_token(
    saas: CookieSaas, other_saas: CookieSaas
) -> None:
    definition = module(session("plain"), "plain")

    async def run() -> None:
        async with outbound(definition) as shared:
            for server in (saas, other_saas, saas, other_saas):
                assert await things(connect(shared, definition, server), "plain")

    asyncio.run(run())

    assert (saas.logins, other_saas.logins) == (1, 1)  # cached per server, shared by its calls
    for server in (saas, other_saas):
        sent = {seen.token for seen in server.seen if seen.token is not None}
        assert sent == server.tokens  # each server saw only its own token


def test_two_tenants_with_the_same_token_url_but_other_client_secrets_never_share_a_token(
    idp: servers.IdpServer,
) -> None:
    auth = {
        "kind": "oauth2ClientCredentials",
        "tokenUrl": "{{ settings.token_url }}",
        "clientId": "{{ settings.client_id }}",
        "clientSecret": "{{ settings.client_secret }}",
    }
    definition = module(auth, "plain")
    right = {"url": idp.url, "token_url": idp.token_url, "client_id": idp.client_id}

    async def run() -> Token:
        async with outbound(definition) as shared:
            tenant = Saas(shared, definition, right | {"client_secret": idp.client_secret})
            applied = await tenant.credential.apply()
            intruder = Saas(shared, definition, right | {"client_secret": "Not-The-Secret-99"})
            with pytest.raises(SaasAuthError, match="the token endpoint refused it"):
                await intruder.credential.apply()
            assert isinstance(applied.token, Token)
            return applied.token

    refused = idp.stats()["refused"]
    assert asyncio.run(run()).value
    assert idp.stats()["refused"] == refused + 1


def test_a_cached_token_is_masked_in_every_call_that_uses_it_not_only_the_first() -> None:
    cache = TokenCache(SystemClock())

    async def fetch(refresh: str | None) -> Token:
        return Token("Cached-Access-Token-5521")

    async def call() -> str:
        token = await cache.get("key", fetch)
        return redaction.scrub(f"sent {token.value}")

    async def run() -> list[str]:
        # each call in a task of its own, as requests are: a context of its own
        return [await asyncio.create_task(call()) for _ in range(2)]

    assert asyncio.run(run()) == ["sent ***", "sent ***"]
