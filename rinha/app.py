"""The state of one instance: ledgers, seen ids, dispatcher, cluster, counters."""

from __future__ import annotations

import asyncio
import time
from types import ModuleType

from .cluster import Cluster, Counts
from .config import Config
from .dispatcher import Dispatcher
from .processors import DEFAULT, FALLBACK, NAMES, Processor


class App:
    def __init__(self, config: Config, fast: ModuleType) -> None:
        self.config = config
        self.fast = fast  # rinha._fast or rinha._reference (see rinha.fast)
        self.processors = (Processor(DEFAULT, config.default_url),
                           Processor(FALLBACK, config.fallback_url))
        self.ledgers = (fast.Ledger(), fast.Ledger())  # per processor: (epoch ms, int cents)
        self.ids = fast.IdSet()  # every correlationId accepted since the last purge
        self.dispatcher = Dispatcher(config, self.processors, self.ledgers, fast.payment_body)
        self.cluster = Cluster(config.peers, config.peer_timeout_ms)
        self.accepted = 0
        self.rejected = 0
        self.duplicates = 0
        self.loop_lag_ms = 0.0

    def local_counts(self, from_ms: int, to_ms: int) -> Counts:
        d_count, d_cents = self.ledgers[DEFAULT].summary(from_ms, to_ms)
        f_count, f_cents = self.ledgers[FALLBACK].summary(from_ms, to_ms)
        return d_count, d_cents, f_count, f_cents

    async def close(self) -> None:
        await self.dispatcher.close()
        for p in self.processors:
            p.pool.close()
        self.cluster.close()

    def purge(self) -> None:
        for ledger in self.ledgers:
            ledger.clear()
        self.ids.clear()
        self.dispatcher.clear()

    async def watch_loop_lag(self, interval_s: float = 0.1) -> None:
        """How late the event loop wakes up: anything stalling it shows up in p99."""
        while True:
            before = time.perf_counter()
            await asyncio.sleep(interval_s)
            lag = (time.perf_counter() - before - interval_s) * 1000
            self.loop_lag_ms = max(lag, 0.0)

    def metrics_text(self) -> str:
        d = self.dispatcher
        lines = [
            f"rinha_accepted_total {self.accepted}",
            f"rinha_rejected_total {self.rejected}",
            f"rinha_duplicates_total {self.duplicates}",
            f"rinha_processor_duplicates_total {d.processor_duplicates}",
            f"rinha_dropped_total {d.dropped}",
            f"rinha_retries_total {d.retries}",
            f"rinha_settled_total {d.settled}",
            f"rinha_backlog {d.backlog}",
            f"rinha_in_flight {d.in_flight}",
            f"rinha_ledger_entries {len(self.ledgers[0]) + len(self.ledgers[1])}",
            f"rinha_loop_lag_ms {self.loop_lag_ms:.3f}",
        ]
        now = int(time.time() * 1000)
        for p in self.processors:
            label = f'{{processor="{NAMES[p.index]}"}}'
            lines.append(f"rinha_processed_total{label} {p.processed}")
            lines.append(f"rinha_processor_usable{label} {int(p.usable(now, self.config.slow_ms))}")
            lines.append(f"rinha_processor_latency_ms{label} {p.effective_latency_ms(now):.1f}")
        return "\n".join(lines) + "\n"
