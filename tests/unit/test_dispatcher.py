"""The dispatcher's pump against fake connection pools: what is sent, and when it wakes."""

from __future__ import annotations

import asyncio
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


def dispatcher(**config: Any) -> tuple[Dispatcher, FakePool]:
    processors = (Processor(DEFAULT, "http://127.0.0.1:1"),
                  Processor(FALLBACK, "http://127.0.0.1:2"))
    pool = FakePool()
    for p in processors:
        p.pool = pool  # type: ignore[assignment]
    ledgers = (fast.Ledger(), fast.Ledger())
    return Dispatcher(Config(**config), processors, ledgers, fast.payment_body), pool


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
