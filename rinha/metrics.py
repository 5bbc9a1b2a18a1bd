"""`GET /metrics`: the instance's counters as Prometheus families, read at scrape time.

A custom collector over the counters the instance keeps anyway: nothing is added to the
per-payment path. Base units (seconds, bytes), HELP and TYPE on every family.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from . import __version__
from .config import SETTINGS
from .processors import NAMES, now_ms

if TYPE_CHECKING:
    from .app import App

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Family = CounterMetricFamily | GaugeMetricFamily | InfoMetricFamily


class AppCollector(Collector):
    def __init__(self, app: App) -> None:
        self.app = app

    def collect(self) -> Iterator[Family]:
        app = self.app
        d = app.dispatcher
        for name, help_text, value in (
            ("rinha_accepted", "Payments accepted (202).", app.accepted),
            (
                "rinha_rejected",
                "Payments refused as invalid (400) or with another amount for a known id (422).",
                app.rejected,
            ),
            (
                "rinha_duplicates",
                "Payments whose id was already accepted by an instance (409).",
                app.duplicates,
            ),
            (
                "rinha_refused",
                "Payments refused for a full backlog or id table, or a journal "
                "that could not be written (503).",
                app.refused_full,
            ),
            (
                "rinha_processor_duplicates",
                "First attempts a processor answered 422 (a client "
                "re-used an id): nothing recorded.",
                d.processor_duplicates,
            ),
            ("rinha_dropped", "Payments a processor refused for good.", d.dropped),
            (
                "rinha_retries",
                "Attempts sent again after a failure or an unknown outcome.",
                d.retries,
            ),
            ("rinha_settled", "Pinned payments found stored by a lookup.", d.settled),
        ):
            yield CounterMetricFamily(name, help_text, value=value)
        processed = CounterMetricFamily(
            "rinha_processed",
            "Payments recorded in the ledger, per processor.",
            labels=["processor"],
        )
        usable = GaugeMetricFamily(
            "rinha_processor_usable",
            "1 if the processor is used for new payments now.",
            labels=["processor"],
        )
        latency = GaugeMetricFamily(
            "rinha_processor_latency_seconds",
            "What a new call to the processor would take, as far as we know.",
            labels=["processor"],
        )
        now = now_ms()
        for p in app.processors:
            processed.add_metric([NAMES[p.index]], p.processed)
            usable.add_metric([NAMES[p.index]], int(p.usable(now)))
            latency.add_metric([NAMES[p.index]], p.effective_latency_ms(now) / 1000)
        yield from (processed, usable, latency)
        gauges: tuple[tuple[str, str, float], ...] = (
            ("rinha_backlog", "Payments queued, waiting for a processor call.", d.backlog),
            ("rinha_in_flight", "Processor calls out now.", d.in_flight),
            (
                "rinha_in_doubt",
                "Pinned payments: an attempt's outcome is unknown; they wait for that processor.",
                d.in_doubt,
            ),
            (
                "rinha_ledger_entries",
                "Payments in this instance's ledgers.",
                len(app.ledgers[0]) + len(app.ledgers[1]),
            ),
            ("rinha_journal_bytes", "Size of this instance's journal.", app.journal.size),
            ("rinha_ids", "Ids in the cluster's shared id table.", len(app.ids)),
            (
                "rinha_ids_capacity",
                "Ids the shared id table holds at most (RINHA_MAX_IDS).",
                app.ids.capacity,
            ),
            (
                "rinha_peer_connections",
                "Open connections to the peers.",
                app.cluster.open_connections,
            ),
            (
                "rinha_loop_lag_seconds",
                "How late the event loop woke up, latest sample.",
                app.loop_lag_ms / 1000,
            ),
        )
        for name, help_text, level in gauges:
            yield GaugeMetricFamily(name, help_text, value=level)
        build = InfoMetricFamily("rinha_build", "Version and hot-path implementation.")
        implementation = getattr(app.fast, "IMPLEMENTATION", None) or (  # rinha.fast has it
            "reference" if app.fast.__name__.endswith("_reference") else "compiled"
        )
        build.add_metric([], {"version": __version__, "implementation": implementation})
        yield build
        config = InfoMetricFamily("rinha_config", "The effective settings (RINHA_*).")
        config.add_metric(
            [],
            {
                name: ("(set)" if value else "")
                if name == "admin_token"
                else str(",".join(value) if isinstance(value, tuple) else value)
                for name, value in ((n, getattr(app.config, n)) for n, _, _, _ in SETTINGS)
            },
        )
        yield config


def registry_for(app: App) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AppCollector(app))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
