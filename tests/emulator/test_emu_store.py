"""PaymentStore and the value codecs, without HTTP."""

from __future__ import annotations

import random
import time
from decimal import Decimal

import pytest

from rinha.tools.emulator.store import (
    InvalidValue,
    PaymentStore,
    canonical_uuid,
    cents_to_json,
    iso_to_ms,
    ms_to_iso,
    to_cents,
)


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("19.90", 1990),
        ("19.905", 1990),  # half to even: 0 stays
        ("19.915", 1992),  # half to even: 1 goes up
        ("0.125", 12),
        ("0.135", 14),
        ("19.9051", 1991),  # above half
        ("-0.125", -12),
        ("1E+2", 10000),
        (5, 500),
    ],
)
def test_to_cents_rounds_half_to_even(text: str | int, cents: int) -> None:
    value = text if isinstance(text, int) else Decimal(text)
    assert to_cents(value) == cents


@pytest.mark.parametrize("bad", [19.9, "19.90", None, True, Decimal("1E+40"), Decimal("NaN")])
def test_to_cents_refuses_non_numbers(bad: object) -> None:
    with pytest.raises(InvalidValue):
        to_cents(bad)


def test_cents_to_json() -> None:
    assert [cents_to_json(c) for c in (0, 5, 1990, -5, -1990, 123456789)] == [
        "0.00",
        "0.05",
        "19.90",
        "-0.05",
        "-19.90",
        "1234567.89",
    ]


def test_timestamps_round_trip() -> None:
    ms = iso_to_ms("2025-07-15T12:34:56.789Z")
    assert ms == 1752582896789
    assert ms_to_iso(ms) == "2025-07-15T12:34:56.789Z"
    assert iso_to_ms("2025-07-15T12:34:56.789+00:00") == ms
    assert iso_to_ms("2025-07-15T09:34:56.789-03:00") == ms
    assert iso_to_ms("2025-07-15T12:34:56.789") == ms  # no offset: UTC
    assert iso_to_ms("2025-07-15T12:34:56.789999Z") == ms  # sub-ms digits floored
    assert ms_to_iso(0) == "1970-01-01T00:00:00.000Z"
    for bad in ("2025-13-01T00:00:00Z", "yesterday", "", None, 12):
        with pytest.raises(InvalidValue):
            iso_to_ms(bad)


def test_canonical_uuid() -> None:
    cid = "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"
    assert canonical_uuid(cid.upper()) == cid
    assert canonical_uuid(cid.replace("-", "")) == cid
    assert canonical_uuid("{" + cid + "}") == cid
    for bad in ("4a7901b8", "not-a-uuid", "", None, 7):
        with pytest.raises(InvalidValue):
            canonical_uuid(bad)


def test_duplicate_keeps_the_first_record() -> None:
    store = PaymentStore()
    assert store.add("a", 10, 100)
    assert not store.add("a", 20, 999)
    assert store.get("a") == (10, 100)
    assert store.summary() == (1, 100)
    assert store.summary(0, 15) == (1, 100)
    assert store.summary(15, 30) == (0, 0)


def test_summary_matches_a_plain_model_in_any_insertion_order() -> None:
    rng = random.Random(7)
    store = PaymentStore()
    model: list[tuple[int, int]] = []
    # out-of-order timestamps with many equal values, enough to split blocks several times
    for n in range(6000):
        ms = rng.randrange(0, 3000) if n % 3 else 3000 + n
        cents = rng.randrange(1, 100_000)
        assert store.add(f"id{n}", ms, cents)
        model.append((ms, cents))
    for _ in range(400):
        lo, hi = sorted(rng.randrange(-10, 9100) for _ in range(2))
        hit = [c for m, c in model if lo <= m <= hi]
        assert store.summary(lo, hi) == (len(hit), sum(hit)), (lo, hi)
    assert store.summary(5, 4) == (0, 0)  # from > to
    assert (
        store.summary(None, 4) == store.summary(5, None) == (len(model), sum(c for _, c in model))
    )
    store.clear()
    assert len(store) == 0 and store.summary(0, 10**15) == (0, 0) and store.summary() == (0, 0)


def test_summary_is_fast_with_200k_payments() -> None:
    store = PaymentStore()
    base = 1_752_582_896_000
    for n in range(200_000):
        store.add(f"id{n}", base + n * 5 - (n % 7) * 40, 1990)  # slightly out of order
    lo, hi = base + 100_000, base + 900_000
    started = time.perf_counter()
    for _ in range(100):
        count, cents = store.summary(lo, hi)
    per_call = (time.perf_counter() - started) / 100
    assert cents == count * 1990 and 159_000 < count < 161_000
    assert per_call < 0.001, f"{per_call * 1e6:.0f} µs per summary"
