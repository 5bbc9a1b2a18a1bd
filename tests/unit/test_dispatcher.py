"""The dispatcher's pump against fake connection pools: what is sent, and when it wakes."""

from __future__ import annotations

import asyncio
import os
import tempfile
from typing import Any

from rinha import fast
from rinha.config import Config
from rinha.dispatcher import Dispatcher
from rinha.processors import DEFAULT, FALLBACK, Processor


class FakePool:
    """Records each send; the test answers it by calling its `done` callback."""

    address: Any = None

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def send(self, data: bytes, timeout_s: float, done: Any) -> None:
        self.sent.append((data, done))


# the journals of these tests: one folder, removed when the test process ends
_JOURNALS = tempfile.TemporaryDirectory(prefix="rinha-test-")


def dispatcher(**settings: Any) -> tuple[Dispatcher, FakePool]:
    config = Config(**settings)
    processors = (
        Processor(DEFAULT, "http://127.0.0.1:1", config),
        Processor(FALLBACK, "http://127.0.0.1:2", config),
    )
    pool = FakePool()
    for p in processors:
        p.pool = pool  # type: ignore[assignment]
    ledgers = (fast.Ledger(), fast.Ledger())
    journal = fast.Journal(os.path.join(tempfile.mkdtemp(dir=_JOURNALS.name), "journal.bin"))
    return Dispatcher(config, processors, ledgers, fast, journal), pool


async def _tick(d: Dispatcher) -> None:
    await asyncio.sleep(d.config.dispatch_tick_ms / 1000 * 2)


def test_a_payment_is_sent_on_the_next_tick_and_recorded_on_its_answer() -> None:
    async def scenario() -> None:
        d, pool = dispatcher()
        d.submit("4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", 1990)
        assert pool.sent == [] and d.backlog == 1  # batched: not sent from submit itself
        await _tick(d)
        assert len(pool.sent) == 1 and d.backlog == 0 and d.in_flight == 1
        data, done = pool.sent[0]
        assert b"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3" in data
        done(200, b"{}", None)
        assert d.in_flight == 0 and d.ledgers[DEFAULT].summary(0, 2**62) == (1, 1990)

    asyncio.run(scenario())


def test_an_answer_wakes_the_pump_only_when_something_waits() -> None:
    async def scenario() -> None:
        d, pool = dispatcher(max_in_flight=1)
        d.submit("4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", 1990)
        d.submit("5b8a02c9-8e37-4e0e-bb2a-5ed2d8d071c4", 1990)
        await _tick(d)
        assert len(pool.sent) == 1 and d.backlog == 1  # the second waits for the slot
        pool.sent[0][1](200, b"{}", None)
        assert d._pump_timer is not None  # the freed slot is used on the next tick
        await _tick(d)
        assert len(pool.sent) == 2 and d.backlog == 0
        pool.sent[1][1](200, b"{}", None)
        # nothing queued: no pump is scheduled, so no idle wake-up of the process
        assert d._pump_timer is None
        assert d.ledgers[DEFAULT].summary(0, 2**62) == (2, 3980)

    asyncio.run(scenario())


class FakeTimer:
    def __init__(self, at: float, callback: Any) -> None:
        self.at = at
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """The dispatcher's clock and timers, stepped by hand: pacing is checked call by call."""

    def __init__(self) -> None:
        self.now = 1_000.0  # loop time, s
        self.timers: list[FakeTimer] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Any) -> FakeTimer:
        timer = FakeTimer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [t for t in self.timers if t.at <= self.now + 1e-9 and not t.cancelled]
        self.timers = [t for t in self.timers if t not in due and not t.cancelled]
        for timer in due:
            timer.callback()


def paced(**config: Any) -> tuple[Dispatcher, FakePool, FakeLoop]:
    d, pool = dispatcher(**config)
    loop = FakeLoop()
    d._loop = loop  # type: ignore[assignment]
    return d, pool, loop


def _steps(totals: list[int]) -> list[int]:
    """Calls sent per tick, from the running totals."""
    return [b - a for a, b in zip(totals, totals[1:], strict=False)]


