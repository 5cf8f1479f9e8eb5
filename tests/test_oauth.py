"""OAuth2 end to end: the Kinto module signing in through the test identity provider
(scripts/idp) to a Kinto that trusts its tokens. Client credentials: validation, discovery on
one cached token, a backup and restore round trip, tokens expiring during a backup, token
endpoints that answer nonsense. Refresh tokens rotated by the provider during a backup, handed to
the platform on every answer (a failed task's too). Never a secret in an answer or a log."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from scripts import servers
from tests.fault_proxy import Fault, proxying
from tests.paged_server import closed_port_url
from tests.taskflow import (
    Backend,
    assert_done,
    assert_same,
    dump_buckets,
    new_uuid,
    post,
    root_ctxs,
    run_task,
)

pytestmark = pytest.mark.e2e

WRONG_SECRET = "Wrong-Client-Secret-4242"
CLIENT_SECRET = "idp-secret"  # the client secret of the idp and idp_factory fixtures
REFRESH_TOKEN = "Refresh-Token-From-Consent-5150"  # the first one the provider hands out
JWT_START = "eyJ0eXAiOiJKV1Qi"  # base64 of '{"typ":"JWT"': how the provider's tokens begin


class FreshToken(httpx.Auth):
    """Signs each request in as the provider's client with a token of its own (tokens may live
    only seconds), as the client the Kinto knows: what it creates is the client's."""

    def __init__(self, idp: servers.IdpServer) -> None:
        self.idp = idp

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        form = {"grant_type": "client_credentials"}
        auth = (self.idp.client_id, self.idp.client_secret)
        answer = httpx.post(self.idp.token_url, data=form, auth=auth, trust_env=False)
        answer.raise_for_status()
        request.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        yield request


def oauth(kinto: servers.KintoServer, idp: servers.IdpServer, **changes: str) -> dict[str, Any]:
    """The Kinto module's auth for idp's client (changes: other setting values)."""
    settings = {
        "server_url": kinto.url,
        "method": "oauth2",
        "token_url": idp.token_url,
        "client_id": idp.client_id,
        "client_secret": idp.client_secret,
    }
    return {"settings": settings | changes}


def seed_as_client(
    kinto: servers.KintoServer, idp: servers.IdpServer, *, collections: int, records: int
) -> str:
    """A new bucket, its collections, a group and records, created by idp's client (so the
    client may write them back); the admin account may read them. Its id."""
    prefix = f"oauth{uuid.uuid4().hex[:10]}"
    created = servers.seed_kinto(
        kinto.url,
        FreshToken(idp),
        buckets=1,
        collections=collections,
        groups=1,
        records=records,
        prefix=prefix,
    )
    [bucket] = created.buckets
    return bucket


