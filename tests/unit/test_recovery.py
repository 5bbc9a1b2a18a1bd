"""Folding a journal back into ledgers, a queue and pins (rinha.recovery)."""

from __future__ import annotations

from rinha import fast
from rinha.fast import J_ACCEPT, J_ATTEMPT, J_FINISHED, J_RELEASED, J_STORED
from rinha.recovery import UNPINNED, replay

A = "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"
B = "5b8a02c9-8e37-4e0e-bb2a-5ed2d8d071c4"
C = "6c9b13da-9f48-4f1f-8c3b-6fe3e9e182d5"


def _ids(tmp_path, owner: int = 0):
    return fast.SharedIdSet(str(tmp_path / "ids.bin"), 1000, owner)


def test_each_payment_ends_where_its_last_record_leaves_it(tmp_path) -> None:
    ledgers = (fast.Ledger(), fast.Ledger())
    ids = _ids(tmp_path)
    for i in (A, B, C):
        ids.claim(i, 100)
    records = [
        (J_ACCEPT, A, 100, 0, 0),
        (J_ATTEMPT, A, 100, 0, 1_000),
        (J_STORED, A, 100, 0, 1_000),
        (J_ACCEPT, B, 100, 0, 0),
        (J_ATTEMPT, B, 100, 1, 2_000),  # outcome never learnt
        (J_ACCEPT, C, 100, 0, 0),
        (J_ATTEMPT, C, 100, 0, 3_000),
        (J_RELEASED, C, 100, 0, 0),
    ]
    recovered = replay(records, ids, ledgers)
    assert ledgers[0].summary(0, 10_000) == (1, 100)
    pending = {p.correlation_id: p for p in recovered.payments}
    assert set(pending) == {B, C}
    assert (pending[B].pinned, pending[B].requested_at_ms) == (1, 2_000)
    assert pending[C].pinned == UNPINNED


def test_a_second_accept_of_an_id_was_a_refused_duplicate(tmp_path) -> None:
    ids = _ids(tmp_path)
    ids.claim(A, 100)
    records = [
        (J_ACCEPT, A, 100, 0, 0),
        (J_ATTEMPT, A, 100, 0, 5),
        (J_STORED, A, 100, 0, 5),
        (J_ACCEPT, A, 100, 0, 0),
    ]
    recovered = replay(records, ids, (fast.Ledger(), fast.Ledger()))
    assert recovered.payments == []


def test_an_accept_whose_claim_a_peer_owns_is_dropped_and_an_unclaimed_one_kept(tmp_path) -> None:
    peer = _ids(tmp_path, owner=1)
    assert peer.claim(A, 100) == fast.CLAIM_NEW
    ours = _ids(tmp_path, owner=0)
    records = [
        (J_ACCEPT, A, 100, 0, 0),
        (J_ACCEPT, B, 200, 0, 0),
        (J_ACCEPT, C, 300, 0, 0),
        (J_FINISHED, C, 300, 0, 0),
    ]
    recovered = replay(records, ours, (fast.Ledger(), fast.Ledger()))
    assert [p.correlation_id for p in recovered.payments] == [B]  # died before B's claim
    assert recovered.dropped == 1
    assert ours.owner_of(B) == 0