def _submit(d: Dispatcher, n: int, start: int) -> None:
    for i in range(start, start + n):
        d.submit(f"00000000-0000-4000-8000-{i:012d}", 1990)


def test_a_backlog_drains_at_the_catch_up_pace_while_new_arrivals_go_out_at_once() -> None:
    # 400/s at 5 ms ticks: 2 calls per tick beyond the new arrivals
    d, pool, loop = paced(catch_up_per_s=400, launch_per_tick=16, dispatch_tick_ms=5)
    loop.advance(1.0)  # idle for 1 s: the allowance saved up is two ticks' worth, not 400
    _submit(d, 50, 0)  # e.g. held through an outage
    loop.advance(0.005)
    assert len(pool.sent) == 16  # launch_per_tick bounds the first tick
    sent = [16]
    for tick in range(10):
        _submit(d, 3, 1000 + 3 * tick)  # live traffic: 3 new payments per tick
        loop.advance(0.005)
        sent.append(len(pool.sent))
    # each tick: the 3 new arrivals' own calls + 2 for the backlog, not 16
    # (+ 2 more on the first: the allowance saved while idle)
    assert _steps(sent) == [7] + [5] * 9
    assert d.backlog == 50 + 30 - 68


def test_no_catch_up_limit_sends_launch_per_tick_every_tick() -> None:
    d, pool, loop = paced(catch_up_per_s=0, launch_per_tick=16, dispatch_tick_ms=5)
    _submit(d, 50, 0)
    counts = []
    for _ in range(4):
        loop.advance(0.005)
        counts.append(len(pool.sent))
    assert counts == [16, 32, 48, 50]


def test_shutdown_drain_sends_the_backlog_without_pacing() -> None:
    async def scenario() -> None:
        d, pool = dispatcher(catch_up_per_s=1, launch_per_tick=16)
        _submit(d, 40, 0)
        await _tick(d)
        assert len(pool.sent) <= 17 and d.backlog >= 23  # 1/s: the rest would take 23 s
        left = await d.drain(0.1)  # no answers come: every call stays in flight
        assert len(pool.sent) == 40 and d.backlog == 0 and left == 40

    asyncio.run(scenario())


def test_a_drain_ends_within_catch_up_ms_however_big_the_backlog() -> None:
    # base pace 200/s (1 call per 5 ms tick) would need 0.2 s for 40 queued payments;
    # catch_up_ms=50 bounds the drain to ~10 ticks, so the pace rises to finish by then
    d, pool, loop = paced(
        catch_up_per_s=200, catch_up_ms=50, launch_per_tick=16, dispatch_tick_ms=5
    )
    _submit(d, 56, 0)
    loop.advance(0.005)
    assert len(pool.sent) == 16  # the arrivals' own calls, capped per tick: a drain starts
    counts = [16]
    for _ in range(11):
        loop.advance(0.005)
        counts.append(len(pool.sent))
    per_tick = _steps(counts)
    assert d.backlog == 0 and len(pool.sent) == 56  # done within the 50 ms window
    assert max(per_tick) < 16  # spread over the window, not sent in one burst
    assert sum(1 for n in per_tick if n) >= 5


def test_without_a_deadline_problem_the_base_pace_holds() -> None:
    # 40 queued at 200/s with a 3 s window: 1 call per tick, the window never binds
    d, pool, loop = paced(
        catch_up_per_s=200, catch_up_ms=3_000, launch_per_tick=16, dispatch_tick_ms=5
    )
    _submit(d, 56, 0)
    loop.advance(0.005)
    counts = [len(pool.sent)]
    for _ in range(10):
        loop.advance(0.005)
        counts.append(len(pool.sent))
    per_tick = _steps(counts)
    assert per_tick == [2] + [1] * 9  # (2 on the first: the allowance saved while idle)


ID = "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"


