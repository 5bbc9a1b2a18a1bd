"""Payments from acceptance to the ledger: the queue, the routing decision, calls and retries.

Invariants:
- a payment is recorded once, in the ledger of the processor that confirmed it, under the exact
  `requestedAt` (epoch ms) that processor was sent;
- once an attempt's outcome is unknown (timeout, connection lost after sending) the payment is
  *pinned* to that processor for good and retried there with the identical body (same
  `requestedAt`), so a 2xx or a 422 on the retry both mean "stored under that `requestedAt`".
  It is never sent to the other processor: the real processor finishes an admitted request
  even after its caller gave up, however late, so no answer (404 included) can prove that
  the attempt will not land. A pinned payment waits for its processor, however long;
- a pinned payment whose processor stays unusable for RINHA_SETTLE_AFTER_MS is looked up there
  (`GET /payments/{id}`, which answers even while payments fail): found -> recorded under that
  attempt's `requestedAt`; not found -> still pinned (it may be inside the processor yet);
- a 422 on a payment never sent before is a client duplicate: nothing to record;
- every attempt is in the journal before its request leaves, and every outcome after it (an
  outcome lost with the process is learnt again by the pinned retry).
"""

from __future__ import annotations

import asyncio
import logging
from types import ModuleType
from typing import TYPE_CHECKING

from .config import Config
from .fast import J_ACCEPT, J_ATTEMPT, DispatcherCore, Payment, PaymentQueue
from .http_client import ConnectFailed, OutcomeUnknown, build_request
from .pacing import catch_up
from .processors import (
    ANSWERED,
    DEFAULT,
    FAILED,
    FALLBACK,
    NO_EVIDENCE,
    STORED,
    Processor,
    now_ms,
)
from .recovery import UNPINNED, Pending
from .routing import choose_processor, may_probe, next_look_ms

if TYPE_CHECKING:
    from .fast import AttemptCall, Journal, Ledger
    from .http_client import HttpPool

log = logging.getLogger("rinha.dispatcher")

COMPACT_MIN_BYTES = 64 << 20  # the journal is rewritten once past this and twice its last size


