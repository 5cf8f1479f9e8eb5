"""The test OAuth2 identity provider (scripts/idp, started by servers.start_idp) is strict about
clients and tokens, and a Kinto configured by start_kinto(oidc=...) trusts exactly its tokens."""

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from scripts import servers


def token_answer(idp: servers.IdpServer, secret: str | None = None) -> httpx.Response:
    """Ask idp for a client-credentials token, authenticating by HTTP Basic."""
    auth = (idp.client_id, idp.client_secret if secret is None else secret)
    return httpx.post(idp.token_url, data={"grant_type": "client_credentials"}, auth=auth)


def token(idp: servers.IdpServer) -> str:
    """A fresh access token from idp."""
    answer = token_answer(idp)
    answer.raise_for_status()
    access_token: str = answer.json()["access_token"]
    return access_token


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def jwt_claims(jwt: str) -> dict[str, Any]:
    """The (unverified) claims of a JWT."""
    payload = jwt.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def test_the_provider_advertises_its_issuer_and_token_endpoint(idp: servers.IdpServer):
    document = httpx.get(f"{idp.url}/.well-known/openid-configuration").json()
    assert document["issuer"] == idp.issuer == idp.url
    assert document["token_endpoint"] == idp.token_url == f"{idp.url}/token"
    assert idp.oidc == servers.OidcSettings(idp.issuer, "engine-tests")


def test_a_token_for_the_right_secret_lets_kinto_name_the_client_and_create_a_bucket(
    idp: servers.IdpServer, oidc_kinto: servers.KintoServer
):
    headers = bearer(token(idp))
    hello = httpx.get(f"{oidc_kinto.url}/", headers=headers).json()
    assert hello["user"]["id"] == "oidc:engine-tests"
    bucket = f"oauth{uuid.uuid4().hex[:12]}"
    created = httpx.put(f"{oidc_kinto.url}/buckets/{bucket}", headers=headers)
    assert created.status_code == 201
    assert "oidc:engine-tests" in created.json()["permissions"]["write"]


def test_kinto_still_takes_its_admin_account_beside_oauth(oidc_kinto: servers.KintoServer):
    hello = httpx.get(f"{oidc_kinto.url}/", auth=oidc_kinto.admin).json()
    assert hello["user"]["id"] == "account:admin"


def test_the_token_answer_says_how_long_the_token_lives(
    idp_factory: Callable[..., servers.IdpServer],
):
    idp = idp_factory(token_lifetime=120)
    answer = token_answer(idp)
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 120
    claims = jwt_claims(body["access_token"])
    assert claims["exp"] - claims["iat"] == 120
    assert claims["iss"] == idp.issuer


def test_client_credentials_in_the_form_body_are_accepted_too(idp: servers.IdpServer):
    form = {
        "grant_type": "client_credentials",
        "client_id": idp.client_id,
        "client_secret": idp.client_secret,
    }
    answer = httpx.post(idp.token_url, data=form)
    assert answer.status_code == 200
    assert answer.json()["expires_in"] == 3600


@pytest.mark.parametrize(
    ("auth", "form"),
    [
        (("engine-tests", "wrong"), {}),
        (("someone-else", "idp-secret"), {}),
        (None, {"client_id": "engine-tests", "client_secret": "wrong"}),
        (None, {"client_id": "engine-tests"}),
        (None, {}),
    ],
    ids=["basic-wrong-secret", "basic-wrong-client", "form-wrong-secret", "no-secret", "nothing"],
)
def test_a_wrong_or_missing_client_secret_gets_401_invalid_client(
    idp: servers.IdpServer, auth: tuple[str, str] | None, form: dict[str, str]
):
    data = {"grant_type": "client_credentials", **form}
    answer = httpx.post(idp.token_url, data=data, auth=auth)
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert "access_token" not in answer.json()


