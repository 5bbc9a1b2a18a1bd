"""Polling `GET /payments/service-health` within its budget, shared by the whole cluster.

The processors answer one call per 5-second window per processor, for all our instances
together. Instances take turns: time is cut into slots of RINHA_HEALTH_INTERVAL_MS and slot k
belongs to instance k mod N, which polls both processors and pushes the result to its peers.
So each processor sees one call per slot, never two in a window, with no leader to elect.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson

from .cluster import Cluster
from .http_client import ConnectFailed, OutcomeUnknown
from .processors import Processor, now_ms

log = logging.getLogger("rinha.health")


def my_turn(slot: int, instance_id: int, cluster_size: int) -> bool:
    return slot % cluster_size == instance_id


async def poll_once(p: Processor, timeout_s: float = 2.0) -> tuple[bool, int] | None:
    """(failing, minResponseTime ms), or None when the check itself could not be made."""
    try:
        status, body = await p.pool.request(p.health_request, timeout_s)
    except (ConnectFailed, OutcomeUnknown) as exc:
        log.debug("health of %s: %s", p.name, exc)
        return None
    if status != 200:  # 429: someone else used this window; just wait for the next turn
        log.debug("health of %s: HTTP %d", p.name, status)
        return None
    try:
        data = orjson.loads(body)
        return bool(data["failing"]), int(data["minResponseTime"])
    except (ValueError, KeyError, TypeError):
        log.warning("health of %s: unreadable answer %r", p.name, body[:80])
        return None


async def run_poller(
    processors: tuple[Processor, ...],
    cluster: Cluster,
    instance_id: int,
    cluster_size: int,
    interval_ms: int,
) -> None:
    """Forever: in each of our slots, poll every processor once and share the result."""
    interval_s = interval_ms / 1000
    while True:
        now_s = time.time()
        slot = int(now_s // interval_s)
        # sleep to the middle of the next slot that is ours
        next_slot = slot + 1
        while not my_turn(next_slot, instance_id, cluster_size):
            next_slot += 1
        await asyncio.sleep((next_slot + 0.5) * interval_s - now_s)
        for p in processors:
            result = await poll_once(p)
            if result is None:
                continue
            failing, min_ms = result
            p.apply_health(now_ms(), failing, min_ms)
            await cluster.share_health(p.index, failing, min_ms)
