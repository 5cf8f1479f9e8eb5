"""Secret scrubbing: every value under a request's auth and storage options, in each of the
spellings a message may show it, is masked in errors and logs while that request is served."""

import asyncio
import logging

import pytest

from engine.redaction import MASK, RedactingFilter, guarding, scrub, secret_values


def test_secret_values_are_every_string_and_number_leaf_longest_first():
    found = secret_values({"settings": {"user": "alice", "pin": 12345, "nested": [{"k": "tok"}]}})

    assert found == ("12345", "alice", "tok")


@pytest.mark.parametrize("leaf", [True, False, None, "ab", 7, 42])
def test_booleans_nulls_and_values_shorter_than_three_characters_are_no_secrets(leaf: object):
    assert secret_values({"settings": {"value": leaf}}) == ()


def test_secrets_are_found_in_tuples_and_any_mapping():
    from types import MappingProxyType

    assert secret_values(MappingProxyType({"a": ("first", ["second"])})) == ("second", "first")


def test_scrub_leaves_text_alone_outside_a_guarded_request():
    assert scrub("password hunter2") == "password hunter2"


def test_scrub_masks_the_secrets_of_the_guarded_request_only_inside_it():
    with guarding({"settings": {"password_secret": "hunter2"}}, None):
        assert scrub("login failed for hunter2 (hunter2)") == f"login failed for {MASK} ({MASK})"
    assert scrub("hunter2") == "hunter2"


@pytest.mark.parametrize(
    ("secret", "spelled"),
    [
        ("p@ss word/1", "p%40ss%20word%2F1"),
        ("p@ss word/1", "p%40ss+word%2F1"),
        ('say "hi"\\now', 'say \\"hi\\"\\\\now'),
    ],
    ids=["url-encoded", "form-encoded", "json-escaped"],
)
def test_a_secret_is_masked_in_the_spellings_urls_and_json_give_it(secret: str, spelled: str):
    with guarding({"settings": {"password_secret": secret}}):
        assert scrub(f"GET /x?key={spelled} failed") == f"GET /x?key={MASK} failed"


def test_a_longer_secret_is_masked_whole_even_when_it_contains_a_secret_of_an_outer_request():
    with guarding({"settings": {"user": "alice"}}), guarding({"options": {"key": "alice-key-42"}}):
        assert scrub("key alice-key-42 of alice") == f"key {MASK} of {MASK}"


def test_concurrent_requests_do_not_see_each_others_secrets():
    async def request(secret: str, other: str) -> tuple[str, str]:
        with guarding({"settings": {"s": secret}}):
            await asyncio.sleep(0)
            return scrub(secret), scrub(other)

    async def both() -> list[tuple[str, str]]:
        return list(
            await asyncio.gather(
                request("first-secret", "second-secret"), request("second-secret", "first-secret")
            )
        )

    assert asyncio.run(both()) == [(MASK, "second-secret"), (MASK, "first-secret")]


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("engine.test", logging.INFO, __file__, 1, message, args, None)


def test_the_logging_filter_masks_secrets_in_the_formatted_message():
    record = _record("token %s for %s", "tok-12345", "alice")
    with guarding({"settings": {"token": "tok-12345"}}):
        assert RedactingFilter().filter(record)

    assert record.getMessage() == f"token {MASK} for alice"


def test_the_logging_filter_leaves_records_alone_outside_a_guarded_request():
    record = _record("token %s", "tok-12345")

    assert RedactingFilter().filter(record)
    assert (record.msg, record.args) == ("token %s", ("tok-12345",))
