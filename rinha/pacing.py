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


class CatchUp:
    __slots__ = ("enabled", "cap", "rate", "window_s", "tick_s", "arrived", "credit", "at", "ends")

    def __init__(self, config: Config) -> None:
        self.enabled = config.catch_up_per_s > 0  # 0: every pump may start `cap` calls
        self.cap = config.launch_per_tick  # calls per pump, whatever the pace
        self.rate = float(config.catch_up_per_s)  # backlog calls/s
        self.window_s = config.catch_up_ms / 1000  # a drain's time limit, s
        self.tick_s = config.dispatch_tick_ms / 1000
        self.arrived = 0  # payments submitted since the last pump
        self.credit = 0.0  # calls allowed beyond new arrivals, earned at `rate`
        self.at = 0.0  # loop time `credit` was last topped up
        self.ends = 0.0  # loop time a drain under way must end by (0: none)

    def arrive(self, n: int = 1) -> None:
        self.arrived += n

    def budget(self, now_s: float, backlog: int) -> tuple[int, int]:
        """(calls this pump may start, how many of them are new arrivals' own); `now_s` is
        loop time, `backlog` the payments queued."""
        cap = self.cap
        arrived, self.arrived = self.arrived, 0
        if not self.enabled:
            return cap, cap
        if backlog <= arrived <= cap and not self.ends:
            # only new arrivals wait and all may go: nothing to pace. The credit is left as it
            # is: earned later, capped, it comes to the same (min(min(c + a, m) + b, m) ==
            # min(c + a + b, m)), and this pump spends none of it
            return arrived, arrived
        rate = self.rate
        if self.ends:
            left_s = self.ends - now_s
            if left_s <= self.tick_s:
                return cap, arrived  # out of time: full speed
            rate = max(rate, backlog / left_s)
        earned = (now_s - self.at) * rate
        self.at = now_s
        # no hoarding while idle: at most two ticks' worth (timers fire a little late)
        self.credit = min(self.credit + earned, max(1.0, 2 * rate * self.tick_s))
        return min(cap, arrived + int(self.credit + 1e-9)), arrived  # 1e-9: float sums

    def spent(self, allowed: int, started: int, arrived: int, backlog: int) -> None:
        """After the pump: `started` of the `allowed` calls went out, `backlog` still waits.
        Arrivals' own calls come first; what is left of them is not carried over."""
        if not self.enabled:
            return
        self.credit = max(0.0, self.credit - max(0, started - arrived))
        if started == allowed and backlog:  # sending as fast as allowed, more waits: a drain
            if not self.ends:
                self.ends = self.at + self.window_s
        else:  # drained, or held back by routing: the next drain gets a window of its own
            self.ends = 0.0

    def stop(self) -> None:
        """Shutting down: what is queued goes as fast as allowed."""
        self.enabled = False
