"""Pure-Python twin of `rinha._fast`: the readable specification, with the same API and behaviour.

Every function and class here has a compiled counterpart in `rinha/_fast.pyx`; the unit tests run
both against the same cases and against each other. Money is int cents; time is int epoch ms.
"""

from __future__ import annotations

import bisect
import json
import operator
import re
import sys
from datetime import UTC, datetime, timedelta
from decimal import MAX_EMAX, MIN_EMIN, ROUND_HALF_EVEN, Context, Decimal

from rinha.errors import (
    R_AMOUNT_DUPLICATE,
    R_AMOUNT_LARGE,
    R_AMOUNT_MISSING,
    R_AMOUNT_SIGN,
    R_AMOUNT_TYPE,
    R_AMOUNT_ZERO,
    R_ID_DUPLICATE,
    R_ID_MISSING,
    R_ID_TYPE,
    R_ID_UUID,
    R_JSON,
    R_NOT_OBJECT,
    R_TRAILING,
    R_UTF8,
    InvalidPayment,
    InvalidTimestamp,
)

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

MAX_CENTS = 10**13  # largest accepted amount: 100,000,000,000.00
MIN_MS = -62135596800000  # 0001-01-01T00:00:00.000Z
MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
MAX_DEPTH = 64  # deepest nesting of objects/arrays accepted in a body (the top object is 1)

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_JSON_WS = " \t\n\r"
_EXP_CLAMP = 10**15  # |exponent| beyond this changes no outcome (too large / rounds to 0 / zero)
_CENT = Decimal("0.01")
_CONTEXT = Context(prec=40, rounding=ROUND_HALF_EVEN, Emax=MAX_EMAX, Emin=MIN_EMIN)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:([Zz])|([+-])([0-9]{2}):?([0-9]{2}))?)?"
)
_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)

# -- POST /payments body ------------------------------------------------------------------------


class _Object(list):
    """A JSON object as its (key, value) pairs in order, duplicate keys kept."""


class _Constant(ValueError):
    """NaN / Infinity / -Infinity: accepted by Python's json, not JSON."""


def _reject_constant(name: str) -> None:
    raise _Constant(name)


def _number(text: str) -> Decimal:
    """Exact value of a JSON number; exponents are clamped to what Decimal can hold."""
    mantissa, _, exponent = text.lower().partition("e")
    if not exponent:
        return Decimal(mantissa)
    digits = exponent.lstrip("+-").lstrip("0") or "0"
    exp = min(int(digits), _EXP_CLAMP) if len(digits) <= 16 else _EXP_CLAMP
    return Decimal(f"{mantissa}e{-exp if exponent[0] == '-' else exp}")


_DECODER = json.JSONDecoder(
    object_pairs_hook=_Object,
    parse_float=_number,
    parse_int=_number,
    parse_constant=_reject_constant,
)


def _deeper_than(value: object, limit: int) -> bool:
    if isinstance(value, _Object):
        children = [v for _, v in value]
    elif isinstance(value, list):
        children = value
    else:
        return False
    return limit == 0 or any(_deeper_than(child, limit - 1) for child in children)


def _as_bytes(body: object) -> bytes:
    if isinstance(body, bytes):
        return body
    return bytes(memoryview(body))  # type: ignore[arg-type]  # TypeError unless bytes-like


def parse_payment(body: bytes) -> tuple[str, int]:
    """(correlationId lower-cased, amount in int cents) from a POST /payments body."""
    try:
        text = _as_bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPayment(R_UTF8) from None
    text = text.lstrip(_JSON_WS)
    try:
        value, end = _DECODER.raw_decode(text)
    except (ValueError, RecursionError):
        raise InvalidPayment(R_JSON) from None
    if _deeper_than(value, MAX_DEPTH):
        raise InvalidPayment(R_JSON)
    if text[end:].lstrip(_JSON_WS):
        raise InvalidPayment(R_TRAILING)
    if not isinstance(value, _Object):
        raise InvalidPayment(R_NOT_OBJECT)

    ids = [v for k, v in value if k == "correlationId"]
    if not ids:
        raise InvalidPayment(R_ID_MISSING)
    if len(ids) > 1:
        raise InvalidPayment(R_ID_DUPLICATE)
    correlation_id = ids[0]
    if not isinstance(correlation_id, str):
        raise InvalidPayment(R_ID_TYPE)
    if not _UUID.fullmatch(correlation_id):
        raise InvalidPayment(R_ID_UUID)

    amounts = [v for k, v in value if k == "amount"]
    if not amounts:
        raise InvalidPayment(R_AMOUNT_MISSING)
    if len(amounts) > 1:
        raise InvalidPayment(R_AMOUNT_DUPLICATE)
    amount = amounts[0]
    if not isinstance(amount, Decimal):
        raise InvalidPayment(R_AMOUNT_TYPE)
    if amount <= 0:
        raise InvalidPayment(R_AMOUNT_SIGN)
    if amount >= 10**12:  # also keeps quantize away from huge exponents
        raise InvalidPayment(R_AMOUNT_LARGE)
    # exact: the decimal text, rounded half to even, as the processor's decimal.Round does
    cents = int(amount.quantize(_CENT, context=_CONTEXT).scaleb(2, _CONTEXT))
    if cents > MAX_CENTS:
        raise InvalidPayment(R_AMOUNT_LARGE)
    if cents == 0:
        raise InvalidPayment(R_AMOUNT_ZERO)
    return correlation_id.lower(), cents


# -- timestamps ---------------------------------------------------------------------------------


