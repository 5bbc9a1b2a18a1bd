"""The two rate limiters of the real processor, as ASP.NET's `System.Threading.RateLimiting`
configures them: a concurrency limiter on `POST /payments` and a fixed-window limiter on
`GET /payments/service-health`."""

from __future__ import annotations

import asyncio
import math
from collections import deque

__all__ = ["ConcurrencyLimiter", "FixedWindowLimiter"]


class ConcurrencyLimiter:
    """`limit` holders at once, `queue_limit` more wait in FIFO order, the rest are refused.

    Hot path without a coroutine: `if lim.in_flight < lim.limit: lim.in_flight += 1`
    `elif not await lim.wait(): refuse`; always `lim.release()` afterwards.
    """

    __slots__ = ("limit", "queue_limit", "in_flight", "_waiters")

    def __init__(self, limit: int = 800, queue_limit: int = 500) -> None:
        self.limit = limit
        self.queue_limit = queue_limit
        self.in_flight = 0  # permits held, including ones handed to woken waiters
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_acquire(self) -> bool:
        if self.in_flight < self.limit:
            self.in_flight += 1
            return True
        return False

    async def wait(self) -> bool:
        """Queue for a permit: True once held, False at once if the queue is full."""
        if len(self._waiters) >= self.queue_limit:
            return False
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the permit arrived together with the cancellation
            else:
                try:
                    self._waiters.remove(fut)
                except ValueError:
                    pass
            raise
        return True

    def release(self) -> None:
        # a released permit passes straight to the oldest waiter, so in_flight stays
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.in_flight -= 1


class FixedWindowLimiter:
    """`permits` answers per fixed window of `window` seconds, windows counted from `origin`.

    A caller with no permit left in its window queues (at most `queue_limit` at once) for the
    next window that still has one, oldest first, like .NET's FixedWindowRateLimiter with
    QueueProcessingOrder.OldestFirst; beyond that it is refused. Windows are counted rather
    than replenished by a timer, so an idle limiter costs nothing.
    """

    __slots__ = ("window", "permits", "queue_limit", "origin", "_next_window", "_used")

    def __init__(
        self, window: float, *, permits: int = 1, queue_limit: int = 2, origin: float = 0.0
    ) -> None:
        if window <= 0:
            raise ValueError("window must be positive")
        self.window = window
        self.permits = permits
        self.queue_limit = queue_limit
        self.origin = origin  # loop.time() at which window 0 starts
        self._next_window = 0  # first window with a permit left
        self._used = 0  # permits already granted in _next_window

    @property
    def retry_after(self) -> str:
        """The `Retry-After` value: the window length in whole seconds, at least 1 (the real
        service sends its RATE_LIMIT_SECONDS)."""
        return str(max(1, math.ceil(self.window)))

    def reserve(self, now: float) -> float | None:
        """Take the next free permit: seconds to wait before using it (0.0 = now), or None
        when the queue is full."""
        current = int((now - self.origin) // self.window)
        ahead = self._next_window - current  # > 0: later windows already promised to waiters
        if ahead < 0:  # nobody is queued: this window's permits are all free
            self._next_window, self._used = current, 0
        elif ahead > 0 and (ahead - 1) * self.permits + self._used >= self.queue_limit:
            return None  # the waiters already hold queue_limit permits of later windows
        window = self._next_window
        self._used += 1
        if self._used >= self.permits:
            self._next_window, self._used = window + 1, 0
        if window == current:
            return 0.0
        return self.origin + window * self.window - now
