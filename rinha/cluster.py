"""Talking to the other instances: cluster-wide summary and purge, shared health reports.

Every instance is equal: each knows the others' addresses (RINHA_PEERS) and any of them can
answer for the cluster. Peers are reached over keep-alive connections, in parallel, so that a
summary answers within about a millisecond of the request.
"""

from __future__ import annotations

import asyncio
import logging

from .http_client import ConnectFailed, HttpPool, OutcomeUnknown, build_request

log = logging.getLogger("rinha.cluster")


class PeerError(RuntimeError):
    """A peer did not answer (or answered nonsense): a cluster-wide answer is impossible."""


# Counts as (default count, default cents, fallback count, fallback cents).
Counts = tuple[int, int, int, int]


def encode_counts(counts: Counts) -> bytes:
    return b"%d %d %d %d" % counts


def decode_counts(body: bytes) -> Counts:
    parts = body.split()
    if len(parts) != 4:
        raise ValueError(f"bad peer summary {body[:60]!r}")
    a, b, c, d = (int(x) for x in parts)
    return a, b, c, d


PEER_IDLE_CLOSE_S = 30.0  # an idle peer connection is closed after this


class Cluster:
    def __init__(
        self, peer_addresses: tuple[str, ...], timeout_ms: int, connections: int = 8
    ) -> None:
        # the peers' internal listeners; a flood of summaries waits for one of `connections`
        # per peer instead of opening one each (file descriptors are finite)
        # (Nginx lets 64 summaries in at once: all of them may wait)
        self.peers = [
            HttpPool(
                address,
                max_connections=connections,
                max_waiting=256,
                idle_close_s=PEER_IDLE_CLOSE_S,
            )
            for address in peer_addresses
        ]
        self._timeout_s = timeout_ms / 1000

    @property
    def open_connections(self) -> int:
        return sum(pool.open_connections for pool in self.peers)

    async def _call(self, pool: HttpPool, request: bytes) -> bytes:
        try:
            status, body = await pool.request(request, self._timeout_s)
        except (ConnectFailed, OutcomeUnknown) as exc:
            raise PeerError(f"peer {pool.address} did not answer: {exc}") from None
        if status != 200:
            raise PeerError(f"peer {pool.address} answered HTTP {status}")
        return body

    async def _all(self, requests: list[tuple[HttpPool, bytes]]) -> list[bytes]:
        if not requests:
            return []
        results = await asyncio.gather(
            *(self._call(pool, request) for pool, request in requests), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result if isinstance(result, PeerError) else PeerError(str(result))
        return results  # type: ignore[return-value]

    async def peer_counts(self, from_ms: int, to_ms: int) -> Counts:
        """Sum of the peers' ledgers over [from_ms, to_ms]; PeerError if any is missing."""
        path = f"/internal/summary?from_ms={from_ms}&to_ms={to_ms}"
        bodies = await self._all([(p, build_request("GET", path, p.address)) for p in self.peers])
        total = [0, 0, 0, 0]
        for body in bodies:
            try:
                counts = decode_counts(body)
            except ValueError as exc:
                raise PeerError(str(exc)) from None
            for i in range(4):
                total[i] += counts[i]
        return total[0], total[1], total[2], total[3]

    async def purge_peers(self) -> None:
        await self._all(
            [(p, build_request("POST", "/internal/purge", p.address)) for p in self.peers]
        )

    async def share_health(self, processor: int, failing: bool, min_response_ms: int) -> None:
        """Tell the peers what a health check said (best effort: a peer that misses it
        learns from its own calls)."""
        body = b"%d %d %d" % (processor, int(failing), min_response_ms)
        try:
            await self._all(
                [
                    (p, build_request("POST", "/internal/health", p.address, body))
                    for p in self.peers
                ]
            )
        except PeerError as exc:
            log.warning("could not share health: %s", exc)

    def close(self) -> None:
        for pool in self.peers:
            pool.close()
