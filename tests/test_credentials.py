"""Credential kinds: none, basic and bearer turn auth settings into an Authorization header."""

import base64
from typing import Any

import pytest

from engine import credentials
from engine.errors import TemplateError
from engine.schema import module_schema

NAMES = {"settings": {"user": "alice", "password_secret": "pa:ss wörd", "token_secret": "tok-123"}}
BASIC = {
    "kind": "basic",
    "username": "{{ settings.user }}",
    "password": "{{ settings.password_secret }}",
}


def test_the_credential_kinds_are_the_ones_the_schema_lists():
    assert set(credentials.KINDS) == set(
        module_schema()["$defs"]["credentials"]["properties"]["kind"]["enum"]
    )


@pytest.mark.parametrize("spec", [None, {"kind": "none"}], ids=["absent", "none"])
def test_no_credentials_add_no_header(spec: dict[str, Any] | None):
    assert credentials.headers_for(spec, NAMES) == {}


def test_basic_credentials_are_the_base64_of_user_and_password_in_utf8():
    token = base64.b64encode("alice:pa:ss wörd".encode()).decode()

    assert credentials.headers_for(BASIC, NAMES) == {"Authorization": f"Basic {token}"}


def test_bearer_credentials_carry_the_rendered_token():
    spec = {"kind": "bearer", "token": "{{ settings.token_secret }}"}

    assert credentials.headers_for(spec, NAMES) == {"Authorization": "Bearer tok-123"}


def test_a_literal_credential_is_used_as_written():
    spec = {"kind": "bearer", "token": "static-token"}

    assert credentials.headers_for(spec, NAMES) == {"Authorization": "Bearer static-token"}


def test_a_number_setting_is_sent_as_its_text():
    spec = {"kind": "bearer", "token": "{{ settings.pin }}"}

    assert credentials.headers_for(spec, {"settings": {"pin": 1234}}) == {
        "Authorization": "Bearer 1234"
    }


def test_a_credential_whose_setting_is_missing_is_a_template_error_naming_its_place():
    with pytest.raises(TemplateError, match=r"^/connection/auth/password: undefined"):
        credentials.headers_for(BASIC, {"settings": {"user": "alice"}})


def test_a_credential_that_renders_to_null_is_a_template_error_not_the_text_none():
    with pytest.raises(TemplateError, match=r"^/connection/auth/token: rendered to null$"):
        credentials.headers_for(
            {"kind": "bearer", "token": "{{ settings.t }}"}, {"settings": {"t": None}}
        )
