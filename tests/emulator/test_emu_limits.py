"""The two rate limiters, driven directly."""

from __future__ import annotations

import asyncio

import pytest

from rinha.tools.emulator.limits import ConcurrencyLimiter, FixedWindowLimiter


def test_fixed_window_one_now_two_queued_then_refused() -> None:
    lim = FixedWindowLimiter(5.0, origin=100.0)
    assert lim.reserve(101.0) == 0.0  # window 0: answered at once
    assert lim.reserve(101.5) == pytest.approx(3.5)  # queued for window 1 (t = 105)
    assert lim.reserve(102.0) == pytest.approx(8.0)  # queued for window 2 (t = 110)
    assert lim.reserve(102.5) is None  # queue full: 429
    assert lim.retry_after == "5"
    # at t = 105 the first waiter takes window 1; one more may queue, for window 3
    assert lim.reserve(105.1) == pytest.approx(9.9)
    assert lim.reserve(105.2) is None
    # long after, everything is free again
    assert lim.reserve(200.0) == 0.0
    assert lim.reserve(200.1) == pytest.approx(5.0 - 0.1)


def test_fixed_window_retry_after_is_whole_seconds() -> None:
    assert FixedWindowLimiter(0.3).retry_after == "1"
    assert FixedWindowLimiter(2.5).retry_after == "3"


async def test_concurrency_limiter_real_defaults() -> None:
    lim = ConcurrencyLimiter()
    assert (lim.limit, lim.queue_limit) == (800, 500)
    assert all(lim.try_acquire() for _ in range(800))
    assert not lim.try_acquire()
    waiters = [asyncio.create_task(lim.wait()) for _ in range(500)]
    await asyncio.sleep(0)
    assert lim.waiting == 500
    assert await lim.wait() is False  # the 1,301st is refused at once
    for _ in range(500):
        lim.release()  # each release hands its permit to the oldest waiter
    assert all(await asyncio.gather(*waiters))
    assert lim.in_flight == 800 and lim.waiting == 0
    for _ in range(800):
        lim.release()
    assert lim.in_flight == 0


async def test_concurrency_limiter_cancelled_waiter_gives_its_place_back() -> None:
    lim = ConcurrencyLimiter(1, 1)
    assert lim.try_acquire()
    waiter = asyncio.create_task(lim.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert lim.waiting == 0
    lim.release()
    assert lim.in_flight == 0
