"""Static credential kinds: none, basic, bearer and apiKey turn auth settings into a header or a
query parameter (the token kinds are tested against a real identity provider in test_oauth)."""

import asyncio
import base64
from typing import Any

import pytest

from engine.errors import TemplateError
from engine.language import model
from engine.language.schema import module_schema
from engine.saas import credentials

NAMES = {"settings": {"user": "alice", "password_secret": "pa:ss wörd", "token_secret": "tok-123"}}


def applied_to(spec: dict[str, Any] | None, names: dict[str, Any]) -> credentials.Applied:
    reach: Any = None  # static kinds never reach out: no pool, no token cache
    specs = (
        () if spec is None else model.build(model.Connection, {"baseUrl": "", "auth": spec}).auth
    )
    return asyncio.run(credentials.credential_for(specs, names, reach).apply())


def headers_for(spec: dict[str, Any] | None, names: dict[str, Any]) -> dict[str, str]:
    return dict(applied_to(spec, names).headers)


BASIC = {
    "kind": "basic",
    "username": "{{ settings.user }}",
    "password": "{{ settings.password_secret }}",
}


def test_the_credential_kinds_are_the_ones_the_schema_lists():
    tags = {kind.TAG[1] for kind in credentials.KINDS}
    assert tags == set(module_schema()["$defs"]["credentials"]["properties"]["kind"]["enum"])


@pytest.mark.parametrize("spec", [None, {"kind": "none"}], ids=["absent", "none"])
def test_no_credentials_add_no_header(spec: dict[str, Any] | None):
    assert headers_for(spec, NAMES) == {}


def test_basic_credentials_are_the_base64_of_user_and_password_in_utf8():
    token = base64.b64encode("alice:pa:ss wörd".encode()).decode()

    assert headers_for(BASIC, NAMES) == {"Authorization": f"Basic {token}"}


def test_bearer_credentials_carry_the_rendered_token():
    spec = {"kind": "bearer", "token": "{{ settings.token_secret }}"}

    assert headers_for(spec, NAMES) == {"Authorization": "Bearer tok-123"}


def test_a_literal_credential_is_used_as_written():
    spec = {"kind": "bearer", "token": "static-token"}

    assert headers_for(spec, NAMES) == {"Authorization": "Bearer static-token"}


def test_a_number_setting_is_sent_as_its_text():
    spec = {"kind": "bearer", "token": "{{ settings.pin }}"}

    assert headers_for(spec, {"settings": {"pin": 1234}}) == {"Authorization": "Bearer 1234"}


def test_a_credential_whose_setting_is_missing_is_a_template_error_naming_its_place():
    with pytest.raises(TemplateError, match=r"^/connection/auth/password: undefined"):
        headers_for(BASIC, {"settings": {"user": "alice"}})


def test_a_credential_that_renders_to_null_is_a_template_error_not_the_text_none():
    with pytest.raises(
        TemplateError, match=r"^/connection/auth/token: rendered to null or empty text$"
    ):
        headers_for({"kind": "bearer", "token": "{{ settings.t }}"}, {"settings": {"t": None}})


def test_an_api_key_goes_in_the_header_or_the_query_parameter_it_names():
    spec = {"kind": "apiKey", "name": "X-Api-Key", "value": "{{ settings.token_secret }}"}

    assert headers_for(spec, NAMES) == {"X-Api-Key": "tok-123"}
    assert dict(applied_to(spec | {"in": "query", "name": "key"}, NAMES).query) == {
        "key": "tok-123"
    }