def test_a_refresh_token_rotates_strictly_and_its_access_token_is_good_for_userinfo(
    idp_factory: Callable[..., servers.IdpServer],
):
    idp = idp_factory(refresh_token="first-refresh-token")
    auth = (idp.client_id, idp.client_secret)

    def refresh(presented: str) -> httpx.Response:
        form = {"grant_type": "refresh_token", "refresh_token": presented}
        return httpx.post(idp.token_url, data=form, auth=auth)

    first = refresh("first-refresh-token")
    assert first.status_code == 200, first.text
    rotated = first.json()["refresh_token"]
    assert rotated != "first-refresh-token"
    userinfo = httpx.get(f"{idp.url}/userinfo", headers=bearer(first.json()["access_token"]))
    assert userinfo.json() == {"sub": "engine-tests"}
    for used in ("first-refresh-token", "never-issued"):
        refused = refresh(used)
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_grant"
    assert refresh(rotated).status_code == 200
    assert idp.stats()["refreshes"] == 2


def test_the_refresh_grant_is_refused_without_a_refresh_token_set(idp: servers.IdpServer):
    form = {"grant_type": "refresh_token", "refresh_token": "anything"}
    answer = httpx.post(idp.token_url, data=form, auth=(idp.client_id, idp.client_secret))
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_another_grant_than_client_credentials_or_refresh_token_is_refused(
    idp: servers.IdpServer,
):
    form = {"grant_type": "password", "username": "u", "password": "p"}
    answer = httpx.post(idp.token_url, data=form, auth=(idp.client_id, idp.client_secret))
    assert answer.status_code == 400
    assert answer.json()["error"] == "unsupported_grant_type"


def test_userinfo_names_the_client_for_its_tokens_and_refuses_others(idp: servers.IdpServer):
    userinfo = f"{idp.url}/userinfo"
    assert httpx.get(userinfo, headers=bearer(token(idp))).json() == {"sub": "engine-tests"}
    for headers in [bearer("not-a-token"), {}]:
        refused = httpx.get(userinfo, headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_token"


def test_kinto_refuses_a_token_once_it_expired(
    idp_factory: Callable[..., servers.IdpServer],
    kinto_factory: Callable[..., servers.KintoServer],
):
    idp = idp_factory(token_lifetime=1)
    kinto = kinto_factory(oidc=idp.oidc)
    headers = bearer(token(idp))
    assert httpx.get(f"{kinto.url}/buckets", headers=headers).status_code == 200
    # Both clocks are the servers': the token lives 1 s on the provider's, and Kinto keeps a
    # verified token for verification_ttl_seconds = 1 after its last use.
    time.sleep(1.5)
    refused = httpx.get(f"{kinto.url}/buckets", headers=headers)
    assert refused.status_code == 401
    userinfo = httpx.get(f"{idp.url}/userinfo", headers=headers)
    assert userinfo.json()["error"] == "invalid_token"


def test_stats_count_token_requests_and_refusals(idp_factory: Callable[..., servers.IdpServer]):
    idp = idp_factory()
    assert idp.stats() == {"tokens": 0, "token_requests": 0, "refused": 0, "refreshes": 0}
    token(idp)
    token(idp)
    assert token_answer(idp, secret="wrong").status_code == 401
    assert idp.stats() == {"tokens": 2, "token_requests": 3, "refused": 1, "refreshes": 0}


def test_the_provider_installs_once_from_its_lock_file():
    folder = servers.ensure_node_package("idp")
    assert servers.ensure_node_package("idp") == folder
    package = servers.NODE_PACKAGES["idp"]
    assert (folder / servers.MARKER).read_text() == package.stamp
    assert (folder / "node_modules" / "oauth2-mock-server").is_dir()
    manifest = json.loads((package.source / "package.json").read_text())
    name, version = package.spec.rsplit("@", 1)
    assert manifest["dependencies"] == {name: version} and package.version == version
    lock = json.loads((package.source / "package-lock.json").read_text())
    assert lock["packages"][f"node_modules/{name}"]["version"] == version
