"""A payment attempt after the pump sends it, in both implementations: `Payment`, the processor's
state (`ProcessorState`), and the filing of each answer (`AttemptFiler`)."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ID = "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"
ID2 = "5b8a02c9-8e37-4e0e-bb2a-5ed2d8d071c4"
T0 = 1_750_000_000_000  # epoch ms
HEADS = (b"POST /payments HTTP/1.1\r\nHost: d\r\nContent-Length: ", b"POST /x\r\nContent-Length: ")


def state(fast: ModuleType, slow_ms: int = 100) -> Any:
    p = fast.ProcessorState()
    p.slow_ms, p.retry_min_ms, p.retry_max_ms = slow_ms, 50, 400
    return p


# ---------------------------------------------------------------------------- Payment
def test_a_payment_is_a_canonical_id_and_cents(fast: ModuleType) -> None:
    payment = fast.Payment(ID.upper(), 1990)
    assert (payment.correlation_id, payment.cents) == (ID, 1990)
    assert (payment.pinned, payment.requested_at_ms, payment.checked_ms) == (fast.UNPINNED, 0, 0)
    payment.pin(1)
    assert payment.pinned == 1 and repr(payment) == f"Payment('{ID}', 1990)"
    with pytest.raises(ValueError):
        fast.Payment("not-a-uuid", 1)
    with pytest.raises(TypeError):
        fast.Payment(ID, "1990")


def test_a_queued_payment_pops_as_a_payment(fast: ModuleType) -> None:
    queue = fast.PaymentQueue()
    queue.push(ID, 1990)
    queue.push(ID2, 5)
    first = queue.pop_payment()
    assert type(first) is fast.Payment and (first.correlation_id, first.cents) == (ID, 1990)
    assert first.pinned == fast.UNPINNED and len(queue) == 1
    assert queue.pop_payment().correlation_id == ID2
    with pytest.raises(IndexError):
        queue.pop_payment()


def test_now_ms_is_the_wall_clock(fast: ModuleType) -> None:
    before = time.time_ns() // 1_000_000
    now = fast.now_ms()
    assert before <= now <= time.time_ns() // 1_000_000


# ---------------------------------------------------------------------------- ProcessorState
def test_calls_are_counted_and_their_outcomes_observed(fast: ModuleType) -> None:
    p = state(fast)
    payment = fast.Payment(ID, 100)
    p.start_call(payment, T0)
    assert p.in_flight == 1 and p.call_starts == {payment: T0} and p.last_probe_ms == 0
    p.end_call(payment, T0 + 30, fast.STORED)
    assert (p.in_flight, p.processed, p.latency_ms, p.last_outcome_ms) == (0, 1, 30.0, T0 + 30)
    assert not p.call_starts and not p.failing
    p.ok = False  # a call while unusable is a probe
    p.start_call(payment, T0 + 40)
    assert p.last_probe_ms == T0 + 40
    p.end_call(payment, T0 + 50, fast.NO_EVIDENCE)  # a 429: counted back, nothing learnt
    assert p.in_flight == 0 and p.evidence_sent_ms == T0 and p.latency_ms == 30.0
    with pytest.raises(KeyError):
        p.end_call(payment, T0 + 60, fast.FAILED)


def test_failures_back_off_doubling_to_the_cap_and_newest_evidence_wins(fast: ModuleType) -> None:
    p = state(fast)
    backoffs = []
    for i in range(5):
        p.observe(T0 + i, T0 + i, False)
        backoffs.append(p.backoff_ms)
    assert backoffs == [50, 100, 200, 400, 400] and p.failing
    assert p.next_probe_ms == T0 + 4 + 400
    p.observe(T0 + 100, T0 + 90, True)  # sent after the last failure: recovered
    assert not p.failing and p.backoff_ms == 0 and p.next_probe_ms == 0
    p.observe(T0 + 200, T0 + 3, False)  # a stale failure, sent before: says nothing new
    assert not p.failing and p.bad_sent_ms == T0 + 4
    p.start_lookup()
    p.end_lookup(T0 + 300, fast.FAILED)
    assert p.failing and p.in_flight == 0 and p.bad_sent_ms == T0 + 300


def test_refresh_tracks_usability_from_answers_calls_out_and_health(fast: ModuleType) -> None:
    p = state(fast)
    assert p.refresh(T0) and p.unusable_since_ms is None and p.unusable_for_ms(T0) == 0
    payment = fast.Payment(ID, 100)
    p.start_call(payment, T0)
    assert p.refresh(T0 + 100)  # out for slow_ms: still usable
    assert not p.refresh(T0 + 101)  # out longer: too slow, evidence by itself
    assert p.unusable_since_ms == T0 + 101 and p.bad_sent_ms == T0
    assert not p.refresh(T0 + 150) and p.unusable_for_ms(T0 + 150) == 49
    p.end_call(payment, T0 + 160, fast.STORED)  # slow answer: latency 160 ms
    assert not p.usable(T0 + 160)
    p.observe(T0 + 200, T0 + 190, True)
    assert p.refresh(T0 + 200) and p.ok_since_ms == T0 + 200 and p.unusable_since_ms is None
    # no real outcome for 2 s: a newer health report speaks for it
    p.apply_health(T0 + 2_300, True, 0)
    assert p.health_speaks(T0 + 2_300) and not p.usable(T0 + 2_300)
    p.apply_health(T0 + 2_400, False, 101)
    assert not p.usable(T0 + 2_400)  # too slow, says the report
    p.apply_health(T0 + 2_500, False, 100)
    assert p.usable(T0 + 2_500)
    p.observe(T0 + 2_600, T0 + 2_590, True)  # a real outcome: the report is silent again
    assert not p.health_speaks(T0 + 2_600)


def test_refresh_logs_each_change_through_log_change(fast: ModuleType) -> None:
    class Logged(fast.ProcessorState):  # as rinha.processors.Processor does
        __slots__ = ("changes",)

        def __init__(self) -> None:
            super().__init__()
            self.changes: list[tuple[int, bool]] = []

        def _log_change(self, now: int, ok: bool) -> None:
            self.changes.append((now, ok))

    p = Logged()
    p.slow_ms = 100
    p.refresh(T0)
    p.observe(T0 + 1, T0 + 1, False)
    p.refresh(T0 + 2)
    p.refresh(T0 + 3)
    p.observe(T0 + 4, T0 + 4, True)
    p.refresh(T0 + 5)
    assert p.changes == [(T0 + 2, False), (T0 + 5, True)]


OPS = st.lists(
    st.tuples(
        st.sampled_from(["start", "end", "observe", "lookup", "refresh", "health"]),
        st.integers(0, 3),  # which payment; or an outcome
        st.integers(0, 3_000),  # ms after the previous step
        st.integers(0, 500),  # latency, or the health report's minimum, ms
        st.booleans(),
    ),
    max_size=40,
)
FIELDS = (
    "ok failing in_flight processed latency_ms last_outcome_ms evidence_sent_ms bad_sent_ms "
    "backoff_ms next_probe_ms last_probe_ms health_failing health_min_ms health_at_ms "
    "ok_since_ms unusable_since_ms"
).split()


def _replay(fast: ModuleType, ops: list[tuple[str, int, int, int, bool]]) -> list[object]:
    p = state(fast)
    payments = [
        fast.Payment(i, 100) for i in (ID, ID2, ID.replace("4", "5"), ID2.replace("5", "6"))
    ]
    now = T0
    seen: list[object] = []
    for op, which, step, ms, flag in ops:
        now += step
        payment = payments[which]
        if op == "start" and payment not in p.call_starts:
            p.start_call(payment, now - ms)
        elif op == "end" and payment in p.call_starts:
            p.end_call(payment, now, which)  # which: STORED, ANSWERED, FAILED or NO_EVIDENCE
        elif op == "observe":
            p.observe(now, now - ms, flag)
        elif op == "lookup":
            p.start_lookup()
            p.end_lookup(now, which)
        elif op == "refresh":
            seen.append(p.refresh(now))
        elif op == "health":
            p.apply_health(now, flag, ms)
        seen.append((p.usable(now), p.oldest_call_age_ms(now), p.unusable_for_ms(now)))
    return seen + [getattr(p, name) for name in FIELDS] + [sorted(p.call_starts.values())]


@settings(max_examples=300, deadline=None)
@given(ops=OPS)
def test_compiled_and_reference_states_agree(
    compiled: ModuleType, reference: ModuleType, ops: list[tuple[str, int, int, int, bool]]
) -> None:
    assert _replay(compiled, ops) == _replay(reference, ops)


# ---------------------------------------------------------------------------- AttemptFiler
class Desk:
    """A filer with its ledgers, journal and queues, and what it handed back."""

    def __init__(self, fast: ModuleType, folder: Path) -> None:
        self.fast = fast
        self.ledgers = (fast.Ledger(), fast.Ledger())
        self.journal = fast.Journal(str(folder / "journal.bin"))
        self.fresh = fast.PaymentQueue()
        self.pinned: tuple[deque[Any], deque[Any]] = (deque(), deque())
        self.others: list[tuple[Any, ...]] = []
        self.wakes = 0
        self.processors = (state(fast), state(fast))
        self.processors[1].index = 1
        self.filer = fast.AttemptFiler(
            self.ledgers,
            self.journal,
            self.fresh,
            self.pinned,
            lambda *outcome: self.others.append(outcome),
            self.wake,
            HEADS,
        )

    def wake(self) -> None:
        self.wakes += 1

    def records(self) -> list[tuple[int, str, int, int, int]]:
        self.journal.flush()
        return [r for r in self.journal.replay((self.fast.Ledger(), self.fast.Ledger()))]


@pytest.fixture
def desk(fast: ModuleType, tmp_path: Path) -> Any:
    d = Desk(fast, tmp_path)
    yield d
    d.journal.close()


def test_an_attempt_is_journaled_counted_and_its_request_made(desk: Desk) -> None:
    fast = desk.fast
    payment = fast.Payment(ID, 1990)
    call = desk.filer.attempt(payment, desk.processors[1], T0)
    assert payment.requested_at_ms == T0 and desk.processors[1].call_starts == {payment: T0}
    assert call.request == fast.payment_request(HEADS[1], ID, 1990, T0)
    assert desk.records() == [(fast.J_ATTEMPT, ID, 1990, 1, T0)]
    # pinned there: the identical request again, journaled once already
    desk.processors[1].end_call(payment, T0 + 5, fast.FAILED)
    payment.pin(1)
    again = desk.filer.attempt(payment, desk.processors[1], T0 + 9)
    assert again.request == call.request and payment.requested_at_ms == T0
    assert len(desk.records()) == 1


def test_a_stored_answer_is_filed_in_the_ledger_and_journal(desk: Desk) -> None:
    fast = desk.fast
    payment = fast.Payment(ID, 1990)
    p = desk.processors[0]
    desk.filer.attempt(payment, p, T0)(200, b"{}", None)
    assert desk.ledgers[0].summary(0, 2**62) == (1, 1990) and len(desk.ledgers[1]) == 0
    assert desk.records()[-1] == (fast.J_STORED, ID, 1990, 0, T0)
    assert p.in_flight == 0 and p.processed == 1 and not desk.others and desk.wakes == 0


def test_a_422_stores_only_a_payment_pinned_there(desk: Desk) -> None:
    fast = desk.fast
    pinned, fresh = fast.Payment(ID, 100), fast.Payment(ID2, 200)
    pinned.requested_at_ms = T0 - 50
    pinned.pin(1)
    p = desk.processors[1]
    desk.filer.attempt(pinned, p, T0)(422, b"", None)
    assert desk.ledgers[1].summary(0, 2**62) == (1, 100)  # under the pinned requestedAt
    assert desk.ledgers[1].summary(T0 - 50, T0 - 50) == (1, 100)
    desk.filer.attempt(fresh, p, T0)(422, b"dup", None)  # a client re-sent an id: not ours
    assert desk.others == [(fresh, p, 422, b"dup", None)] and p.in_flight == 1


def test_every_other_outcome_goes_to_the_dispatcher(desk: Desk) -> None:
    fast = desk.fast
    p = desk.processors[0]
    lost = ConnectionError("lost")
    for status, error in ((500, None), (429, None), (404, None), (0, lost), (200, lost)):
        payment = fast.Payment(ID, 100)
        desk.filer.attempt(payment, p, T0)(status, b"", error)
        assert desk.others[-1] == (payment, p, status, b"", error)
        p.end_call(payment, T0, fast.NO_EVIDENCE)  # as the dispatcher does
    assert len(desk.ledgers[0]) == 0 and p.processed == 0


def test_a_stored_answer_wakes_the_pump_only_when_a_payment_waits(desk: Desk) -> None:
    fast = desk.fast
    p = desk.processors[0]
    desk.filer.attempt(fast.Payment(ID, 1), p, T0)(200, b"", None)
    assert desk.wakes == 0
    desk.pinned[1].append(fast.Payment(ID2, 1))
    desk.filer.attempt(fast.Payment(ID, 1), p, T0)(200, b"", None)
    assert desk.wakes == 1
    desk.pinned[1].clear()
    desk.fresh.push(ID2, 1)
    desk.filer.attempt(fast.Payment(ID, 1), p, T0)(201, b"", None)
    assert desk.wakes == 2
