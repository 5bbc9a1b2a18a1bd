"""What we know about each Payment Processor: its connection pool, health and latency.

A `Processor` owns its state: the dispatcher tells it when a call starts and how it ended
(`start_call` / `end_call`, `start_lookup` / `end_lookup`), the health poller what the shared
report says (`apply_health`), and reads `ok`, `in_flight`, `unusable_for_ms()` after `refresh`;
nothing else writes it. That state and its rules are `ProcessorState` (rinha.fast: compiled, with
its readable twin in rinha._reference), so that the pump reads it and an answer updates it
without a Python frame; a `Processor` adds its connection pool, its requests and the logging.
"""

from __future__ import annotations

import logging

from .address import Address
from .config import Config
from .fast import ANSWERED, FAILED, NO_EVIDENCE, STORED, ProcessorState, now_ms
from .http_client import HttpPool, build_request

log = logging.getLogger("rinha.processors")

DEFAULT = 0
FALLBACK = 1
NAMES = ("default", "fallback")
STATE_LOG_EVERY_MS = 5_000  # a flapping processor logs its changes at most this often

# how a call ended, as evidence about it (end_call / end_lookup): STORED (in its books, counted
# as processed), ANSWERED (nothing new stored: a 422 duplicate, a lookup's 404), FAILED (an error
# status, a timeout, a lost connection), NO_EVIDENCE (nothing of its health: a 429, a 4xx)
__all__ = [
    "ANSWERED",
    "DEFAULT",
    "FAILED",
    "FALLBACK",
    "NO_EVIDENCE",
    "STORED",
    "Processor",
    "now_ms",  # wall-clock epoch ms: the clock the processors file `requestedAt` with
]


class Processor(ProcessorState):
    """One processor: pool, real-outcome state, last shared health report.

    Real outcomes (status codes, latencies, timeouts) are the primary signal; the health
    endpoint only speaks for a processor we have not called recently.
    """

    __slots__ = (
        "name",
        "pool",
        "payments_request_head",
        "health_request",
        "logged_ms",
        "changes_unlogged",
    )

    def __init__(self, index: int, url: str, config: Config | None = None) -> None:
        super().__init__()
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
        self.logged_ms = 0  # epoch ms of the last state change logged
        self.changes_unlogged = 0  # state changes since then, not logged (rate limit)

    def effective_latency_ms(self, now: int) -> float:
        """What a new call would take, as far as we know (ms)."""
        latency = max(self.latency_ms, float(self.oldest_call_age_ms(now)))
        if self.health_speaks(now):
            latency = max(latency, float(self.health_min_ms))
        return latency

    def is_failing(self, now: int) -> bool:
        return self.health_failing if self.health_speaks(now) else self.failing

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
