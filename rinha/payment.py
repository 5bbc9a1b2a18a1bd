"""`Payment`: one accepted payment on its way to a processor (the dispatcher's unit of work)."""

from __future__ import annotations

from .recovery import UNPINNED


class Payment:
    __slots__ = ("correlation_id", "cents", "pinned", "requested_at_ms", "checked_ms")

    def __init__(self, correlation_id: str, cents: int) -> None:
        self.correlation_id = correlation_id
        self.cents = cents  # int cents
        self.pinned = UNPINNED  # processor index whose earlier attempt has an unknown outcome
        self.requested_at_ms = 0  # epoch ms of the latest attempt (the pinned one, once pinned)
        self.checked_ms = 0  # epoch ms of the last settle lookup

    def pin(self, processor: int) -> None:
        """Its latest attempt (at `processor`, `requested_at_ms`) has an unknown outcome: it is
        retried there alone, with the identical request."""
        self.pinned = processor
