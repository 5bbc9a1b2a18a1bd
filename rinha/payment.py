"""`Payment`: one accepted payment on its way to a processor (the dispatcher's unit of work)."""

from __future__ import annotations

from .recovery import UNPINNED


class Payment:
    __slots__ = ("correlation_id", "cents", "pinned", "requested_at_ms", "body", "checked_ms")

    def __init__(self, correlation_id: str, cents: int) -> None:
        self.correlation_id = correlation_id
        self.cents = cents  # int cents
        self.pinned = UNPINNED  # processor index whose earlier attempt has an unknown outcome
        self.requested_at_ms = 0  # epoch ms of the latest attempt (the pinned one, once pinned)
        self.body = b""  # that attempt's exact JSON body
        self.checked_ms = 0  # epoch ms of the last settle lookup

    def pin(self, processor: int, requested_at_ms: int, body: bytes) -> None:
        """Its attempt at `processor` has an unknown outcome: retried there alone, identical."""
        self.pinned = processor
        self.requested_at_ms = requested_at_ms
        self.body = body
