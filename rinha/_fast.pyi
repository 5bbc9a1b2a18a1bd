"""Typed API of the compiled hot paths (`rinha/_fast.pyx`); `rinha/_reference.py` is the same API
in pure Python. Money is int cents; time is int epoch milliseconds (UTC)."""

from typing import Final

__all__ = [
    "MAX_CENTS",
    "MAX_MS",
    "MIN_MS",
    "IdSet",
    "Ledger",
    "iso_to_ms",
    "ms_to_iso",
    "parse_payment",
    "payment_body",
]

MAX_CENTS: Final[int]
"""Largest accepted amount, in cents: 10**13 (100,000,000,000.00)."""

MIN_MS: Final[int]
"""Epoch ms of 0001-01-01T00:00:00.000Z, the first instant `ms_to_iso` can write."""

MAX_MS: Final[int]
"""Epoch ms of 9999-12-31T23:59:59.999Z, the last instant `ms_to_iso` can write."""

def parse_payment(body: bytes | bytearray | memoryview) -> tuple[str, int]:
    """Pull (correlationId, amount) out of a `POST /payments` body.

    Returns the correlationId lower-cased and the amount in int cents. Any valid JSON is accepted:
    any whitespace, any key order, string escapes (also in the keys and the id), unknown keys with
    any value (nesting up to 64 levels). The amount may be any JSON number (19.9, 1.99e1,
    1990E-2, 19.900); it is rounded to cents half to even from its decimal text, exactly
    (19.905 -> 1990, 19.915 -> 1992), as the processors' `decimal.Round` does.

    Raises `rinha.errors.InvalidPayment` whose str is the reason: the body is not UTF-8, not
    JSON, has trailing data or is not an object; correlationId or amount is missing or given
    twice; correlationId is not a string or not an 8-4-4-4-12 hex UUID (either case); amount is
    not a JSON number (a string such as "19.90" is not), is <= 0, is above `MAX_CENTS` cents or
    rounds to 0.00. Raises TypeError if body is not bytes-like.
    """

def iso_to_ms(text: str | bytes) -> int:
    """Epoch milliseconds of an ISO-8601 timestamp.

    Accepts `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DD[T|t| ]HH:MM:SS`, then an optional
    fraction of 1 to 9 digits (cut to milliseconds, rounding down), then an optional zone:
    `Z`, `z`, `+HH:MM`, `-HH:MM`, `+HHMM`, `-HHMM` (none means UTC). Years 0001-9999; months,
    days (leap years included), hours 0-23, minutes and seconds 0-59 are checked. So every
    string JavaScript's `Date.toISOString()` makes is accepted.

    Raises `rinha.errors.InvalidTimestamp` with the offending text for anything else, and
    TypeError if text is neither str nor bytes.
    """

def ms_to_iso(ms: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS.mmmZ` of epoch ms, as JavaScript's `Date.toISOString()` writes it.

    The exact inverse of `iso_to_ms` on [`MIN_MS`, `MAX_MS`]; ValueError outside that range,
    OverflowError outside int64, TypeError if ms is not an int.
    """

def payment_body(correlation_id: str, cents: int, requested_at_ms: int) -> bytes:
    """The body of a processor's `POST /payments`, compact JSON, e.g.

    `{"correlationId":"4a7901b8-...","amount":19.90,"requestedAt":"2025-07-15T12:34:56.000Z"}`

    The id is written verbatim (TypeError if not a str, ValueError if not a canonical UUID); the
    amount always with two decimals from the int cents (ValueError if negative); requestedAt as
    `ms_to_iso(requested_at_ms)` (ValueError outside [`MIN_MS`, `MAX_MS`]).
    """

class Ledger:
    """Processed payments as (requestedAt ms, cents), kept sorted by time.

    Two int64 columns, times and running (prefix) sums of cents: 16 bytes per payment and no
    Python object per payment. Inserts may come slightly out of order; a summary over any
    range costs two binary searches.
    """

    def __init__(self) -> None: ...
    def add(self, ms: int, cents: int) -> None:
        """Record a payment of `cents` (>= 0) requested at `ms`.

        Equal times are kept in insertion order. An insert lands after the last entry whose time
        is <= ms: cheap near the tail, a memmove of the later entries otherwise. ValueError if
        cents < 0; OverflowError if the ledger's total would leave int64.
        """
    def summary(self, from_ms: int, to_ms: int) -> tuple[int, int]:
        """(count, total cents) of the payments with from_ms <= ms <= to_ms; (0, 0) if from > to.

        Both bounds are inclusive; pass MIN/MAX of int64 for a missing bound. O(log n).
        """
    def clear(self) -> None:
        """Forget every payment and give back memory beyond the initial capacity."""
    def __len__(self) -> int:
        """Number of payments recorded."""
    @property
    def nbytes(self) -> int:
        """Bytes allocated for the columns (capacity, not just the entries in use)."""

class IdSet:
    """A set of correlationIds for duplicate detection, about 16 bytes per id.

    Ids must be canonical 8-4-4-4-12 hex UUID strings; either case is the same id. Only a 64-bit
    fingerprint of each id's 128 bits is stored (open addressing, linear probing, load factor
    at most 0.7, doubling on growth), so a new id is taken for one already present with
    probability about len(self) / 2**64 (5e-14 with a million ids).
    """

    def __init__(self) -> None: ...
    def add(self, correlation_id: str) -> bool:
        """Add the id; True if it was not there before.

        TypeError if not a str, ValueError if not a canonical UUID.
        """
    def discard(self, correlation_id: str) -> None:
        """Remove the id if present (TypeError / ValueError as for `add`)."""
    def __contains__(self, correlation_id: object) -> bool:
        """True if the id is in the set; False for anything that is not a canonical UUID str."""
    def clear(self) -> None:
        """Remove every id and give back memory beyond the initial capacity."""
    def __len__(self) -> int:
        """Number of ids in the set."""
    @property
    def nbytes(self) -> int:
        """Bytes allocated for the table."""
