"""engine.clock: the timestamps records and manifests carry, and reading them back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine.clock import SystemClock, iso, parse_iso


def test_a_timestamp_is_utc_with_milliseconds_and_a_z():
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(1_700_000_000.25) == "2023-11-14T22:13:20.250Z"


@pytest.mark.parametrize("seconds", [0.0, 1_700_000_000.0, 1_700_000_000.125, 4_102_444_800.5])
def test_a_timestamp_reads_back_as_the_same_moment(seconds: float):
    assert parse_iso(iso(seconds)) == seconds


def test_a_timestamp_reads_back_to_the_millisecond():
    assert parse_iso(iso(1_700_000_000.1239)) == pytest.approx(1_700_000_000.123, abs=1e-6)


def test_an_offset_is_honoured_and_a_naive_timestamp_is_taken_as_utc():
    assert parse_iso("2023-11-14T23:13:20+01:00") == 1_700_000_000.0
    assert parse_iso("2023-11-14T22:13:20") == 1_700_000_000.0


@pytest.mark.parametrize(
    "text", [None, 1_700_000_000, "", "yesterday", "2023-13-01T00:00:00Z", ["2023-11-14"], True]
)
def test_anything_but_an_iso_timestamp_reads_as_none(text: Any):
    assert parse_iso(text) is None


def test_the_system_clock_tells_the_time_and_sleeps():
    clock = SystemClock()
    before = clock.now()

    asyncio.run(clock.sleep(0))

    assert parse_iso(iso(before)) == pytest.approx(before, abs=1e-3)
    assert clock.now() >= before
