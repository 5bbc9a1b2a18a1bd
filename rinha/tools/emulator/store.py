"""The emulator's payment table and the value codecs at its edge (amounts, timestamps, ids).

Money is kept in integer cents; timestamps in integer epoch milliseconds (UTC). Decimal and
datetime appear only while parsing and formatting JSON text.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left, bisect_right
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

__all__ = [
    "InvalidValue",
    "PaymentStore",
    "canonical_uuid",
    "cents_to_json",
    "decimal_to_json",
    "iso_to_ms",
    "ms_to_iso",
    "to_cents",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_CENT = Decimal("0.01")


class InvalidValue(ValueError):
    """A request value the real processor would refuse to bind (HTTP 400)."""


# -- codecs ---------------------------------------------------------------------------------


def canonical_uuid(text: object) -> str:
    """`text` as a lower-case hyphenated UUID; the real service binds a .NET Guid, so the
    forms Guid.Parse accepts (braces, no hyphens, any case) name the same payment."""
    if not isinstance(text, str):
        raise InvalidValue("correlationId must be a UUID string")
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise InvalidValue(f"bad correlationId {text!r}") from None


def to_cents(amount: object) -> int:
    """A JSON number (Decimal or int, never float) rounded to 2 dp half-to-even → int cents.

    Half-to-even is .NET's `decimal.Round` default; 19.905 → 1990, 19.915 → 1992.
    """
    if isinstance(amount, bool) or not isinstance(amount, (Decimal, int)):
        raise InvalidValue("amount must be a JSON number")
    if isinstance(amount, Decimal) and not amount.is_finite():
        raise InvalidValue(f"amount must be finite: {amount}")
    try:
        # quantize raises if the result needs more than 28 digits (.NET decimal's limit)
        rounded = Decimal(amount).quantize(_CENT, rounding=ROUND_HALF_EVEN)
    except InvalidOperation:
        raise InvalidValue(f"amount out of range: {amount}") from None
    return int(rounded.scaleb(2))


def cents_to_json(cents: int) -> str:
    """Int cents as a JSON number with two decimals: 1990 → '19.90', -5 → '-0.05'."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"


def decimal_to_json(value: Decimal) -> str:
    """A Decimal as a plain JSON number (never exponent notation)."""
    return format(value, "f")


def iso_to_ms(text: object) -> int:
    """ISO-8601 → epoch ms (floor). A time without an offset is taken as UTC."""
    if not isinstance(text, str):
        raise InvalidValue("timestamp must be an ISO-8601 string")
    try:
        dt = datetime.fromisoformat(text)  # 3.11 accepts 'Z' and most ISO-8601 forms
    except ValueError:
        raise InvalidValue(f"bad timestamp {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _ONE_MS


def ms_to_iso(ms: int) -> str:
    """Epoch ms → 'YYYY-MM-DDTHH:MM:SS.mmmZ'."""
    dt = _EPOCH + timedelta(milliseconds=ms)
    return dt.isoformat(timespec="milliseconds")[:-6] + "Z"  # drop '+00:00'


# -- the table ------------------------------------------------------------------------------

# Entries live in blocks kept sorted by requestedAt: a range summary bisects the block maxima,
# sums whole blocks from per-block totals and slices the two end blocks, so it costs
# O(log n + n / _BLOCK) C-level work (a few µs at 200,000 payments) whatever the insertion
# order; an insert costs one bisect and one list insert into a block of ≤ 2 * _BLOCK items.
_BLOCK = 1000


class PaymentStore:
    """Payments keyed by correlationId, plus a requestedAt-ordered index for summaries."""

    __slots__ = ("_by_id", "_keys", "_vals", "_maxes", "_sums", "_total")

    def __init__(self) -> None:
        self._by_id: dict[str, tuple[int, int]] = {}  # correlationId → (requestedAt ms, cents)
        self._keys: list[list[int]] = []  # blocks of requestedAt ms, each sorted
        self._vals: list[list[int]] = []  # cents, parallel to _keys
        self._maxes: list[int] = []  # last (largest) ms of each block
        self._sums: list[int] = []  # sum of cents of each block
        self._total = 0  # cents over everything

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, correlation_id: object) -> bool:
        return correlation_id in self._by_id

    def get(self, correlation_id: str) -> tuple[int, int] | None:
        """(requestedAt ms, cents) of a stored payment, or None."""
        return self._by_id.get(correlation_id)

    def add(self, correlation_id: str, requested_at_ms: int, cents: int) -> bool:
        """Store a payment; False (and nothing changes) if the correlationId is taken."""
        by_id = self._by_id
        if correlation_id in by_id:
            return False
        by_id[correlation_id] = (requested_at_ms, cents)
        self._total += cents
        maxes = self._maxes
        if not maxes:
            self._keys.append([requested_at_ms])
            self._vals.append([cents])
            maxes.append(requested_at_ms)
            self._sums.append(cents)
            return True
        i = bisect_left(maxes, requested_at_ms)
        if i == len(maxes):  # beyond every block: the common, append-only case
            i -= 1
            keys = self._keys[i]
            keys.append(requested_at_ms)
            self._vals[i].append(cents)
            maxes[i] = requested_at_ms
        else:
            keys = self._keys[i]
            pos = bisect_right(keys, requested_at_ms)
            keys.insert(pos, requested_at_ms)
            self._vals[i].insert(pos, cents)
        self._sums[i] += cents
        if len(keys) > 2 * _BLOCK:
            self._split(i)
        return True

    def _split(self, i: int) -> None:
        keys, vals = self._keys[i], self._vals[i]
        left_k, right_k = keys[:_BLOCK], keys[_BLOCK:]
        left_v, right_v = vals[:_BLOCK], vals[_BLOCK:]
        self._keys[i : i + 1] = [left_k, right_k]
        self._vals[i : i + 1] = [left_v, right_v]
        self._maxes[i : i + 1] = [left_k[-1], right_k[-1]]
        self._sums[i : i + 1] = [sum(left_v), sum(right_v)]

    def summary(self, from_ms: int | None = None, to_ms: int | None = None) -> tuple[int, int]:
        """(count, cents) of payments with from_ms <= requestedAt <= to_ms.

        As in the real service's SQL, a missing bound (either one) means *everything*.
        """
        if from_ms is None or to_ms is None:
            return len(self._by_id), self._total
        maxes = self._maxes
        if from_ms > to_ms or not maxes:
            return 0, 0
        i = bisect_left(maxes, from_ms)  # blocks before i hold only ms < from_ms
        if i == len(maxes):
            return 0, 0
        j = min(bisect_right(maxes, to_ms), len(maxes) - 1)  # blocks after j: only ms > to_ms
        keys, vals = self._keys, self._vals
        a = bisect_left(keys[i], from_ms)
        if i == j:
            b = bisect_right(keys[i], to_ms)
            return max(b - a, 0), sum(vals[i][a:b])
        b = bisect_right(keys[j], to_ms)
        count = len(keys[i]) - a + sum(map(len, keys[i + 1 : j])) + b
        cents = sum(vals[i][a:]) + sum(self._sums[i + 1 : j]) + sum(vals[j][:b])
        return count, cents

    def clear(self) -> None:
        self._by_id.clear()
        self._keys.clear()
        self._vals.clear()
        self._maxes.clear()
        self._sums.clear()
        self._total = 0
