"""`CatchUp`: how many calls one dispatcher pump may start.

Every payment that arrived since the last pump brings its own call; on top of that, queued
payments (held through an outage, or retried) go out at RINHA_CATCH_UP_PER_S. When a processor
recovers, the backlog drains at that pace instead of at RINHA_LAUNCH_PER_TICK every tick: a
full-speed drain kept the processors and the instances busy enough to slow the clients' answers
(docs/PERFORMANCE.md, set E). A drain under way ends by RINHA_CATCH_UP_MS after it began: when
the backlog is too big for that at the base pace, the pace rises (a backlog built late in a run
must still be processed before the run ends).
"""

from __future__ import annotations

from .config import Config
from .fast import CatchUp

__all__ = ["CatchUp", "catch_up"]


def catch_up(config: Config) -> CatchUp:
    """The pace of RINHA_LAUNCH_PER_TICK, RINHA_CATCH_UP_PER_S, RINHA_CATCH_UP_MS and
    RINHA_DISPATCH_TICK_MS (`CatchUp` is compiled; its readable twin is in rinha._reference)."""
    return CatchUp(
        config.launch_per_tick, config.catch_up_per_s, config.catch_up_ms, config.dispatch_tick_ms
    )