class Dispatcher(DispatcherCore):
    """The queue, the pump and the outcomes. Its hot half (`DispatcherCore`, compiled in
    rinha._fast) has the backlog's size, `arrived` and `_wake`: what a request touches."""

    def __init__(
        self,
        config: Config,
        processors: tuple[Processor, Processor],
        ledgers: tuple[Ledger, Ledger],
        fast: ModuleType,
        journal: Journal,
        fresh: PaymentQueue | None = None,
    ) -> None:
        super().__init__()  # DispatcherCore: pinned, the pump's timer and loop, not closed
        self.config = config
        self.processors = processors
        self.ledgers = ledgers  # per processor index
        self._fast = fast  # rinha._fast or rinha._reference: the one the journal and ledgers are
        self.journal = journal
        self._compact_at = max(COMPACT_MIN_BYTES, 2 * journal.size)  # journal bytes
        self._lookups: set[Payment] = set()  # pinned payments being looked up
        # accepted, never attempted or known not stored: routed by choose_processor
        self.fresh = fast.PaymentQueue() if fresh is None else fresh
        self.retries = 0
        self.processor_duplicates = 0  # 422 on a first attempt: a client re-sent an id
        self.dropped = 0  # rejected by a processor for good (4xx other than 422/429)
        self.settled = 0  # pinned payments settled by asking the processor
        self._tasks: set[asyncio.Task[None]] = set()  # settle lookups out (rare: awaited)
        self._timeout_s = config.call_timeout_ms / 1000
        self._tick_s = config.dispatch_tick_ms / 1000
        self._pacing = catch_up(config)  # new arrivals go out at once, a backlog at a pace
        # files each attempt's answer: "stored" in C, every other outcome via _attempt_done
        self._filer = fast.AttemptFiler(
            ledgers,
            journal,
            self.fresh,
            self.pinned,
            self._attempt_done,
            self._wake,
            tuple(p.payments_request_head for p in processors),
        )

    # ------------------------------------------------------------------ intake
    def submit(self, correlation_id: str, cents: int) -> None:
        self.fresh.push(correlation_id, cents)
        self.arrived(1)

    @property
    def in_flight(self) -> int:
        """Calls out now: payment attempts and settle lookups, to either processor."""
        d, f = self.processors
        return d.in_flight + f.in_flight

    def clear(self) -> None:
        """Drop what is queued (purge); calls in flight still finish and are recorded."""
        self.fresh.clear()
        for queue in self.pinned:
            queue.clear()

    def restore(self, pending: Pending) -> None:
        """Queue a payment recovered from the journal (before the instance listens)."""
        if pending.pinned == UNPINNED:
            self.fresh.push(pending.correlation_id, pending.cents)
        else:
            payment = self._fast.Payment(pending.correlation_id, pending.cents)
            payment.requested_at_ms = pending.requested_at_ms
            payment.pin(pending.pinned)
            self.pinned[pending.pinned].append(payment)

    @property
    def in_doubt(self) -> int:
        """Pinned payments (an attempt's outcome is unknown): queued, looked up or out again.
        Counted when asked (a scrape), not kept up to date per payment."""
        out = sum(1 for proc in self.processors for p in proc.call_starts if p.pinned != UNPINNED)
        return len(self.pinned[0]) + len(self.pinned[1]) + len(self._lookups) + out

    def pending_records(self) -> list[tuple[int, str, int, int, int]]:
        """Journal records that describe every payment not yet settled (for compaction)."""
        records: list[tuple[int, str, int, int, int]] = []
        attempts: list[tuple[Payment, int]] = [(p, p.pinned) for q in self.pinned for p in q]
        attempts += [(p, p.pinned) for p in self._lookups]
        for proc in self.processors:  # in flight: the attempt out now
            attempts += [(p, proc.index) for p in proc.call_starts]
        for correlation_id, cents in self.fresh.items():
            records.append((J_ACCEPT, correlation_id, cents, 0, 0))
        for payment, processor in attempts:
            records.append((J_ACCEPT, payment.correlation_id, payment.cents, 0, 0))
            records.append(
                (
                    J_ATTEMPT,
                    payment.correlation_id,
                    payment.cents,
                    processor,
                    payment.requested_at_ms,
                )
            )
        return records

    def flush_journal(self) -> None:
        """Records held back (the journal could not grow) go in; a large journal is compacted."""
        journal = self.journal
        journal.flush()
        if journal.size >= self._compact_at:
            started = now_ms()
            journal.compact(self.ledgers, self.pending_records())
            self._compact_at = max(COMPACT_MIN_BYTES, 2 * journal.size)
            log.info("journal compacted to %d bytes in %d ms", journal.size, now_ms() - started)

    # ------------------------------------------------------------------ pump
    def wake(self) -> None:
        """Pump on the next tick (recovered payments wait for no arrival)."""
        self._wake()

    def _pump(self) -> None:
        """Start the calls that routing, capacity and pacing allow, a bounded number per tick.

        `_wake` (DispatcherCore) schedules it. Payments are sent in small batches, once per tick,
        rather than one by one as they arrive: every processor answer wakes this process, and
        fewer, grouped wake-ups leave the event loop free for the clients (docs/PERFORMANCE.md,
        "Why the code is so").
        """
        self._pump_timer = None
        config = self.config
        now = now_ms()
        d, f = self.processors
        d.refresh(now)
        f.refresh(now)
        assert self._loop is not None
        queued = self.backlog
        allowed, arrived = self._pacing.budget(self._loop.time(), queued)
        budget = allowed
        attempt = self._filer.attempt  # journals the attempt, counts it out, makes its request
        launches: list[tuple[HttpPool, AttemptCall]] = []
        max_in_flight = config.max_in_flight
        for p in self.processors if self.pinned[0] or self.pinned[1] else ():
            queue = self.pinned[p.index]
            while (
                queue
                and budget
                and d.in_flight + f.in_flight < max_in_flight
                and (p.ok or may_probe(p, now))
            ):
                payment = queue.popleft()
                settle_after = config.settle_after_ms
                if (
                    not p.ok
                    and now - payment.requested_at_ms >= settle_after
                    and now - payment.checked_ms >= settle_after
                ):
                    self._launch_settle(payment, p, now)
                else:
                    launches.append((p.pool, attempt(payment, p, now)))
                budget -= 1
        fresh = self.fresh
        while fresh and budget:
            target = choose_processor(d, f, now, config, d.in_flight + f.in_flight)
            if target is None:
                break
            payment = fresh.pop_payment()
            p = self.processors[target]
            launches.append((p.pool, attempt(payment, p, now)))
            budget -= 1
        if launches:
            self.journal.flush()  # every attempt is on disk before its request leaves
            timeout_s = self._timeout_s
            for pool, call in launches:
                pool.send(call.request, timeout_s, call)  # the filer files its outcome
        started = allowed - budget
        backlog = queued - started  # each call started (or lookup) took one queued payment
        self._pacing.spent(allowed, started, arrived, backlog)
        if not backlog:
            return
        if not budget:
            self._wake()  # more to do: next tick, after the clients' I/O
        elif self.in_flight < config.max_in_flight:
            # held: look again after the earliest back-off (a finished call also wakes us)
            self._wake(next_look_ms(self.processors, now, config) / 1000)

    def _launch_settle(self, payment: Payment, p: Processor, now: int) -> None:
        p.start_lookup()
        payment.checked_ms = now
        self._lookups.add(payment)
        task = asyncio.get_running_loop().create_task(self._settle(payment, p))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ one call
    def _attempt_done(
        self,
        payment: Payment,
        p: Processor,
        status: int,
        _answer: bytes,
        error: ConnectionError | None,
    ) -> None:
        """Every outcome of an attempt but "stored" (which the AttemptFiler files itself: the
        ledger, the journal's STORED, `end_call`)."""
        now = now_ms()
        journal = self.journal
        if status == 422:  # on an attempt not pinned here: a client re-sent an id
            self.processor_duplicates += 1
            journal.finished(payment.correlation_id, payment.cents)
            p.end_call(payment, now, ANSWERED)
        elif isinstance(error, OutcomeUnknown):  # it may have been stored: pin it there
            payment.pin(p.index)
            p.end_call(payment, now, FAILED)
            self._requeue(payment)
        elif status == 429 or status >= 500 or status == 0:
            # this attempt is known not stored (an earlier unknown one, if pinned, may be)
            if payment.pinned == UNPINNED:
                journal.released(payment.correlation_id, payment.cents, p.index)
            # 429: the processor's queue is full, nothing to learn
            p.end_call(payment, now, NO_EVIDENCE if status == 429 else FAILED)
            self._requeue(payment)
        else:
            self.dropped += 1
            p.end_call(payment, now, NO_EVIDENCE)
            journal.finished(payment.correlation_id, payment.cents)
            log.error(
                "processor %s refused payment %s for good with HTTP %d",
                p.name,
                payment.correlation_id,
                status,
            )
        if self.backlog:  # something waits for this call's slot or evidence: pump next tick
            self._wake()

    async def _settle(self, payment: Payment, p: Processor) -> None:
        """Was the pinned payment's unknown attempt stored? Ask the processor."""
        request = build_request("GET", f"/payments/{payment.correlation_id}", p.pool.address)
        status = 0
        try:
            status, _ = await p.pool.request(request, self._timeout_s)
        except (ConnectFailed, OutcomeUnknown):
            pass
        except BaseException:  # cancelled (App.close): no longer out, and nothing learnt
            p.end_lookup(now_ms(), NO_EVIDENCE)
            raise
        finally:
            self._lookups.discard(payment)
        now = now_ms()
        if status == 200:
            self.ledgers[p.index].add(payment.requested_at_ms, payment.cents)
            self.journal.stored(
                payment.correlation_id, payment.cents, p.index, payment.requested_at_ms
            )
            p.end_lookup(now, STORED)
            self.settled += 1
            log.info(
                "settled payment %s: stored by %s at %d",
                payment.correlation_id,
                p.name,
                payment.requested_at_ms,
            )
        elif status == 404:  # not yet, or never: it stays pinned and waits for its processor
            p.end_lookup(now, ANSWERED)
            self._requeue(payment)
        else:
            p.end_lookup(now, FAILED)
            self._requeue(payment)
        if self.backlog:  # as after an attempt: pump only for something queued
            self._wake()

    def _requeue(self, payment: Payment) -> None:
        self.retries += 1
        if payment.pinned == UNPINNED:
            self.fresh.push_front(payment.correlation_id, payment.cents)
        else:
            self.pinned[payment.pinned].append(payment)

    # ------------------------------------------------------------------ shutdown
    async def drain(self, timeout_s: float) -> int:
        """Wait for the queue and the calls in flight to finish; return what was left
        unsettled (the caller then stops everything with App.close)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._pacing.stop()  # shutting down: send what is queued as fast as allowed
        if self.backlog:
            self._wake(0)
        while (self.backlog or self.in_flight) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        self.journal.flush()
        return self.backlog + self.in_flight

    async def close(self) -> None:
        """Stop pumping and cancel the settle lookups still out (payment attempts still out
        fail when their processor's pool is closed: see App.close)."""
        self._closed = True
        if self._pump_timer is not None:
            self._pump_timer.cancel()
            self._pump_timer = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["Dispatcher", "Payment", "DEFAULT", "FALLBACK", "UNPINNED"]