def task_body(
    auth: dict[str, Any], storage: dict[str, Any], ctx: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """A task's start request, with a new taskUuid."""
    return {"auth": auth, "taskUuid": new_uuid(), "storage": storage, "ctx": ctx} | extra


def delete_as_client(kinto: servers.KintoServer, idp: servers.IdpServer, bucket: str) -> None:
    url = f"{kinto.url}/buckets/{bucket}"
    httpx.delete(url, auth=FreshToken(idp), trust_env=False).raise_for_status()


@pytest.fixture(autouse=True)
def no_secret_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test here logs at DEBUG, and no captured line shows a client secret, its Basic
    encoding, or an access token."""
    caplog.set_level(logging.DEBUG)
    yield
    records = caplog.get_records("setup") + caplog.get_records("call")
    logs = "".join(f"{record.getMessage()} {record.__dict__}" for record in records)
    assert records  # captured: the checks below are not vacuous
    secrets = [CLIENT_SECRET, WRONG_SECRET, REFRESH_TOKEN]
    basics = [base64.b64encode(f"engine-tests:{secret}".encode()).decode() for secret in secrets]
    for secret in [*secrets, *basics, JWT_START]:
        assert secret not in logs


def assert_no_secret(*answers: Any) -> None:
    text = json.dumps(answers)
    for secret in (CLIENT_SECRET, WRONG_SECRET, JWT_START):
        assert secret not in text


# --------------------------------------------------------------------------- validate, roots


def test_validate_accepts_the_client_secret_and_names_the_token_request_for_a_wrong_one(
    engine_api: Callable[..., TestClient],
    idp: servers.IdpServer,
    oidc_kinto: servers.KintoServer,
) -> None:
    api = engine_api()
    status, right = post(api, "/api/schemas/auth/validate", {"auth": oauth(oidc_kinto, idp)})
    assert (status, right) == (200, {"valid": True, "errors": []})

    refused = idp.stats()["refused"]
    wrong = {"auth": oauth(oidc_kinto, idp, client_secret=WRONG_SECRET)}
    status, answer = post(api, "/api/schemas/auth/validate", wrong)

    assert status == 200, answer
    assert answer["valid"] is False
    [error] = answer["errors"]
    assert error["code"] == "SAAS_AUTH_FAILED"
    assert error["description"] == (
        "the OAuth2 client credentials token request: the token endpoint refused it"
        " (HTTP 401, invalid_client)"
    )
    assert idp.stats()["refused"] == refused + 1
    assert_no_secret(right, answer)


def test_roots_with_oauth_list_the_clients_buckets_and_two_calls_share_one_token(
    engine_api: Callable[..., TestClient],
    idp: servers.IdpServer,
    oidc_kinto: servers.KintoServer,
) -> None:
    bucket = seed_as_client(oidc_kinto, idp, collections=1, records=1)
    api = engine_api()
    tokens = idp.stats()["tokens"]

    answers = [post(api, "/api/roots", {"auth": oauth(oidc_kinto, idp)}) for _ in range(2)]

    for status, answer in answers:
        assert status == 200, answer
        assert answer["errors"] == []
        assert bucket in [root["id"] for root in answer["resources"]]
    assert idp.stats()["tokens"] == tokens + 1
    assert_no_secret(answers)
    delete_as_client(oidc_kinto, idp, bucket)


# --------------------------------------------------------------------------- tasks


def test_a_backup_and_restore_with_oauth_bring_the_deleted_bucket_back_on_one_token(
    engine_api: Callable[..., TestClient],
    storage_area: Callable[[str], Backend],
    idp: servers.IdpServer,
    oidc_kinto: servers.KintoServer,
) -> None:
    bucket = seed_as_client(oidc_kinto, idp, collections=2, records=100)
    before = dump_buckets(oidc_kinto, [bucket])  # as the admin account
    assert len(before["buckets"][bucket]["collections"]) == 2
    area = storage_area("local")
    place = area.place("oauth-round-trip")
    api = engine_api(storage_allow=(area.allow,))
    auth = oauth(oidc_kinto, idp)
    tokens = idp.stats()["tokens"]
    trail: list[Any] = []

    ctx = root_ctxs(api, auth)[bucket]
    backup = task_body(auth, place.storage(), ctx, options={"with_permissions": True})
    assert_done(run_task(api, "/api/backup", backup, trail=trail))
    delete_as_client(oidc_kinto, idp, bucket)
    assert dump_buckets(oidc_kinto, [bucket]) == {"buckets": {}}
    restore = task_body(auth, place.storage(), ctx, scenario="IN_PLACE")
    assert_done(run_task(api, "/api/restore", restore, trail=trail))

    assert_same(dump_buckets(oidc_kinto, [bucket]), before)
    # the engine's one token, shared by its API calls and both tasks, and delete_as_client's
    assert idp.stats()["tokens"] == tokens + 2
    assert_no_secret(trail)
    delete_as_client(oidc_kinto, idp, bucket)


def test_a_backup_outliving_several_tokens_gets_new_ones_and_completes(
    engine_api: Callable[..., TestClient],
    storage_area: Callable[[str], Backend],
    idp_factory: Callable[..., servers.IdpServer],
    kinto_factory: Callable[..., servers.KintoServer],
) -> None:
    idp = idp_factory(token_lifetime=2)  # the engine renews it at 1.8 s (leeway 10%)
    kinto = kinto_factory(oidc=idp.oidc, paginate_by=10)
    bucket = seed_as_client(kinto, idp, collections=2, records=100)
    area = storage_area("local")
    api = engine_api(storage_allow=(area.allow,))
    trail: list[Any] = []
    with proxying(kinto.url) as proxy:
        auth = oauth(kinto, idp, server_url=proxy.url)
        ctx = root_ctxs(api, auth)[bucket]
        # each page of a record listing takes 0.5 s, and a collection has 10 or 11 pages: the
        # backup lasts 5 s or more, and uses a token 1.8 s at most, plus a page, before renewing
        proxy.inject(Fault("delay", seconds=0.5), r"/records(\?|$)", times=None)
        stats = idp.stats()
        options = {"with_permissions": False}  # the listings only
        body = task_body(auth, area.place("long").storage(), ctx, options=options)
        started = time.monotonic()
        assert_done(run_task(api, "/api/backup", body, trail=trail))
        elapsed = time.monotonic() - started
        presented = {request.headers.get("authorization") for request in proxy.requests}

    assert elapsed >= 5.0, "the backup must outlive two tokens for this test to mean anything"
    after = idp.stats()
    assert after["tokens"] - stats["tokens"] >= 2
    assert after["refused"] == stats["refused"]
    assert len(presented) >= 3  # the Kinto saw the listing's token and two more
    assert_no_secret(trail)


def test_each_token_the_saas_refuses_is_renewed_not_only_the_tasks_first(
    engine_api: Callable[..., TestClient],
    storage_area: Callable[[str], Backend],
    idp: servers.IdpServer,
    oidc_kinto: servers.KintoServer,
) -> None:
    bucket = seed_as_client(oidc_kinto, idp, collections=1, records=25)
    area = storage_area("local")
    api = engine_api(storage_allow=(area.allow,))
    with proxying(oidc_kinto.url) as proxy:
        auth = oauth(oidc_kinto, idp, server_url=proxy.url)
        ctx = root_ctxs(api, auth)[bucket]
        body = task_body(auth, area.place("refused").storage(), ctx)
        # the Kinto refuses the token of the listing's first page, then (pages come one after
        # the other) the renewed token of its second page, as when each expired in flight
        refusal = Fault("status", status=401, body=b'{"code": 401, "error": "Unauthorized"}')
        proxy.inject(refusal, r"/collections/c000/records$")
        proxy.inject(refusal, r"/collections/c000/records\?")
        tokens = idp.stats()["tokens"]
        result = run_task(api, "/api/backup", body)
        issued = idp.stats()["tokens"] - tokens
        refused = [r.query for r in proxy.requests if r.fault is not None]

    delete_as_client(oidc_kinto, idp, bucket)
    assert len(refused) == 2 and refused[0] == "" and "_token=" in refused[1]
    assert_done(result)
    assert issued == 2  # one for each refused token


# --------------------------------------------------------------------------- refresh tokens


def refreshed(idp: servers.IdpServer, refresh_token: str) -> httpx.Response:
    """The provider's answer to a refresh grant presenting refresh_token (as the platform's)."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    auth = (idp.client_id, idp.client_secret)
    return httpx.post(idp.token_url, data=form, auth=auth, trust_env=False)


