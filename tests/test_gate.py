"""The gate of the process's SaaS requests: the configured concurrency as a hard limit, and each
tenant's window shrinking on throttling and growing back on answers (AIMD), between 1 and the
limit. Pure asyncio: no server is needed to count admissions."""

from __future__ import annotations

import asyncio

import pytest

from engine.saas.gate import Gate

pytestmark = pytest.mark.anyio


async def throttle(gate: Gate, key: str = "") -> None:
    """One request of ``key`` that the SaaS throttled."""
    async with gate.admit(key) as admitted:
        admitted.throttled()


async def succeed(gate: Gate, key: str = "", times: int = 1) -> None:
    """``times`` requests of ``key`` that the SaaS answered."""
    for _ in range(times):
        async with gate.admit(key) as admitted:
            await admitted.succeeded()


async def test_a_429_halves_the_window_down_to_one_never_below() -> None:
    gate = Gate(8)
    widths = []
    for _ in range(5):
        await throttle(gate)
        widths.append(gate.width())
    assert widths == [4, 2, 1, 1, 1]


async def test_answers_widen_the_window_by_one_per_window_back_to_the_limit_never_above() -> None:
    gate = Gate(8)
    for _ in range(3):
        await throttle(gate, "t")
    assert gate.width("t") == 1  # a narrow window outlives its requests
    await succeed(gate, "t")
    assert gate.width("t") == 2  # one answer at width 1 is a whole window
    await succeed(gate, "t", times=2)
    assert gate.width("t") == 3
    async with gate.admit("t") as holder:  # keeps the window alive once it is full again
        await succeed(gate, "t", times=200)
        assert gate.width("t") == 8
        await holder.succeeded()
        assert gate.width("t") == 8


async def test_requests_in_flight_when_the_saas_pushes_back_shrink_the_window_once() -> None:
    gate = Gate(8)
    async with gate.admit("t") as first, gate.admit("t") as second, gate.admit("t") as third:
        for admitted in (first, second, third):
            admitted.throttled()  # one burst of 429s: one decrease, not three
        assert gate.width("t") == 4
        async with gate.admit("t") as later:  # sent after the decrease: a new round
            later.throttled()
        assert gate.width("t") == 2


async def test_a_narrow_window_holds_requests_back_until_one_leaves() -> None:
    gate = Gate(4)
    async with gate.admit("t") as holder:
        for _ in range(2):
            await throttle(gate, "t")
        assert gate.width("t") == 1
        waiting = asyncio.create_task(succeed(gate, "t"))
        await asyncio.sleep(0.01)
        assert not waiting.done()  # the one request allowed is the holder's
        await holder.succeeded()
    await asyncio.wait_for(waiting, 1.0)


async def test_one_tenants_throttling_never_narrows_anothers_window() -> None:
    gate = Gate(4)
    async with gate.admit("a"):
        await throttle(gate, "a")
        assert gate.width("a") == 2
        assert gate.width("b") == 4
        async with gate.admit("b"), gate.admit("b"), gate.admit("b"):
            pass  # three at once for b while a is throttled: b is not held back


async def test_the_limit_bounds_all_tenants_together() -> None:
    gate = Gate(2)
    async with gate.admit("a"), gate.admit("b"):
        third = asyncio.create_task(succeed(gate, "c"))
        await asyncio.sleep(0.01)
        assert not third.done()
    await asyncio.wait_for(third, 1.0)


async def test_an_idle_window_at_full_width_is_dropped_so_tenants_leave_no_trace() -> None:
    gate = Gate(4)
    await throttle(gate, "gone")
    await succeed(gate, "gone", times=50)
    assert gate._windows == {}