def _int64(value: object) -> int:
    number = operator.index(value)  # type: ignore[arg-type]  # TypeError for floats, str, ...
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise OverflowError("value out of range for int64")
    return number


def iso_to_ms(text: str | bytes) -> int:
    """Epoch milliseconds of an ISO-8601 timestamp (no zone means UTC)."""
    if isinstance(text, bytes):
        string = text.decode("latin-1")  # non-ASCII bytes then fail the pattern
    elif isinstance(text, str):
        string = text
    else:
        raise TypeError(f"expected str or bytes, got {type(text).__name__}")
    match = _ISO.fullmatch(string)
    if match is None:
        raise InvalidTimestamp(f"invalid timestamp {text!r}")
    year, month, day, hour, minute, second, fraction, _z, sign, off_h, off_m = match.groups()
    try:
        local = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
        )
    except ValueError:
        raise InvalidTimestamp(f"invalid timestamp {text!r}") from None
    millis = int((fraction or "").ljust(3, "0")[:3])  # extra digits truncate (floor)
    offset_minutes = 0
    if sign:
        if int(off_h) > 23 or int(off_m) > 59:
            raise InvalidTimestamp(f"invalid timestamp {text!r}")
        offset_minutes = (int(off_h) * 60 + int(off_m)) * (-1 if sign == "-" else 1)
    since_epoch = local - _EPOCH - timedelta(minutes=offset_minutes)
    return since_epoch // timedelta(milliseconds=1) + millis


def ms_to_iso(ms: int) -> str:
    """'YYYY-MM-DDTHH:MM:SS.mmmZ' of epoch ms, as JavaScript's Date.toISOString()."""
    ms = _int64(ms)
    if not MIN_MS <= ms <= MAX_MS:
        raise ValueError(f"ms out of range [{MIN_MS}, {MAX_MS}]: {ms}")
    t = _EPOCH_UTC + timedelta(milliseconds=ms)
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
        f".{t.microsecond // 1000:03d}Z"
    )


# -- processor request --------------------------------------------------------------------------


def _uuid(correlation_id: object) -> str:
    if not isinstance(correlation_id, str):
        raise TypeError(f"correlation_id must be str, not {type(correlation_id).__name__}")
    if not _UUID.fullmatch(correlation_id):
        raise ValueError(f"not a canonical UUID: {correlation_id!r}")
    return correlation_id


def payment_body(correlation_id: str, cents: int, requested_at_ms: int) -> bytes:
    """The processor's POST /payments body; the id is written verbatim, the amount as X.YY."""
    _uuid(correlation_id)
    cents = _int64(cents)
    if cents < 0:
        raise ValueError("cents must be >= 0")
    requested_at = ms_to_iso(requested_at_ms)
    return (
        f'{{"correlationId":"{correlation_id}","amount":{cents // 100}.{cents % 100:02d},'
        f'"requestedAt":"{requested_at}"}}'
    ).encode()


# -- ledger -------------------------------------------------------------------------------------


class Ledger:
    """Payments as (requestedAt ms, cents), sorted by time; range counts and sums."""

    __slots__ = ("_ms", "_cents", "_total")

    def __init__(self) -> None:
        self._ms: list[int] = []  # sorted; equal times keep insertion order
        self._cents: list[int] = []  # parallel to _ms
        self._total = 0  # int cents; the compiled twin keeps int64 prefix sums

    def add(self, ms: int, cents: int) -> None:
        ms, cents = _int64(ms), _int64(cents)
        if cents < 0:
            raise ValueError("cents must be >= 0")
        if self._total + cents > _INT64_MAX:
            raise OverflowError("ledger total would overflow int64")
        pos = bisect.bisect_right(self._ms, ms)
        self._ms.insert(pos, ms)
        self._cents.insert(pos, cents)
        self._total += cents

    def summary(self, from_ms: int, to_ms: int) -> tuple[int, int]:
        from_ms, to_ms = _int64(from_ms), _int64(to_ms)
        if from_ms > to_ms:
            return 0, 0
        lo = bisect.bisect_left(self._ms, from_ms)
        hi = bisect.bisect_right(self._ms, to_ms)
        return hi - lo, sum(self._cents[lo:hi])

    def clear(self) -> None:
        self._ms = []
        self._cents = []
        self._total = 0

    def __len__(self) -> int:
        return len(self._ms)

    @property
    def nbytes(self) -> int:
        """Approximate: both lists plus the int objects they point to."""
        ints = sum(sys.getsizeof(x) for x in self._ms) + sum(sys.getsizeof(x) for x in self._cents)
        return sys.getsizeof(self._ms) + sys.getsizeof(self._cents) + ints


# -- correlationId set --------------------------------------------------------------------------


class IdSet:
    """Set of correlationIds (canonical UUID strings, either case) seen by this instance."""

    __slots__ = ("_ids",)

    def __init__(self) -> None:
        self._ids: set[str] = set()

    def add(self, correlation_id: str) -> bool:
        key = _uuid(correlation_id).lower()
        if key in self._ids:
            return False
        self._ids.add(key)
        return True

    def discard(self, correlation_id: str) -> None:
        self._ids.discard(_uuid(correlation_id).lower())

    def __contains__(self, correlation_id: object) -> bool:
        return (
            isinstance(correlation_id, str)
            and _UUID.fullmatch(correlation_id) is not None
            and correlation_id.lower() in self._ids
        )

    def clear(self) -> None:
        self._ids = set()

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def nbytes(self) -> int:
        """Approximate: the set's table plus its str objects."""
        return sys.getsizeof(self._ids) + sum(sys.getsizeof(x) for x in self._ids)
