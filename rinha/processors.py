"""What we know about each Payment Processor: its connection pool, health and latency.

A `Processor` owns its state: the dispatcher tells it when a call starts and how it ended
(`start_call` / `end_call`, `start_lookup` / `end_lookup`), and reads `ok`, `in_flight`,
`unusable_for_ms()`; nothing else writes it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from .address import Address
from .config import Config
from .http_client import HttpPool, build_request

if TYPE_CHECKING:
    from .payment import Payment

log = logging.getLogger("rinha.processors")

DEFAULT = 0
FALLBACK = 1
NAMES = ("default", "fallback")
STATE_LOG_EVERY_MS = 5_000  # a flapping processor logs its changes at most this often

# how a call ended, as evidence about the processor (end_call / end_lookup)
STORED = 0  # the payment is in its books: an answer, counted as processed
ANSWERED = 1  # an answer that stored nothing new (a 422 duplicate; a lookup's 404)
FAILED = 2  # an error status, a timeout or a lost connection
NO_EVIDENCE = 3  # says nothing of its health (429: its queue is full; a 4xx refusal)


def now_ms() -> int:
    """Wall-clock epoch ms: the clock the processors file `requestedAt` with."""
    return time.time_ns() // 1_000_000


class Processor:
    """One processor: pool, real-outcome state, last shared health report.

    Real outcomes (status codes, latencies, timeouts) are the primary signal; the health
    endpoint only speaks for a processor we have not called recently.
    """

    __slots__ = (
        "index",
        "name",
        "slow_ms",
        "retry_min_ms",
        "retry_max_ms",
        "pool",
        "payments_request_head",
        "health_request",
        "failing",
        "unusable_since_ms",
        "latency_ms",
        "last_outcome_ms",
        "health_failing",
        "health_min_ms",
        "health_at_ms",
        "in_flight",
        "call_starts",
        "next_probe_ms",
        "backoff_ms",
        "processed",
        "ok",
        "evidence_sent_ms",
        "bad_sent_ms",
        "ok_since_ms",
        "last_probe_ms",
        "logged_ms",
        "changes_unlogged",
    )

    def __init__(self, index: int, url: str, config: Config | None = None) -> None:
        config = config or Config()
        self.index = index
        self.name = NAMES[index]
        self.slow_ms = config.slow_ms  # a call slower than this makes it unusable
        self.retry_min_ms = config.retry_min_ms  # back-off after a failure: first, ms
        self.retry_max_ms = config.retry_max_ms  # back-off cap, and the probe spacing, ms
        self.pool = HttpPool(url)
        address: Address = self.pool.address
        self.payments_request_head = (
            f"POST /payments HTTP/1.1\r\nHost: {address.host_header}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode("latin-1")
        self.health_request = build_request("GET", "/payments/service-health", address)
        self.failing = False
        self.unusable_since_ms: int | None = None  # epoch ms; None while usable
        self.latency_ms = 0.0  # duration of the latest answered call, ms
        self.last_outcome_ms = 0  # epoch ms of the last real answer or timeout
        self.health_failing = False
        self.health_min_ms = 0
        self.health_at_ms = 0
        self.in_flight = 0
        # payment attempt out -> epoch ms sent (one attempt per payment; insertion ordered)
        self.call_starts: dict[Payment, int] = {}
        self.next_probe_ms = 0  # epoch ms before which a failing processor is not retried
        self.backoff_ms = 0
        self.processed = 0
        self.ok = True  # usable at the last refresh(); routing reads this, not usable()
        self.ok_since_ms = 0  # epoch ms at which `ok` last became true
        self.evidence_sent_ms = 0  # send time of the call whose answer set `failing`/latency
        self.bad_sent_ms = 0  # send time of the newest call that showed it unusable
        self.last_probe_ms = 0  # epoch ms of the last probe sent while unusable
        self.logged_ms = 0  # epoch ms of the last state change logged
        self.changes_unlogged = 0  # state changes since then, not logged (rate limit)

    def oldest_call_age_ms(self, now: int) -> int:
        """Age of the oldest call still out that was sent after the newest evidence (calls
        sent before it, e.g. probes still waiting on a failing processor, are old news)."""
        for started in self.call_starts.values():
            if started >= self.evidence_sent_ms:
                return now - started
        return 0

    def _health_speaks(self, now: int) -> bool:
        """No real outcome for 2 s, and a health report newer than the last one."""
        return now - self.last_outcome_ms > 2_000 and self.health_at_ms > self.last_outcome_ms

    def effective_latency_ms(self, now: int) -> float:
        """What a new call would take, as far as we know (ms)."""
        latency = max(self.latency_ms, float(self.oldest_call_age_ms(now)))
        if self._health_speaks(now):
            latency = max(latency, float(self.health_min_ms))
        return latency

    def is_failing(self, now: int) -> bool:
        return self.health_failing if self._health_speaks(now) else self.failing

    def usable(self, now: int) -> bool:
        """Not failing, and `effective_latency_ms(now) <= slow_ms` (each of its terms, checked
        in turn: once per processor per dispatcher tick)."""
        speaks = self._health_speaks(now)
        if self.health_failing if speaks else self.failing:
            return False
        slow = self.slow_ms
        if self.latency_ms > slow or (speaks and self.health_min_ms > slow):
            return False
        return not self.call_starts or self.oldest_call_age_ms(now) <= slow

    def refresh(self, now: int) -> bool:
        """Update `ok` and `unusable_since_ms` (once per dispatcher turn); return `ok`."""
        ok = self.usable(now)
        if ok != self.ok:
            self._log_change(now, ok)
        if ok:
            if not self.ok:
                self.ok_since_ms = now
            self.unusable_since_ms = None
        else:
            if self.unusable_since_ms is None:
                self.unusable_since_ms = now
            age = self.oldest_call_age_ms(now)
            if age > self.slow_ms:  # a call out for that long is evidence of slowness by itself
                self.bad_sent_ms = max(self.bad_sent_ms, now - age)
        self.ok = ok
        return ok

    def _log_change(self, now: int, ok: bool) -> None:
        """WARNING when it becomes unusable, INFO when it recovers; at most one line per
        STATE_LOG_EVERY_MS, saying how many changes were not logged in between."""
        if now - self.logged_ms < STATE_LOG_EVERY_MS:
            self.changes_unlogged += 1
            return
        since = (
            f" ({self.changes_unlogged} changes not logged since the last line)"
            if self.changes_unlogged
            else ""
        )
        self.logged_ms = now
        self.changes_unlogged = 0
        if ok:
            log.info(
                "processor %s usable again: latency %.0f ms%s",
                self.name,
                self.effective_latency_ms(now),
                since,
            )
        elif self.is_failing(now):
            log.warning("processor %s unusable: failing%s", self.name, since)
        else:
            log.warning(
                "processor %s unusable: too slow (%.0f ms per call)%s",
                self.name,
                self.effective_latency_ms(now),
                since,
            )

    def unusable_for_ms(self, now: int) -> int:
        return 0 if self.unusable_since_ms is None else now - self.unusable_since_ms

    # ------------------------------------------------------------------ calls
    def start_call(self, payment: Payment, now: int) -> None:
        """A payment attempt leaves now (a probe, while unusable)."""
        if not self.ok:
            self.last_probe_ms = now
        self.in_flight += 1
        self.call_starts[payment] = now

    def end_call(self, payment: Payment, now: int, outcome: int) -> None:
        """The attempt's outcome came back (STORED, ANSWERED, FAILED or NO_EVIDENCE)."""
        sent_ms = self.call_starts.pop(payment)
        self.in_flight -= 1
        if outcome == STORED:
            self.processed += 1
        if outcome != NO_EVIDENCE:
            self.observe(now, sent_ms, outcome != FAILED)

    def start_lookup(self) -> None:
        """A settle lookup (GET /payments/{id}) leaves: it counts as a call out, not as a
        latency sample (the lookup endpoint answers even while payments fail)."""
        self.in_flight += 1

    def end_lookup(self, now: int, outcome: int) -> None:
        """STORED: found, counted as processed; FAILED: evidence of failure; else nothing."""
        self.in_flight -= 1
        if outcome == STORED:
            self.processed += 1
        elif outcome == FAILED:
            self.observe(now, now, False)

    def observe(self, now: int, sent_ms: int, ok: bool) -> None:
        """A real outcome of a call sent at `sent_ms`: an answer (ok = stored or settled)
        or a failure. Newest evidence wins: the answer to a call sent before the one that
        set the current state says nothing new (a stale 500 must not undo a recovery)."""
        latency_ms = now - sent_ms
        if not ok or latency_ms > self.slow_ms:
            self.bad_sent_ms = max(self.bad_sent_ms, sent_ms)
        if sent_ms < self.evidence_sent_ms:
            return
        self.evidence_sent_ms = sent_ms
        self.last_outcome_ms = now
        # the latest answer, not an average: the judge switches delays in steps, and a
        # processor that got fast again must be seen as fast after one probe
        self.latency_ms = float(latency_ms)
        if ok:
            self.failing = False
            self.backoff_ms = 0
            self.next_probe_ms = 0
        else:
            self.failing = True
            self.backoff_ms = min(self.retry_max_ms, max(self.retry_min_ms, self.backoff_ms * 2))
            self.next_probe_ms = now + self.backoff_ms

    def apply_health(self, now: int, failing: bool, min_response_ms: int) -> None:
        self.health_failing = failing
        self.health_min_ms = min_response_ms
        self.health_at_ms = now
