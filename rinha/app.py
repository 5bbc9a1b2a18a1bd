"""The state of one instance: ledgers, journal, shared id table, dispatcher, cluster, counters."""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from types import ModuleType
from typing import TYPE_CHECKING

from .answers import INTAKE_ANSWERS
from .cluster import Cluster, Counts
from .config import Config
from .dispatcher import Dispatcher
from .processors import DEFAULT, FALLBACK, Processor
from .recovery import Recovered, replay

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .fast import Journal, Ledger, PaymentIntake, PaymentQueue, SharedIdSet

log = logging.getLogger("rinha.app")


class App:
    def __init__(self, config: Config, fast: ModuleType) -> None:
        self.config = config
        self.fast = fast  # rinha._fast or rinha._reference (see rinha.fast)
        self.processors = (
            Processor(DEFAULT, config.default_url, config),
            Processor(FALLBACK, config.fallback_url, config),
        )
        # per processor: (epoch ms, int cents)
        self.ledgers: tuple[Ledger, Ledger] = (fast.Ledger(), fast.Ledger())
        os.makedirs(config.data_dir, mode=0o700, exist_ok=True)
        # every correlationId accepted by any instance since the last purge (shared file)
        self.ids: SharedIdSet = fast.SharedIdSet(
            config.ids_file, config.max_ids, config.instance_id
        )
        # this instance's payments, on disk before each 202 (rinha.recovery replays it)
        self.journal: Journal = fast.Journal(
            config.journal_path, sync=config.journal_fsync == "always"
        )
        # accepted payments not yet attempted, as C records: the intake and the routes queue
        # on it, the dispatcher sends from it
        queue: PaymentQueue = fast.PaymentQueue()
        self.dispatcher = Dispatcher(
            config, self.processors, self.ledgers, fast, self.journal, queue
        )
        # POST /payments in C (rinha.protocol feeds it); it also keeps the answer counters
        self.intake: PaymentIntake = fast.PaymentIntake(
            self.ids, self.journal, queue, config.max_body_bytes, INTAKE_ANSWERS
        )
        self.cluster = Cluster(config.peers, config.peer_timeout_ms, config.peer_connections)
        self.loop_lag_ms = 0.0
        self._metrics: CollectorRegistry | None = None  # made at the first scrape

    # answers given, by kind: the intake's counters (the routes count there too)
    @property
    def accepted(self) -> int:
        return self.intake.accepted

    @property
    def rejected(self) -> int:
        return self.intake.rejected

    @property
    def duplicates(self) -> int:
        return self.intake.duplicates

    @property
    def refused_full(self) -> int:
        """503: backlog or id table full, journal write failed."""
        return self.intake.refused_full

    def recover(self) -> Recovered:
        """Rebuild the ledgers, the queue and the pins from the journal, then compact it.

        Runs before the instance listens: until then its peers' summaries get no answer from
        it (503), never a partial total.
        """
        started = time.perf_counter()
        records = self.journal.replay(self.ledgers)
        recovered = replay(records, self.ids, self.ledgers)
        for payment in recovered.payments:
            self.dispatcher.restore(payment)
        self.journal.compact(self.ledgers, self.dispatcher.pending_records())
        seconds = time.perf_counter() - started
        if recovered.records:
            log.info(
                "recovered from %s: %d records, %d processed, %d queued, %d pinned, "
                "%d dropped as duplicates, in %.3f s",
                self.config.journal_path,
                recovered.records,
                len(self.ledgers[0]) + len(self.ledgers[1]),
                recovered.queued,
                recovered.pinned,
                recovered.dropped,
                seconds,
            )
        return recovered

    def token_ok(self, token: bytes | None) -> bool:
        """May a request with this X-Rinha-Token purge? Anyone, while RINHA_ADMIN_TOKEN is
        unset (the contest's load test sends none)."""
        expected = self.config.admin_token
        return not expected or (token is not None and hmac.compare_digest(token, expected.encode()))

    def local_counts(self, from_ms: int, to_ms: int) -> Counts:
        d_count, d_cents = self.ledgers[DEFAULT].summary(from_ms, to_ms)
        f_count, f_cents = self.ledgers[FALLBACK].summary(from_ms, to_ms)
        return d_count, d_cents, f_count, f_cents

    async def close(self) -> None:
        await self.dispatcher.close()
        for p in self.processors:
            p.pool.close()
        self.cluster.close()
        self.journal.close()  # what is not settled stays there for the next start

    def purge(self) -> None:
        for ledger in self.ledgers:
            ledger.clear()
        self.ids.clear()
        self.dispatcher.clear()
        self.journal.clear()

    async def watch_loop_lag(self, interval_s: float = 0.1) -> None:
        """How late the event loop wakes up (anything stalling it shows up in p99); on the
        same beat, the journal's upkeep (held-back records, compaction, the fsync period)."""
        sync_s = _sync_interval_s(self.config.journal_fsync)
        synced = time.perf_counter()
        while True:
            before = time.perf_counter()
            await asyncio.sleep(interval_s)
            now_s = time.perf_counter()
            lag = (now_s - before - interval_s) * 1000
            self.loop_lag_ms = max(lag, 0.0)
            self.dispatcher.flush_journal()
            if sync_s and now_s - synced >= sync_s:
                synced = now_s
                self.journal.sync()

    def metrics(self) -> bytes:
        """The Prometheus exposition of this instance (rinha.metrics)."""
        from .metrics import exposition, registry_for

        if self._metrics is None:
            self._metrics = registry_for(self)
        return exposition(self._metrics)


def _sync_interval_s(policy: str) -> float:
    """RINHA_JOURNAL_FSYNC as a period in s (0: none; 'always' syncs on each write)."""
    return int(policy) / 1000 if policy.isdigit() else 0.0