def _kinds(d: Dispatcher) -> list[tuple[int, int]]:
    """(kind, processor) of every journal record so far."""
    d.journal.flush()
    replayed = fast.Journal(d.journal.path).replay((fast.Ledger(), fast.Ledger()))
    return [(kind, processor) for kind, _, _, processor, _ in replayed]


def test_every_attempt_is_journaled_before_it_is_sent_and_its_outcome_after() -> None:
    async def scenario() -> None:
        d, pool = dispatcher()
        d.submit(ID, 1990)
        await _tick(d)
        assert _kinds(d) == [(fast.J_ATTEMPT, DEFAULT)]  # on disk: the request has left
        pool.sent[0][1](200, b"{}", None)
        assert _kinds(d) == [(fast.J_ATTEMPT, DEFAULT), (fast.J_STORED, DEFAULT)]

    asyncio.run(scenario())


def test_an_unknown_outcome_pins_for_good_and_a_404_lookup_does_not_unpin() -> None:
    async def scenario() -> None:
        from rinha.http_client import OutcomeUnknown

        d, pool = dispatcher(hold_ms=0, settle_after_ms=0, retry_min_ms=1, retry_max_ms=1)
        d.submit(ID, 1990)
        await _tick(d)
        first = pool.sent[0][0]
        pool.sent[0][1](0, b"", OutcomeUnknown("timeout"))
        assert d.in_doubt == 1 and len(d.pinned[DEFAULT]) == 1
        # default keeps failing: fallback is healthy and the hold is over, yet every call
        # for this payment goes to default, with the identical body
        for _ in range(5):
            await _tick(d)
            for data, _ in pool.sent[1:]:
                assert data == first
            for _, done in pool.sent[1:]:
                done(500, b"", None)
            del pool.sent[1:]
        assert d.in_doubt == 1 and d.processors[FALLBACK].processed == 0
        assert _kinds(d) == [(fast.J_ATTEMPT, DEFAULT)]  # retries of a pinned body add nothing

    asyncio.run(scenario())


def test_a_restored_pinned_payment_is_retried_with_its_original_request() -> None:
    async def scenario() -> None:
        from rinha.recovery import Pending

        d, pool = dispatcher()
        d.restore(Pending(ID, 1990, pinned=FALLBACK, requested_at_ms=1_700_000_000_123))
        d.restore(Pending("5b8a02c9-8e37-4e0e-bb2a-5ed2d8d071c4", 500))
        assert d.in_doubt == 1 and d.backlog == 2
        d.wake()
        await _tick(d)
        bodies = sorted(data for data, _ in pool.sent)
        assert any(
            b'"requestedAt":"2023-11-14T22:13:20.123Z"' in b and ID.encode() in b for b in bodies
        )
        for data, done in pool.sent:
            done(422 if ID.encode() in data else 200, b"", None)
        # the 422 answers the earlier, unknown attempt: recorded under its requestedAt
        assert d.ledgers[FALLBACK].summary(0, 2**62) == (1, 1990)
        assert d.ledgers[DEFAULT].summary(0, 2**62) == (1, 500)
        assert d.in_doubt == 0

    asyncio.run(scenario())


def test_pending_records_describe_every_payment_not_settled() -> None:
    async def scenario() -> None:
        from rinha.http_client import OutcomeUnknown
        from rinha.recovery import replay

        d, pool = dispatcher(max_in_flight=2)
        for i in range(4):
            d.submit(f"00000000-0000-4000-8000-{i:012d}", 100 + i)
        await _tick(d)  # two out, two queued
        pool.sent[0][1](0, b"", OutcomeUnknown("lost"))  # pinned
        records = d.pending_records()
        ids = fast.SharedIdSet(
            os.path.join(tempfile.mkdtemp(dir=_JOURNALS.name), "ids.bin"), 100, 0
        )
        recovered = replay(records, ids, (fast.Ledger(), fast.Ledger()))
        assert recovered.queued == 2 and recovered.pinned == 2  # the pinned one and the one out
        assert sorted(p.cents for p in recovered.payments) == [100, 101, 102, 103]

    asyncio.run(scenario())