def handed(answer: dict[str, Any]) -> str:
    """The refresh token an answer hands the platform."""
    token: str = answer["authUpdate"]["settings"]["refresh_token_secret"]
    return token


def test_a_rotating_refresh_token_is_handed_over_on_every_answer_and_the_last_one_is_live(
    caplog: pytest.LogCaptureFixture,
    engine_api: Callable[..., TestClient],
    storage_area: Callable[[str], Backend],
    idp_factory: Callable[..., servers.IdpServer],
    kinto_factory: Callable[..., servers.KintoServer],
) -> None:
    # each refresh answers a new refresh token and kills the one presented (strict rotation)
    idp = idp_factory(token_lifetime=2, refresh_token=REFRESH_TOKEN)
    kinto = kinto_factory(oidc=idp.oidc, paginate_by=10)
    bucket = seed_as_client(kinto, idp, collections=2, records=100)
    area = storage_area("local")
    api = engine_api(storage_allow=(area.allow,))

    auth = oauth(kinto, idp, method="oauth2_refresh", refresh_token_secret=REFRESH_TOKEN)
    status, validated = post(api, "/api/schemas/auth/validate", {"auth": auth})
    assert (status, validated["valid"]) == (200, True), validated
    kept = handed(validated)  # the platform stores it in the source's settings
    assert kept != REFRESH_TOKEN
    assert idp.stats()["refreshes"] == 1

    trail: list[Any] = []
    with proxying(kinto.url) as proxy:
        auth = oauth(
            kinto, idp, server_url=proxy.url, method="oauth2_refresh", refresh_token_secret=kept
        )
        ctx = root_ctxs(api, auth)[bucket]
        # a backup of 5 s or more on 2 s tokens: the engine refreshes during it, each time with
        # the token the refresh before gave (the provider refuses any older one)
        proxy.inject(Fault("delay", seconds=0.5), r"/records(\?|$)", times=None)
        body = task_body(auth, area.place("rotating").storage(), ctx)
        body["options"] = {"with_permissions": False}
        done = assert_done(run_task(api, "/api/backup", body, trail=trail))

    stats = idp.stats()
    assert stats["refreshes"] >= 4  # validate, roots, and at least two during the backup
    assert stats["refused"] == 0
    tokens = [handed(answer) for answer in trail]
    assert len(set(tokens)) >= 2  # the answers followed the rotations
    latest = handed(done)
    assert latest == tokens[-1] and latest not in (REFRESH_TOKEN, kept)
    # the token handed last is the live one: the platform can go on with it, not with older ones
    assert refreshed(idp, kept).status_code == 400
    assert refreshed(idp, latest).status_code == 200
    assert_no_secret(trail)
    assert REFRESH_TOKEN not in json.dumps(trail)
    logs = "".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    for token in {*tokens, kept}:  # handed to the platform, never logged
        assert token not in logs


