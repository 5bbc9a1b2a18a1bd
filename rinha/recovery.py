"""Rebuilding an instance's payments from its journal after a restart.

The journal holds, in order, per payment: ACCEPT (before its 202), then for each attempt an
ATTEMPT (before the request left), then STORED (a ledger entry), RELEASED (that attempt is
known not to be stored) or FINISHED (nothing will be charged). Replayed:
- STORED records go to the ledgers (the journal's snapshot already went there);
- a payment whose last word is ATTEMPT had an attempt whose outcome nobody learned: it is
  *pinned* to that processor under that attempt's requestedAt, exactly as a timeout pins it;
- a payment whose last word is ACCEPT or RELEASED waits in the queue, free to go anywhere;
- an ACCEPT of an id already seen in this journal is a duplicate that was refused: ignored.

An ACCEPT is written before the id is claimed in the shared id table, so a journal may hold
an accept whose claim never happened (the process died in between) or was refused because a
peer had the id. The claim is made again here: ours (new, or already ours) stays, a peer's
is dropped. Nothing else is ever dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .fast import (
    CLAIM_MINE,
    CLAIM_NEW,
    J_ACCEPT,
    J_ATTEMPT,
    J_FINISHED,
    J_RELEASED,
    J_STORED,
    UNPINNED,
)

if TYPE_CHECKING:
    from .fast import Ledger, SharedIdSet


@dataclass(slots=True)
class Pending:
    """A payment still to be processed: pinned (>= 0) to a processor under `requested_at_ms`
    (epoch ms), or free (UNPINNED)."""

    correlation_id: str
    cents: int  # int cents
    pinned: int = UNPINNED
    requested_at_ms: int = 0


@dataclass(slots=True)
class Recovered:
    records: int = 0
    payments: list[Pending] = field(default_factory=list)
    dropped: int = 0  # accepts whose id a peer owns

    @property
    def queued(self) -> int:
        return sum(1 for p in self.payments if p.pinned == UNPINNED)

    @property
    def pinned(self) -> int:
        return len(self.payments) - self.queued


def replay(
    records: list[tuple[int, str, int, int, int]],
    ids: SharedIdSet,
    ledgers: tuple[Ledger, Ledger],
) -> Recovered:
    """Fold the journal's records (kind, id, cents, processor, ms) into what is still to do;
    STORED records are added to `ledgers` (Journal.replay has loaded the snapshot already).
    `ids` is the shared id table."""
    live: dict[str, Pending] = {}  # not yet stored or finished, in acceptance order
    seen: set[str] = set()
    for kind, correlation_id, cents, processor, ms in records:
        if kind == J_ACCEPT:
            if correlation_id not in seen:
                seen.add(correlation_id)
                live[correlation_id] = Pending(correlation_id, cents)
            continue
        payment = live.get(correlation_id)
        if kind == J_STORED:
            ledgers[processor].add(ms, cents)
            live.pop(correlation_id, None)
        elif payment is None:
            continue
        elif kind == J_ATTEMPT:
            payment.pinned = processor
            payment.requested_at_ms = ms
        elif kind == J_RELEASED:
            payment.pinned = UNPINNED
        elif kind == J_FINISHED:
            del live[correlation_id]
    recovered = Recovered(records=len(records))
    for payment in live.values():
        if payment.pinned == UNPINNED:
            claim = ids.claim(payment.correlation_id, payment.cents)
            if claim not in (CLAIM_NEW, CLAIM_MINE):
                recovered.dropped += 1
                continue
        recovered.payments.append(payment)
    return recovered