def test_a_failed_task_still_hands_over_the_refresh_token_it_rotated(
    engine_api: Callable[..., TestClient],
    storage_area: Callable[[str], Backend],
    idp_factory: Callable[..., servers.IdpServer],
    kinto_factory: Callable[..., servers.KintoServer],
) -> None:
    idp = idp_factory(refresh_token=REFRESH_TOKEN)
    kinto = kinto_factory(oidc=idp.oidc)
    bucket = seed_as_client(kinto, idp, collections=1, records=5)
    area = storage_area("local")
    api = engine_api(storage_allow=(area.allow,))
    admin = {"settings": {"server_url": kinto.url, "method": "basic"}}
    admin["settings"] |= {"username": kinto.admin[0], "password_secret": kinto.admin[1]}
    ctx = root_ctxs(api, admin)[bucket]
    delete_as_client(kinto, idp, bucket)  # the backup's first listing fails: the task FAILS

    auth = oauth(kinto, idp, method="oauth2_refresh", refresh_token_secret=REFRESH_TOKEN)
    body = task_body(auth, area.place("x").storage(), ctx)
    failed_status, failed = run_task(api, "/api/backup", body)

    assert failed_status != 200, failed
    # Kinto answers 403 for the deleted bucket: the engine refreshed once more before failing
    assert idp.stats()["refreshes"] == 2
    latest = handed(failed)
    assert latest != REFRESH_TOKEN
    assert refreshed(idp, latest).status_code == 200

    # the taskUuid and ctx alone buy nothing: another tenant's (or no) settings get no token
    task = {"taskUuid": body["taskUuid"], "ctx": failed["error"]["payload"]["ctx"]}
    task |= {"storage": body["storage"]}
    for stranger in ({}, {"auth": admin}, {"auth": {"settings": None}}, {"auth": "x"}):
        status, again = post(api, "/api/status", task | stranger)
        assert status != 200 and "authUpdate" not in again, again
        assert latest not in json.dumps(again)
    # the platform presenting the settings it began with, or those already updated, gets it
    updated = auth | {"settings": auth["settings"] | failed["authUpdate"]["settings"]}
    for presented in (auth, updated):
        status, again = post(api, "/api/status", task | {"auth": presented})
        assert status == failed_status and handed(again) == latest


# --------------------------------------------------------------------------- token endpoints


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (
            b"<html><body>Sign-in is down</body></html>",
            "the token endpoint's answer has no access_token",
        ),
        (
            b'{"token_type": "Bearer", "expires_in": 3600}',
            "the token endpoint's answer has no access_token",
        ),
        (None, "cannot reach the token endpoint (gave up after 3 attempts)"),
    ],
    ids=["not-json", "no-access-token", "unreachable"],
)
def test_a_token_endpoint_answering_nonsense_or_nothing_is_an_auth_error_naming_the_request(
    engine_api: Callable[..., TestClient],
    idp: servers.IdpServer,
    oidc_kinto: servers.KintoServer,
    answer: bytes | None,
    said: str,
) -> None:
    description = f"the OAuth2 client credentials token request: {said}"
    api = engine_api()
    with proxying(idp.url) as proxy:
        token_url = f"{closed_port_url()}/token"
        if answer is not None:
            proxy.inject(Fault("body", body=answer), "/token", times=None)
            token_url = f"{proxy.url}/token"
        auth = oauth(oidc_kinto, idp, token_url=token_url)

        status, validated = post(api, "/api/schemas/auth/validate", {"auth": auth})
        assert status == 200, validated
        assert validated == {
            "valid": False,
            "errors": [{"code": "SAAS_AUTH_FAILED", "description": description}],
        }
        status, roots = post(api, "/api/roots", {"auth": auth})
        assert status == 502, roots
        assert roots == {"error": {"code": "SAAS_AUTH_FAILED", "description": description}}
        asked = [request.path for request in proxy.requests]
    assert asked == ([] if answer is None else ["/token", "/token"])  # no token: never cached
    assert_no_secret(validated, roots)
