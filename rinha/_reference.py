"""Pure-Python twin of `rinha._fast`: the readable specification, with the same API and behaviour.

Every function and class here has a compiled counterpart in `rinha/_fast.pyx`; the unit tests run
both against the same cases and against each other, and each reads the files the other writes.
Money is int cents; time is int epoch ms.
"""

from __future__ import annotations

import asyncio
import bisect
import errno
import fcntl
import json
import mmap
import operator
import os
import re
import struct
import sys
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence, Sized
from datetime import UTC, datetime, timedelta
from decimal import MAX_EMAX, MIN_EMIN, ROUND_HALF_EVEN, Context, Decimal
from itertools import pairwise
from typing import Any

import httptools

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
    FileFormatError,
    InvalidPayment,
    InvalidTimestamp,
    OutcomeUnknown,
)

__all__ = [
    "ANSWERED",
    "FAILED",
    "NO_EVIDENCE",
    "STORED",
    "UNPINNED",
    "CLAIM_CONFLICT",
    "CLAIM_FULL",
    "CLAIM_MINE",
    "CLAIM_NEW",
    "CLAIM_OTHER",
    "J_ACCEPT",
    "J_ATTEMPT",
    "J_FINISHED",
    "J_RELEASED",
    "J_SNAPSHOT",
    "J_STORED",
    "MAX_CENTS",
    "MAX_MS",
    "MIN_MS",
    "IdSet",
    "Journal",
    "Ledger",
    "AttemptCall",
    "AttemptFiler",
    "CatchUp",
    "DispatcherCore",
    "ProcessorState",
    "Connection",
    "Payment",
    "PaymentIntake",
    "PaymentQueue",
    "PoolCore",
    "ProtocolCore",
    "ResponseReader",
    "SharedIdSet",
    "iso_to_ms",
    "ms_to_iso",
    "now_ms",
    "parse_payment",
    "payment_body",
    "payment_request",
]

MAX_CENTS = 10**13  # largest accepted amount: 100,000,000,000.00
MIN_MS = -62135596800000  # 0001-01-01T00:00:00.000Z
MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
MAX_DEPTH = 64  # deepest nesting of objects/arrays accepted in a body (the top object is 1)

CLAIM_NEW = 0  # SharedIdSet.claim: inserted now, under this set's owner
CLAIM_MINE = 1  # already there: this owner, the same amount
CLAIM_OTHER = 2  # already there: another owner, the same amount
CLAIM_CONFLICT = 3  # already there with another amount
CLAIM_FULL = 4  # not there, and the table holds all it may

J_ACCEPT = 1  # Journal record kinds
J_ATTEMPT = 2
J_STORED = 3
J_RELEASED = 4
J_FINISHED = 5
J_SNAPSHOT = 6

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


def payment_request(head: bytes, correlation_id: str, cents: int, requested_at_ms: int) -> bytes:
    """`head` (a request up to `Content-Length: `), the body's length, a blank line, the body."""
    body = payment_body(correlation_id, cents, requested_at_ms)
    return b"%s%d\r\n\r\n%s" % (head, len(body), body)


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

    def _entries(self) -> list[tuple[int, int]]:
        """(epoch ms, int cents) of every payment, in time order: what a journal snapshot holds."""
        return list(zip(self._ms, self._cents, strict=True))

    def _load(self, pairs: Sequence[tuple[int, int]]) -> None:
        """Add (epoch ms, int cents) pairs, all or none (ValueError / OverflowError first)."""
        total = self._total
        for _, cents in pairs:
            if cents < 0:
                raise ValueError("cents must be >= 0")
            if total + cents > _INT64_MAX:
                raise OverflowError("ledger total would overflow int64")
            total += cents
        times = [ms for ms, _ in pairs]
        if all(a <= b for a, b in pairwise(times)) and (
            not self._ms or not times or times[0] >= self._ms[-1]
        ):
            self._ms.extend(times)
            self._cents.extend(cents for _, cents in pairs)
        else:
            for ms, cents in pairs:
                pos = bisect.bisect_right(self._ms, ms)
                self._ms.insert(pos, ms)
                self._cents.insert(pos, cents)
        self._total = total

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


# -- keyed fingerprints -------------------------------------------------------------------------
# The compiled IdSet keeps SipHash-2-4 fingerprints of the ids under a per-process key; this IdSet
# keeps the ids themselves. The functions below are what both modules compute (tests compare
# them), and what the shared id table below stores.

_M64 = 2**64 - 1


def _key_words(key: bytes) -> tuple[int, int]:
    raw = bytes(memoryview(key))  # TypeError for an int, which bytes() would take
    if len(raw) != 16:
        raise ValueError(f"a SipHash key is 16 bytes, not {len(raw)}")
    k0, k1 = struct.unpack("<QQ", raw)
    return k0, k1


def _sip_rounds(v0: int, v1: int, v2: int, v3: int, rounds: int) -> tuple[int, int, int, int]:
    for _ in range(rounds):
        v0 = (v0 + v1) & _M64
        v1 = ((v1 << 13) | (v1 >> 51)) & _M64
        v1 ^= v0
        v0 = ((v0 << 32) | (v0 >> 32)) & _M64
        v2 = (v2 + v3) & _M64
        v3 = ((v3 << 16) | (v3 >> 48)) & _M64
        v3 ^= v2
        v0 = (v0 + v3) & _M64
        v3 = ((v3 << 21) | (v3 >> 43)) & _M64
        v3 ^= v0
        v2 = (v2 + v1) & _M64
        v1 = ((v1 << 17) | (v1 >> 47)) & _M64
        v1 ^= v2
        v2 = ((v2 << 32) | (v2 >> 32)) & _M64
    return v0, v1, v2, v3


def _siphash24(key: bytes, data: bytes) -> int:
    """SipHash-2-4 of bytes under a 16-byte key, as an int."""
    k0, k1 = _key_words(key)
    data = bytes(memoryview(data))
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573
    whole = len(data) - len(data) % 8
    for (word,) in struct.iter_unpack("<Q", data[:whole]):
        v0, v1, v2, v3 = _sip_rounds(v0, v1, v2, v3 ^ word, 2)
        v0 ^= word
    last = ((len(data) & 0xFF) << 56) | int.from_bytes(data[whole:], "little")
    v0, v1, v2, v3 = _sip_rounds(v0, v1, v2, v3 ^ last, 2)
    v0, v1, v2, v3 = _sip_rounds(v0 ^ last, v1, v2 ^ 0xFF, v3, 4)
    return v0 ^ v1 ^ v2 ^ v3


def _uuid_raw(correlation_id: object) -> bytes:
    """The 16 bytes of a canonical UUID str (either case); TypeError / ValueError otherwise."""
    return bytes.fromhex(_uuid(correlation_id).replace("-", ""))


def _uuid_str(raw: bytes) -> str:
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _fingerprint(correlation_id: str, key: bytes) -> int:
    """The compiled IdSet's fingerprint of a canonical UUID str under a 16-byte key."""
    _key_words(key)
    return _siphash24(key, _uuid_raw(correlation_id)) or 1  # 0 marks an empty slot


def _crc32_of(data: bytes, value: int = 0) -> int:
    return zlib.crc32(bytes(memoryview(data)), value)


# -- files shared with other processes ----------------------------------------------------------
# Little-endian, byte for byte what the compiled module reads and writes.

_IDS_MAGIC = b"RINHAIDS"
_IDS_VERSION = 1
_IDS_HEADER = 64
# magic, version, header bytes, slots, SipHash key, used slots (changed atomically), 16 zero bytes
_IDS_LAYOUT = struct.Struct("<8sIIQ16sQ16x")
_IDS_USED = 5  # index of the used-slot counter among the file's 64-bit words
_JNL_MAGIC = b"RINHAJNL"
_JNL_VERSION = 1
_JNL_HEADER = 16
_JNL_LAYOUT = struct.Struct("<8sII")  # magic, version, record bytes
_NO_FALLOCATE = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS}  # cannot preallocate
_JOURNAL_CHUNK = 1 << 20  # the journal's file grows by this much at a time, ahead of its records
_FLOCK = struct.Struct("@hhqqi4x")  # Linux's struct flock: type, whence, start, length, pid
_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", None)  # open file description locks (Linux)
_OFD_SETLKW = getattr(fcntl, "F_OFD_SETLKW", None)
_NO_LOCKS = {errno.EINVAL, errno.ENOLCK, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}


def _make_parent(path: str) -> str:
    """Create path's directory (mode 0700) if missing; return it."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    return directory


def _ids_slots(capacity: int) -> int:
    """The smallest power of two >= capacity * 4 / 3: capacity ids fit at load <= 0.75."""
    need = -(-capacity * 4 // 3)
    return 1 << (need - 1).bit_length()


def _check_ids_header(path: str, header: bytes, size: int) -> tuple[int, bytes]:
    """(slots, key) of a shared id table's header, or FileFormatError."""
    if len(header) < _IDS_HEADER or header[:8] != _IDS_MAGIC:
        raise FileFormatError(f"{path}: not a rinha shared id table (bad magic)")
    _, version, header_size, slots, key, _ = _IDS_LAYOUT.unpack(header)
    if version != _IDS_VERSION:
        raise FileFormatError(
            f"{path}: shared id table format version {version}, this build reads {_IDS_VERSION}"
        )
    if (
        header_size != _IDS_HEADER
        or slots < 2
        or slots & (slots - 1)
        or size != _IDS_HEADER + slots * 8
    ):
        raise FileFormatError(f"{path}: corrupt shared id table ({slots} slots, {size} bytes)")
    return slots, key


def _create_ids_file(path: str, capacity: int) -> int:
    """A new table written whole under a temporary name, then linked to path: a process that
    opens path sees a complete file or none. Returns an O_RDWR fd of path's file, which is
    another process's if it linked first."""
    slots = _ids_slots(capacity)
    size = _IDS_HEADER + slots * 8
    directory = _make_parent(path)
    tmp = os.path.join(
        directory, f".{os.path.basename(path)}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
    )
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            # blocks allocated now: a store through the mapping on a full disk would be SIGBUS
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno not in _NO_FALLOCATE:
                raise
            os.ftruncate(fd, size)
        header = _IDS_LAYOUT.pack(_IDS_MAGIC, _IDS_VERSION, _IDS_HEADER, slots, os.urandom(16), 0)
        os.pwrite(fd, header, 0)
        os.fsync(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            os.close(fd)
            fd = -1
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise
    finally:
        os.unlink(tmp)
    return fd


def _open_ids_file(path: str, capacity: int) -> tuple[int, int, int, bytes]:
    """(fd, size, slots, key) of the shared id table at path, created if missing."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        fd = _create_ids_file(path, capacity)
    try:
        size = os.fstat(fd).st_size
        slots, key = _check_ids_header(path, os.pread(fd, _IDS_HEADER, 0), size)
    except BaseException:
        os.close(fd)
        raise
    return fd, size, slots, key


def _check_journal_header(path: str, header: bytes) -> None:
    if len(header) < _JNL_HEADER or header[:8] != _JNL_MAGIC:
        raise FileFormatError(f"{path}: not a rinha journal (bad magic)")
    _, version, record = _JNL_LAYOUT.unpack(header)
    if version != _JNL_VERSION or record != _REC:
        raise FileFormatError(
            f"{path}: journal format version {version} with {record}-byte records, "
            f"this build reads version {_JNL_VERSION} with {_REC}"
        )


def _lock_journal(fd: int, exclusive: bool, wait: bool) -> bool:
    """Set this open file description's lock on the whole journal file: shared (every open
    Journal holds one) or exclusive (taken for a moment to cut the file). False if another open
    file description holds a conflicting lock and not wait; True where the system has no OFD
    locks (a Journal then acts as its file's only user)."""
    command = _OFD_SETLKW if wait else _OFD_SETLK
    if command is None:
        return True
    request = _FLOCK.pack(fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0)
    try:
        fcntl.fcntl(fd, command, request)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES) and not wait:
            return False
        if exc.errno in _NO_LOCKS:
            return True
        raise
    return True


def _zeros_start(fd: int, size: int, length: int) -> int:
    """Where the zero bytes that end the file's bytes size..length start (size if all are)."""
    end = length
    while end > size:
        start = max(size, end - 65536)
        kept = len(os.pread(fd, end - start, start).rstrip(b"\0"))
        if kept:
            return start + kept
        end = start
    return size


def _cut_journal(fd: int, size: int, zeros_only: bool = False) -> bool:
    """Cut the file to size bytes (zeros_only: only the zeros that end it, back to size at
    most), unless another open Journal holds it too: that one's mapping would then reach past
    the end of the file (SIGBUS on its next record). True if cut (or already that short)."""
    if not _lock_journal(fd, True, False):
        return False
    try:
        length = os.fstat(fd).st_size
        if zeros_only:
            size = _zeros_start(fd, size, length)
        if length > size:
            os.ftruncate(fd, size)
    finally:
        _lock_journal(fd, False, True)
    return True


def _allocate_journal(fd: int, start: int, end: int) -> None:
    """Disk blocks for bytes start..end of the file, which grows to end bytes if shorter: a full
    disk is an OSError now rather than a SIGBUS when a record is copied into the mapping. Where
    the file system cannot preallocate, the file is only extended (ftruncate)."""
    try:
        os.posix_fallocate(fd, start, end - start)
    except OSError as exc:
        if exc.errno not in _NO_FALLOCATE:
            raise
        if os.fstat(fd).st_size < end:
            os.ftruncate(fd, end)


def _open_journal_file(path: str) -> tuple[int, int]:
    """(fd, file size) of the journal at path, opened O_RDWR and created if missing; the fd
    holds a shared lock (see _cut_journal)."""
    _make_parent(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        _lock_journal(fd, False, True)
        header = os.pread(fd, _JNL_HEADER, 0)
        expected = _JNL_LAYOUT.pack(_JNL_MAGIC, _JNL_VERSION, _REC)
        if len(header) < _JNL_HEADER and expected.startswith(header):  # new, or torn at birth
            os.ftruncate(fd, 0)
            if os.pwrite(fd, expected, 0) != _JNL_HEADER:
                raise OSError(errno.EIO, "short write of the journal header", path)
        else:
            _check_journal_header(path, header)
        size = os.fstat(fd).st_size
    except BaseException:
        os.close(fd)
        raise
    return fd, size


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- shared id table ----------------------------------------------------------------------------


def _amount_tag(cents: int) -> int:
    """The top byte of a Fibonacci hash of the cents."""
    return ((cents * 0x9E3779B97F4A7C15) & _M64) >> 56


class SharedIdSet:
    """The cluster's correlationIds, in a file every instance maps MAP_SHARED.

    The compiled twin inserts with one compare-and-swap per id; this one holds an flock on the
    file around each claim, so it is safe against itself, and shares only the format (not the
    locking) with the compiled one.
    """

    __slots__ = ("_path", "_owner", "_fd", "_map", "_words", "_mask", "_limit", "_key", "_nbytes")

    def __init__(self, path: str, capacity: int, owner: int) -> None:
        capacity, owner = _int64(capacity), _int64(owner)
        self._map: mmap.mmap | None = None
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        if capacity > 2**40:
            raise ValueError("capacity must be <= 2**40")
        if not 0 <= owner <= 254:
            raise ValueError(f"owner must be in 0..254, not {owner}")
        self._path = os.fspath(path)
        fd, size, slots, key = _open_ids_file(self._path, capacity)
        try:
            self._map = mmap.mmap(
                fd,
                size,
                mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0),
                mmap.PROT_READ | mmap.PROT_WRITE,
            )
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd  # kept for flock
        self._words = memoryview(self._map).cast("Q")  # the slots start at word 8
        self._nbytes = size
        self._mask = slots - 1
        self._limit = slots * 3 // 4
        self._key = key
        self._owner = owner

    def __del__(self) -> None:
        if getattr(self, "_map", None) is not None:
            self.close()

    def _ready(self) -> mmap.mmap:
        if self._map is None:
            raise ValueError("SharedIdSet is closed")
        return self._map

    def _fp(self, raw: bytes) -> int:
        return (_siphash24(self._key, raw) >> 16) or 1

    def claim(self, correlation_id: str, cents: int) -> int:
        self._ready()
        raw = _uuid_raw(correlation_id)
        cents = _int64(cents)
        if cents < 0:
            raise ValueError("cents must be >= 0")
        fp, tag = self._fp(raw), _amount_tag(cents)
        words = self._words
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            i = fp & self._mask
            for _ in range(self._mask + 1):
                seen = words[8 + i]
                if seen == 0:
                    used = words[_IDS_USED]
                    if used >= self._limit:
                        return CLAIM_FULL
                    words[8 + i] = (fp << 16) | (self._owner << 8) | tag
                    words[_IDS_USED] = used + 1
                    return CLAIM_NEW
                if seen >> 16 == fp:
                    if seen & 0xFF != tag:
                        return CLAIM_CONFLICT
                    return CLAIM_MINE if (seen >> 8) & 0xFF == self._owner else CLAIM_OTHER
                i = (i + 1) & self._mask
            return CLAIM_FULL
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _owner_of_raw(self, raw: bytes) -> int | None:
        fp = self._fp(raw)
        i = fp & self._mask
        for _ in range(self._mask + 1):
            seen = self._words[8 + i]
            if seen == 0:
                return None
            if seen >> 16 == fp:
                return (seen >> 8) & 0xFF
            i = (i + 1) & self._mask
        return None

    def owner_of(self, correlation_id: str) -> int | None:
        self._ready()
        return self._owner_of_raw(_uuid_raw(correlation_id))

    def __contains__(self, correlation_id: object) -> bool:
        self._ready()
        if not isinstance(correlation_id, str) or not _UUID.fullmatch(correlation_id):
            return False
        return self._owner_of_raw(_uuid_raw(correlation_id)) is not None

    def __len__(self) -> int:
        self._ready()
        return self._words[_IDS_USED]

    def clear(self) -> None:
        table = self._ready()
        zeros = bytes(1 << 20)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            for start in range(_IDS_HEADER, self._nbytes, len(zeros)):
                end = min(start + len(zeros), self._nbytes)
                table[start:end] = zeros[: end - start]
            self._words[_IDS_USED] = 0
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._map is not None:
            self._words.release()
            self._map.close()
            self._map = None
            os.close(self._fd)

    def __enter__(self) -> SharedIdSet:
        self._ready()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def capacity(self) -> int:
        return self._limit

    @property
    def nbytes(self) -> int:
        return self._nbytes

    @property
    def path(self) -> str:
        return self._path

    @property
    def owner(self) -> int:
        return self._owner


# -- journal ------------------------------------------------------------------------------------
# A 16-byte header, then records of 40 bytes: magic 0xA5, kind, processor, a zero byte, int64
# cents, int64 epoch ms, the UUID's 16 bytes, and the CRC-32 of those 36 bytes. A snapshot (kind
# 6) is such a record with the entry count in the cents field, followed by that many
# (epoch ms int64, cents int64) pairs and the CRC-32 of the pairs (4 bytes).
#
# Records are copied into a MAP_SHARED mapping of the file (no system call: a page-cache page
# outlives the process). The file is allocated (posix_fallocate) and mapped _JOURNAL_CHUNK bytes
# at a time ahead of the records, so while it is open (or after its process was killed) it ends
# in zeros: the logical end is where the records stop, at the first all-zero slot. close() and
# replay() cut the zeros off again.

_REC = 40
_REC_MAGIC = 0xA5
_RECORD = struct.Struct("<BBBBqq16s")  # the 36 bytes the CRC covers
_CRC = struct.Struct("<I")
_PAIR = struct.Struct("<qq")
_SNAP_CHUNK = 4096  # ledger entries per write(2) of a snapshot (64 KiB)
_NO_ID = bytes(16)

Record = tuple[int, str, int, int, int]  # (kind, correlationId, cents, processor, epoch ms)


def _encode(kind: int, processor: int, raw: bytes, cents: int, ms: int) -> bytes:
    body = _RECORD.pack(_REC_MAGIC, kind, processor, 0, cents, ms, raw)
    return body + _CRC.pack(zlib.crc32(body))


def _check_record(kind: int, processor: int, cents: int) -> None:
    if not 1 <= kind <= 5:
        raise ValueError(f"record kind must be 1..5, not {kind}")
    if processor not in (0, 1):
        raise ValueError(f"processor must be 0 or 1, not {processor}")
    if cents < 0:
        raise ValueError("cents must be >= 0")


def _write_fd(fd: int, data: bytes | bytearray | memoryview, path: str) -> None:
    """All of data with write(2), again after a short write; OSError if the kernel refuses (some
    of the bytes may then be in the file)."""
    done = 0
    with memoryview(data) as view:  # released on error too: the caller may resize data
        while done < len(view):
            with view[done:] as rest:
                wrote = os.write(fd, rest)  # retried after EINTR by Python itself
            if wrote == 0:
                raise OSError(errno.EIO, "write(2) wrote nothing", path)
            done += wrote


def _ledger(value: object) -> Ledger:
    if not isinstance(value, Ledger):
        raise TypeError(f"expected a Ledger, not {type(value).__name__}")
    return value


def _write_snapshot(fd: int, ledger: Ledger, processor: int, path: str) -> int:
    """Write ledger as a snapshot block; its size in bytes."""
    entries = ledger._entries()
    _write_fd(fd, _encode(J_SNAPSHOT, processor, _NO_ID, len(entries), 0), path)
    crc = 0
    for start in range(0, len(entries), _SNAP_CHUNK):
        chunk = b"".join(
            _PAIR.pack(ms, cents) for ms, cents in entries[start : start + _SNAP_CHUNK]
        )
        crc = zlib.crc32(chunk, crc)
        _write_fd(fd, chunk, path)
    _write_fd(fd, _CRC.pack(crc), path)
    return _REC + 16 * len(entries) + 4


def _walk(data: bytes, records: list[Record] | None, ledgers: tuple[Ledger, Ledger] | None) -> int:
    """Where the first record that is short, zero, torn, corrupt or senseless starts (len(data)
    if none). With records and ledgers, every record before it goes to records as a tuple and
    the snapshots' entries to ledgers[0] (default) / ledgers[1] (fallback)."""
    size = len(data)
    pos = _JNL_HEADER
    while size - pos >= _REC:
        magic, kind, processor, zero, cents, ms, raw = _RECORD.unpack_from(data, pos)
        (crc,) = _CRC.unpack_from(data, pos + 36)
        if magic != _REC_MAGIC or crc != zlib.crc32(data[pos : pos + 36]):
            break  # zeros (the unused part of the file), or torn or corrupt
        if not 1 <= kind <= J_SNAPSHOT or processor > 1 or zero or cents < 0:
            break
        if kind != J_SNAPSHOT:
            if records is not None:
                records.append((kind, _uuid_str(raw), cents, processor, ms))
            pos += _REC
            continue
        count = cents
        if count > (size - pos - _REC - 4) // 16:
            break  # torn
        start, end = pos + _REC, pos + _REC + 16 * count
        if _CRC.unpack_from(data, end)[0] != zlib.crc32(data[start:end]):
            break
        if ledgers is not None:
            ledgers[processor]._load(list(_PAIR.iter_unpack(data[start:end])))
        pos = end + 4
    return pos


def _data_end(data: bytes, pos: int) -> int:
    """len(data) less the zero bytes that end it, but not less than pos."""
    end = len(data)
    while end > pos:
        start = max(pos, end - 65536)
        kept = len(data[start:end].rstrip(b"\0"))
        if kept:
            return start + kept
        end = start
    return pos


class Journal:
    """One instance's append-only log of its payments (see rinha/_fast.pyi)."""

    __slots__ = ("_path", "_fd", "_sync", "_map", "_size", "_synced", "_buffer", "_dropped")

    def __init__(self, path: str, sync: bool = False) -> None:
        self._fd = -1
        self._map: mmap.mmap | None = None  # the file mapped from offset 0, until unmapped
        self._buffer = bytearray()  # records held while the file could not be extended
        self._dropped = 0
        self._synced = 0  # bytes before this offset were synced by the last sync
        self._sync = bool(sync)
        self._path = os.fspath(path)
        self._fd, _ = _open_journal_file(self._path)
        # _size, the logical end: where the records stop when only zeros follow (the clean
        # end); past the damage otherwise, as before: replay() first, or what is appended goes
        # when the next replay cuts the damage off
        _, self._size = self._scan(None, None)

    def __del__(self) -> None:
        self._unmap()
        if getattr(self, "_fd", -1) >= 0:
            os.close(self._fd)

    def _ready(self) -> None:
        if self._fd < 0:
            raise ValueError("journal is closed")

    def _unmap(self) -> None:
        mapped = getattr(self, "_map", None)
        if mapped is not None:
            mapped.close()
            self._map = None

    def _room(self, n: int) -> None:
        """Make the mapping reach n bytes past the logical end: allocate the file a chunk
        further and map it whole again. OSError (nothing changed) if the disk is full."""
        need = self._size + n
        if self._map is not None and need <= len(self._map):
            return
        length = -(-need // _JOURNAL_CHUNK) * _JOURNAL_CHUNK
        _allocate_journal(self._fd, self._size, length)
        mapped = mmap.mmap(
            self._fd, length, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE
        )
        self._unmap()
        self._map = mapped

    def _put(self, data: bytes | bytearray) -> None:
        """Copy data to the logical end (the mapping reaches that far)."""
        assert self._map is not None
        self._map[self._size : self._size + len(data)] = data
        self._size += len(data)

    def _sync_now(self) -> None:
        """msync(MS_SYNC) of the pages written since the last sync, then fdatasync (the file's
        length and blocks, and anything written through an earlier mapping)."""
        if self._map is not None and self._synced < self._size:
            start = self._synced - self._synced % mmap.PAGESIZE
            self._map.flush(start, self._size - start)
        os.fdatasync(self._fd)
        self._synced = self._size

    def _record(self, kind: int, correlation_id: str, cents: int, processor: int, ms: int) -> None:
        """Copy one record to the logical end of the file; held in memory instead if the file
        cannot be extended (never OSError)."""
        cents, ms, processor = _int64(cents), _int64(ms), _int64(processor)
        raw = _uuid_raw(correlation_id)
        _check_record(kind, processor, cents)
        self._ready()
        record = _encode(kind, processor, raw, cents, ms)
        if not self._buffer:
            try:
                self._room(_REC)
            except OSError:
                pass
            else:
                self._put(record)
                return
        self._buffer += record

    def accept(self, correlation_id: str, cents: int) -> None:
        cents = _int64(cents)
        raw = _uuid_raw(correlation_id)
        _check_record(J_ACCEPT, 0, cents)
        self._ready()
        record = _encode(J_ACCEPT, 0, raw, cents, 0)
        self._room(len(self._buffer) + _REC)  # OSError: nothing of it is in the file
        self.flush()  # records held in memory go first: file order is call order
        self._put(record)
        if self._sync:
            try:
                self._sync_now()
            except BaseException:  # the record is taken back: zeros, the logical end
                self._size -= _REC
                self._put(bytes(_REC))
                self._size -= _REC
                raise

    def attempt(self, correlation_id: str, cents: int, processor: int, ms: int) -> None:
        self._record(J_ATTEMPT, correlation_id, cents, processor, ms)

    def stored(self, correlation_id: str, cents: int, processor: int, ms: int) -> None:
        self._record(J_STORED, correlation_id, cents, processor, ms)

    def released(self, correlation_id: str, cents: int, processor: int) -> None:
        self._record(J_RELEASED, correlation_id, cents, processor, 0)

    def finished(self, correlation_id: str, cents: int) -> None:
        self._record(J_FINISHED, correlation_id, cents, 0, 0)

    def flush(self) -> None:
        """Copy the records held in memory (if any) to the file: all, or OSError and none."""
        self._ready()
        if self._buffer:
            self._room(len(self._buffer))
            self._put(self._buffer)
            self._buffer = bytearray()

    def sync(self) -> None:
        self.flush()
        self._sync_now()

    def _read_all(self, size: int) -> bytes:
        parts, pos = [], 0
        while pos < size:
            part = os.pread(self._fd, size - pos, pos)
            if not part:
                break
            parts.append(part)
            pos += len(part)
        return b"".join(parts)

    def _scan(
        self, records: list[Record] | None, ledgers: tuple[Ledger, Ledger] | None
    ) -> tuple[int, int]:
        """(where a replay stops, where the file's data ends: past its last non-zero byte, and
        not before the former); records and ledgers as _walk's."""
        size = os.fstat(self._fd).st_size
        _check_journal_header(self._path, os.pread(self._fd, _JNL_HEADER, 0))
        data = self._read_all(size)
        pos = _walk(data, records, ledgers)
        return pos, _data_end(data, pos)

    def replay(self, ledgers: Sequence[Ledger]) -> list[Record]:
        default, fallback = _ledger(ledgers[0]), _ledger(ledgers[1])
        if self._fd < 0:
            raise ValueError("journal is closed")
        self.flush()
        records: list[Record] = []
        pos, end = self._scan(records, (default, fallback))
        self._unmap()  # it may reach past pos: the next record maps the file again
        self._dropped = end - pos
        self._size = pos
        self._synced = min(self._synced, pos)
        _cut_journal(self._fd, pos)
        return records

    def compact(self, ledgers: Sequence[Ledger], pending: Iterable[Record]) -> None:
        default, fallback = _ledger(ledgers[0]), _ledger(ledgers[1])
        encoded = bytearray()
        for kind, correlation_id, cents, processor, ms in pending:
            kind, cents, processor, ms = _int64(kind), _int64(cents), _int64(processor), _int64(ms)
            raw = _uuid_raw(correlation_id)
            _check_record(kind, processor, cents)
            encoded += _encode(kind, processor, raw, cents, ms)
        self.flush()  # to the old file: if the new one never takes its place, nothing is lost
        directory = os.path.dirname(os.path.abspath(self._path))
        tmp = f"{self._path}.{os.getpid()}.compact.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            _lock_journal(fd, False, True)  # as every open journal's (see _cut_journal)
            _write_fd(fd, _JNL_LAYOUT.pack(_JNL_MAGIC, _JNL_VERSION, _REC), tmp)
            size = _JNL_HEADER
            size += _write_snapshot(fd, default, 0, tmp)
            size += _write_snapshot(fd, fallback, 1, tmp)
            _write_fd(fd, encoded, tmp)
            size += len(encoded)
            os.fsync(fd)
            os.rename(tmp, self._path)
        except BaseException:
            os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        self._unmap()
        old, self._fd, self._size, self._synced = self._fd, fd, size, size
        os.close(old)
        _fsync_directory(directory)  # the rename itself outlives a power cut

    def clear(self) -> None:
        if self._fd < 0:
            raise ValueError("journal is closed")
        self._unmap()
        os.ftruncate(self._fd, _JNL_HEADER)
        self._buffer = bytearray()
        self._size = _JNL_HEADER
        self._synced = min(self._synced, _JNL_HEADER)

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            self.flush()
        finally:
            self._unmap()
            try:
                # the unused zeros past the records; never data, which a Journal whose
                # size is stale (another appended since it looked) would not know of
                _cut_journal(self._fd, self._size, zeros_only=True)
            finally:
                os.close(self._fd)
                self._fd = -1
                self._buffer = bytearray()

    def __enter__(self) -> Journal:
        self._ready()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def path(self) -> str:
        return self._path

    @property
    def size(self) -> int:
        return self._size

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)

    @property
    def dropped_bytes(self) -> int:
        return self._dropped


# -- accepted payments, and POST /payments framed and answered without the general parser --------


class PaymentQueue:
    """Payments accepted and not yet attempted, first in first out: (correlationId, cents)."""

    def __init__(self) -> None:
        self._items: deque[tuple[str, int]] = deque()

    def push(self, correlation_id: str, cents: int) -> None:
        self._items.append((_uuid_str(_uuid_raw(correlation_id)), _int64(cents)))

    def push_front(self, correlation_id: str, cents: int) -> None:
        self._items.appendleft((_uuid_str(_uuid_raw(correlation_id)), _int64(cents)))

    def pop(self) -> tuple[str, int]:
        if not self._items:
            raise IndexError("pop from an empty PaymentQueue")
        return self._items.popleft()

    def pop_payment(self) -> Payment:
        return Payment(*self.pop())

    def items(self) -> list[tuple[str, int]]:
        return list(self._items)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


_POST_PAYMENTS = b"POST /payments HTTP/1.1\r\n"
_MAX_HEAD = 8192  # bytes of a request line and headers the intake frames (as protocol.py)
_TCHARS = frozenset(
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_REFUSED_HEADERS = (b"transfer-encoding", b"expect", b"upgrade")


_LINE_BAD, _LINE_INCOMPLETE, _LINE_END, _LINE_HEADER = -1, 0, 1, 2


def _head_line(data: bytes, q: int) -> tuple[int, int, bytes, bytes]:
    """(kind, where the next line starts, lower-case name, value) of the head line at data[q:]:
    _LINE_HEADER, _LINE_END (the blank line), _LINE_INCOMPLETE or _LINE_BAD (see _fast.pyx)."""
    end = len(data)
    if end - q < 2:
        return _LINE_INCOMPLETE, q, b"", b""
    if data[q] == 0x0D:  # CR
        return (_LINE_END, q + 2, b"", b"") if data[q + 1] == 0x0A else (_LINE_BAD, q, b"", b"")
    name_start = q
    while q < end and data[q] in _TCHARS:
        q += 1
    if q >= end:
        return _LINE_INCOMPLETE, q, b"", b""
    name = data[name_start:q].lower()
    if not name or data[q] != 0x3A:  # ':'
        return _LINE_BAD, q, b"", b""
    q += 1
    while q < end and data[q] in (0x20, 0x09):
        q += 1
    value_start = q
    while q < end and data[q] != 0x0D:
        if (data[q] < 0x20 and data[q] != 0x09) or data[q] == 0x7F:
            return _LINE_BAD, q, b"", b""
        q += 1
    if end - q < 2:
        return _LINE_INCOMPLETE, q, b"", b""
    if data[q + 1] != 0x0A:
        return _LINE_BAD, q, b"", b""
    return _LINE_HEADER, q + 2, name, data[value_start:q].rstrip(b" \t")


def _content_length(value: bytes) -> int:
    """1 to 9 digits, nothing else; -1 otherwise."""
    return int(value) if value and len(value) <= 9 and value.isdigit() else -1


def _frame_post(data: bytes, p: int, max_body: int) -> tuple[int, int, int]:
    """(length, body start, body length) of one whole, plain `POST /payments HTTP/1.1`
    request at data[p:]; length 0 for anything else (see _fast.pyx _frame_post)."""
    end = len(data)
    if not data.startswith(_POST_PAYMENTS, p):
        return 0, 0, 0
    q = p + len(_POST_PAYMENTS)
    length = -1
    while True:
        if q - p > _MAX_HEAD:
            return 0, 0, 0
        line, q, name, value = _head_line(data, q)
        if line == _LINE_END:
            break
        if line != _LINE_HEADER:
            return 0, 0, 0
        if name == b"content-length":
            if length >= 0:
                return 0, 0, 0
            length = _content_length(value)
            if length < 0:
                return 0, 0, 0
        elif name == b"connection":
            if value.lower() != b"keep-alive":
                return 0, 0, 0
        elif name in _REFUSED_HEADERS:
            return 0, 0, 0
    if length < 0 or length > max_body or end - q < length:
        return 0, 0, 0
    return q - p + length, q, length


class PaymentIntake:
    """POST /payments framed and answered without the general parser, for a connection at a
    request boundary: `feed(data, room)` -> (bytes used, answers, payments accepted)."""

    def __init__(
        self,
        ids: SharedIdSet,
        journal: Journal,
        queue: PaymentQueue,
        max_body: int,
        answers: tuple[bytes, bytes, bytes, bytes, bytes],
    ) -> None:
        self._ids = ids
        self._journal = journal
        self._queue = queue
        self._max_body = max_body
        (
            self._accepted_answer,
            self._duplicate_answer,
            self._mismatch_answer,
            self._ids_full_answer,
            self._backlog_full_answer,
        ) = answers
        self.accepted = 0
        self.rejected = 0
        self.duplicates = 0
        self.refused_full = 0

    def feed(self, data: bytes, room: int) -> tuple[int, bytes, int]:
        p = 0
        taken = 0
        answers: list[bytes] = []
        if self._ids._map is None or self._journal._fd < 0:
            return 0, b"", 0  # closed (shutdown): the general path answers
        while p < len(data):
            n, body_start, body_len = _frame_post(data, p, self._max_body)
            if n == 0:
                break
            try:
                correlation_id, cents = parse_payment(data[body_start : body_start + body_len])
            except InvalidPayment:
                break  # the general path answers 400 with the reason
            if room <= 0:
                self.refused_full += 1
                answer = self._backlog_full_answer
            else:
                try:  # on disk (page cache) before the claim and the 202
                    self._journal.accept(correlation_id, cents)
                except OSError:
                    break  # the general path logs it and answers 503
                claim = self._ids.claim(correlation_id, cents)
                if claim == CLAIM_NEW:
                    self._queue.push(correlation_id, cents)
                    self.accepted += 1
                    taken += 1
                    room -= 1
                    answer = self._accepted_answer
                elif claim == CLAIM_CONFLICT:
                    self.rejected += 1
                    answer = self._mismatch_answer
                elif claim == CLAIM_FULL:
                    self.refused_full += 1
                    answer = self._ids_full_answer
                else:  # CLAIM_MINE, CLAIM_OTHER: accepted before, here or by a peer
                    self.duplicates += 1
                    answer = self._duplicate_answer
            p += n
            answers.append(answer)
        return p, b"".join(answers), taken


# -- the clients' connections and the pump's clock ------------------------------------------------


class DispatcherCore:
    """The hot half of rinha.dispatcher.Dispatcher (see _fast.pyi): what is queued, an arrival,
    and when the pump runs next. The Python subclass has the pump (`_pump`) and every decision."""

    fresh: Any  # PaymentQueue: accepted, never attempted or known not stored
    _pacing: Any  # CatchUp
    _pump: Callable[[], None]  # the subclass's

    def __init__(self) -> None:
        self.pinned: tuple[deque[Any], deque[Any]] = (deque(), deque())  # per processor index
        self._loop: asyncio.AbstractEventLoop | None = None  # once the first wake has seen it
        self._pump_timer: asyncio.TimerHandle | None = None
        self._pump_at = 0.0  # loop time the pump is due (valid while _pump_timer is set)
        self._tick_s = 0.0  # the dispatch tick, s
        self._closed = False  # no more pumps

    @property
    def backlog(self) -> int:
        return len(self.fresh) + len(self.pinned[0]) + len(self.pinned[1])

    def arrived(self, n: int) -> None:
        self._pacing.arrive(n)
        self._wake()

    def _wake(self, delay_s: float | None = None) -> None:
        if self._closed:
            return
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        delay_s = self._tick_s if delay_s is None else delay_s
        at = loop.time() + delay_s
        if self._pump_timer is not None:
            if self._pump_at <= at:
                return
            self._pump_timer.cancel()
        self._pump_at = at
        self._pump_timer = loop.call_later(delay_s, self._pump)  # call_at would add a time()


class ProtocolCore:
    """The hot half of rinha.protocol.HttpProtocol (see _fast.pyi): `data_received`. The Python
    subclass has `_parse` (httptools) and the rest of the connection's life."""

    __slots__ = (
        "transport",
        "closing",
        "started",
        "idle_since",
        "pending",
        "watch",
        "intake",
        "dispatcher",
        "max_backlog",
    )

    def __init__(self) -> None:
        self.transport: Any = None
        self.closing = False  # read nothing more
        self.started = 0.0  # loop time of the current request's first byte; 0.0: none
        self.idle_since = 0.0  # loop time the last request (or deferred answer) ended
        self.pending: deque[Any] = deque()  # answers waiting for an earlier deferred one
        self.watch: Any = None  # rinha.protocol._Watch: its now_s is the coarse clock
        self.intake: Any = None  # PaymentIntake, or None (httptools alone)
        self.dispatcher: Any = None  # DispatcherCore (or any with backlog and arrived)
        self.max_backlog = 0  # payments queued per instance at most

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if self.intake is not None and not self.started and not self.pending:
            # at a request boundary with nothing owed: the plain POSTs at the start
            dispatcher = self.dispatcher
            used, answers, taken = self.intake.feed(data, self.max_backlog - dispatcher.backlog)
            if used:
                self.transport.write(answers)
                if taken:
                    dispatcher.arrived(taken)
                if used == len(data):
                    self.idle_since = self.watch.now_s
                    return
                data = data[used:]
        self._parse(data)  # type: ignore[attr-defined]


# -- a processor's answer framed without the general parser ---------------------------------------


class ResponseReader:
    """One HTTP/1.1 answer at a time (see _fast.pyi): feed -> 1 whole, 0 more, -1 not ours."""

    def __init__(self) -> None:
        self._held = b""
        self.status = 0
        self.keep_alive = True
        self.body = b""

    def feed(self, data: bytes) -> int:
        buf = self._held = self._held + data
        if len(buf) < 12:
            return 0 if b"HTTP/1.1 ".startswith(buf[:9]) else -1
        if not buf.startswith(b"HTTP/1.1 ") or not buf[9:12].isdigit():
            return -1
        status = int(buf[9:12])
        if status < 200 or status in (204, 304):
            return -1
        line_end = buf.find(b"\r", 12)
        reason = buf[12:] if line_end < 0 else buf[12:line_end]
        if any((c < 0x20 and c != 0x09) or c == 0x7F for c in reason):
            return -1
        if line_end < 0 or len(buf) - line_end < 2:
            return 0 if (len(buf) if line_end < 0 else line_end) <= _MAX_HEAD else -1
        if buf[line_end + 1] != 0x0A:
            return -1
        q = line_end + 2
        length = -1
        keep_alive = True
        end = len(buf)
        while True:
            if q > _MAX_HEAD:
                return -1
            line, q, name, value = _head_line(buf, q)
            if line == _LINE_END:
                break
            if line != _LINE_HEADER:
                return 0 if line == _LINE_INCOMPLETE else -1
            if name == b"content-length":
                if length >= 0:
                    return -1
                length = _content_length(value)
                if length < 0:
                    return -1
            elif name == b"connection":
                if value.lower() == b"close":
                    keep_alive = False
                elif value.lower() != b"keep-alive":
                    return -1
            elif name == b"transfer-encoding":
                return -1
        if length < 0 or end - q > length:
            return -1
        if end - q < length:
            return 0
        self.status, self.keep_alive, self.body = status, keep_alive, buf[q:]
        self._held = b""
        return 1

    def take(self) -> bytes:
        held, self._held = self._held, b""
        return held


# ---------------------------------------------------------------------------- calls
# A payment attempt's life after the pump sends it: the processor's call accounting (ProcessorState,
# the base of rinha.processors.Processor) and the filing of its answer (AttemptFiler). The common
# answer, "stored", is filed by the filer; every other outcome goes to the dispatcher
# (`Dispatcher._attempt_done`), which decides retries and pins.

# how a call ended, as evidence about the processor (rinha.processors exports these)
STORED = 0  # the payment is in its books: counted as processed
ANSWERED = 1  # an answer that stored nothing new (a 422 duplicate; a lookup's 404)
FAILED = 2  # an error status, a timeout or a lost connection
NO_EVIDENCE = 3  # says nothing of its health (429: its queue is full; a 4xx refusal)
UNPINNED = -1


def now_ms() -> int:
    """Wall-clock epoch ms: the clock the processors file `requestedAt` with."""
    return time.time_ns() // 1_000_000


class Payment:
    """One accepted payment on its way to a processor (see _fast.pyi)."""

    __slots__ = ("correlation_id", "cents", "pinned", "requested_at_ms", "checked_ms")

    def __init__(self, correlation_id: str, cents: int) -> None:
        self.correlation_id = _uuid_str(_uuid_raw(correlation_id))
        self.cents = _int64(cents)  # int cents
        self.pinned = UNPINNED  # processor index whose earlier attempt has an unknown outcome
        self.requested_at_ms = 0  # epoch ms of the latest attempt (the pinned one, once pinned)
        self.checked_ms = 0  # epoch ms of the last settle lookup

    def pin(self, processor: int) -> None:
        self.pinned = processor

    def __repr__(self) -> str:
        return f"Payment({self.correlation_id!r}, {self.cents})"


class ProcessorState:
    """A processor's calls out and what their outcomes say of it (see _fast.pyi)."""

    __slots__ = (
        "index",
        "ok",
        "failing",
        "slow_ms",
        "retry_min_ms",
        "retry_max_ms",
        "in_flight",
        "processed",
        "latency_ms",
        "last_outcome_ms",
        "evidence_sent_ms",
        "bad_sent_ms",
        "backoff_ms",
        "next_probe_ms",
        "last_probe_ms",
        "call_starts",
        "health_failing",
        "health_min_ms",
        "health_at_ms",
        "ok_since_ms",
        "unusable_since_ms",
    )

    def __init__(self) -> None:
        self.index = 0
        self.ok = True  # usable at the last refresh (Processor.refresh)
        self.failing = False
        self.slow_ms = 0  # a call slower than this makes it unusable
        self.retry_min_ms = 0  # back-off after a failure: first, ms
        self.retry_max_ms = 0  # back-off cap, and the probe spacing, ms
        self.in_flight = 0
        self.processed = 0
        self.latency_ms = 0.0  # duration of the latest answered call, ms
        self.last_outcome_ms = 0  # epoch ms of the last real answer or timeout
        self.evidence_sent_ms = 0  # send time of the call that set failing/latency
        self.bad_sent_ms = 0  # send time of the newest call that showed it unusable
        self.backoff_ms = 0
        self.next_probe_ms = 0  # epoch ms before which a failing processor is not retried
        self.last_probe_ms = 0  # epoch ms of the last probe sent while unusable
        # payment attempt out -> epoch ms sent (one attempt per payment; insertion ordered)
        self.call_starts: dict[Payment, int] = {}
        self.health_failing = False  # the last shared health report
        self.health_min_ms = 0
        self.health_at_ms = 0  # epoch ms it was taken
        self.ok_since_ms = 0  # epoch ms at which `ok` last became true
        self.unusable_since_ms: int | None = None  # epoch ms; None while usable

    def start_call(self, payment: Payment, now: int) -> None:
        if not self.ok:
            self.last_probe_ms = now
        self.in_flight += 1
        self.call_starts[payment] = now

    def end_call(self, payment: Payment, now: int, outcome: int) -> None:
        sent_ms = self.call_starts.pop(payment)
        self.in_flight -= 1
        if outcome == STORED:
            self.processed += 1
        if outcome != NO_EVIDENCE:
            self.observe(now, sent_ms, outcome != FAILED)

    def start_lookup(self) -> None:
        self.in_flight += 1

    def end_lookup(self, now: int, outcome: int) -> None:
        self.in_flight -= 1
        if outcome == STORED:
            self.processed += 1
        elif outcome == FAILED:
            self.observe(now, now, False)

    def observe(self, now: int, sent_ms: int, ok: bool) -> None:
        latency_ms = now - sent_ms
        if not ok or latency_ms > self.slow_ms:
            self.bad_sent_ms = max(self.bad_sent_ms, sent_ms)
        if sent_ms < self.evidence_sent_ms:
            return
        self.evidence_sent_ms = sent_ms
        self.last_outcome_ms = now
        # the latest answer, not an average: the judge switches delays in steps, and a
        # processor that got fast again must be seen as fast after one probe
        self.latency_ms = float(latency_ms)
        if ok:
            self.failing = False
            self.backoff_ms = 0
            self.next_probe_ms = 0
        else:
            self.failing = True
            self.backoff_ms = min(self.retry_max_ms, max(self.retry_min_ms, self.backoff_ms * 2))
            self.next_probe_ms = now + self.backoff_ms

    # the routing's view
    def health_speaks(self, now: int) -> bool:
        """No real outcome for 2 s, and a health report newer than the last one."""
        return now - self.last_outcome_ms > 2_000 and self.health_at_ms > self.last_outcome_ms

    def oldest_call_age_ms(self, now: int) -> int:
        """Age of the oldest call still out that was sent after the newest evidence (calls
        sent before it, e.g. probes still waiting on a failing processor, are old news)."""
        for started in self.call_starts.values():
            if started >= self.evidence_sent_ms:
                return now - started
        return 0

    def usable(self, now: int) -> bool:
        """Not failing, and no known latency (the latest answer's, the oldest call out's, a
        speaking health report's) above slow_ms."""
        speaks = self.health_speaks(now)
        if self.health_failing if speaks else self.failing:
            return False
        slow = self.slow_ms
        if self.latency_ms > slow or (speaks and self.health_min_ms > slow):
            return False
        return not self.call_starts or self.oldest_call_age_ms(now) <= slow

    def refresh(self, now: int) -> bool:
        """Update `ok` and `unusable_since_ms` (once per dispatcher turn); return `ok`."""
        ok = self.usable(now)
        if ok != self.ok:
            self._log_change(now, ok)
        if ok:
            if not self.ok:
                self.ok_since_ms = now
            self.unusable_since_ms = None
        else:
            if self.unusable_since_ms is None:
                self.unusable_since_ms = now
            age = self.oldest_call_age_ms(now)
            if age > self.slow_ms:  # a call out for that long is evidence of slowness by itself
                self.bad_sent_ms = max(self.bad_sent_ms, now - age)
        self.ok = ok
        return ok

    def _log_change(self, now: int, ok: bool) -> None:
        pass  # rinha.processors.Processor logs it

    def unusable_for_ms(self, now: int) -> int:
        return 0 if self.unusable_since_ms is None else now - self.unusable_since_ms

    def apply_health(self, now: int, failing: bool, min_response_ms: int) -> None:
        self.health_failing = failing
        self.health_min_ms = min_response_ms
        self.health_at_ms = now


class AttemptCall:
    """`done(status, body, error)` of one payment attempt, and its `request` (see _fast.pyi)."""

    __slots__ = ("request", "_filer", "_payment", "_processor")

    def __init__(self, filer: AttemptFiler, payment: Payment, processor: ProcessorState) -> None:
        self.request = b""
        self._filer = filer
        self._payment = payment
        self._processor = processor

    def __call__(self, status: int, body: bytes, error: BaseException | None) -> None:
        self._filer._file(self._payment, self._processor, status, body, error)


class AttemptFiler:
    """Files each payment attempt's answer (see _fast.pyi)."""

    def __init__(
        self,
        ledgers: Sequence[Ledger],
        journal: Journal,
        fresh: PaymentQueue,
        pinned: Sequence[Sized],
        others: Callable[[Payment, ProcessorState, int, bytes, BaseException | None], None],
        wake: Callable[[], None],
        heads: Sequence[bytes],
    ) -> None:
        self._ledgers = tuple(ledgers)
        self._heads = tuple(heads)  # each processor's POST /payments head
        self._journal = journal
        self._fresh = fresh
        self._pinned = pinned
        self._others = others
        self._wake = wake

    def attempt(self, payment: Payment, p: ProcessorState, now: int) -> AttemptCall:
        if payment.pinned != p.index:  # pinned: the identical request, already journaled
            payment.requested_at_ms = now
            self._journal.attempt(payment.correlation_id, payment.cents, p.index, now)
        p.start_call(payment, now)  # a payment has one attempt out at most
        call = AttemptCall(self, payment, p)
        # the same (id, cents, requestedAt) always give the same bytes
        call.request = payment_request(
            self._heads[p.index], payment.correlation_id, payment.cents, payment.requested_at_ms
        )
        return call

    def _file(
        self,
        payment: Payment,
        p: ProcessorState,
        status: int,
        body: bytes,
        error: BaseException | None,
    ) -> None:
        if error is not None or not (
            200 <= status < 300 or (status == 422 and payment.pinned == p.index)
        ):
            self._others(payment, p, status, body, error)
            return
        # stored by this call, or (422) by the earlier unknown one: the same requestedAt
        now = now_ms()
        self._ledgers[p.index].add(payment.requested_at_ms, payment.cents)
        self._journal.stored(
            payment.correlation_id, payment.cents, p.index, payment.requested_at_ms
        )
        p.end_call(payment, now, STORED)
        if self._fresh or self._pinned[0] or self._pinned[1]:
            self._wake()  # something waits for this call's slot: pump next tick


# ---------------------------------------------------------------------------- connection
class Connection:
    """One keep-alive connection of an HttpPool (rinha.http_client), carrying one request at a
    time (see _fast.pyi): the answer, or the failure, goes to that request's `done` callback,
    and the connection back to its pool."""

    __slots__ = (
        "pool",
        "loop",
        "transport",
        "reader",
        "parser",
        "done",
        "deadline",
        "closed",
        "idle_since",
        "_body",
    )

    def __init__(self, pool: Any, frame_answers: bool = True) -> None:
        self.pool: Any = pool  # its HttpPool; None once lost
        # the loop, looked up once: asyncio.get_running_loop() per send costs a getpid()
        # system call, once per payment (strace)
        self.loop = asyncio.get_running_loop()
        self.transport: Any = None
        # answers framed by ResponseReader; the first it does not frame, and everything after
        # it on this connection, go to httptools
        self.reader: ResponseReader | None = ResponseReader() if frame_answers else None
        self.parser: Any = None  # httptools.HttpResponseParser, made when first needed
        self.done: Callable[[int, bytes, BaseException | None], None] | None = None
        self.deadline = 0.0  # loop time by which its answer must be in (HttpPool._sweep)
        self.closed = False
        self.idle_since = 0.0  # loop time it went idle (kept by pools that close idle ones)
        self._body: list[bytes] = []

    # asyncio callbacks
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        if reader is not None:
            framed = reader.feed(data)
            if framed == 1:
                self._answered(reader.status, reader.body, reader.keep_alive)
                return
            if framed == 0:
                return
            self.reader = None  # not one it frames: httptools from here on, from its start
            data = reader.take()
        if self.parser is None:
            self.parser = httptools.HttpResponseParser(self)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(OutcomeUnknown(f"bad response: {exc}"))

    def eof_received(self) -> None:
        return None  # the transport closes itself; connection_lost follows

    def pause_writing(self) -> None:
        pass  # one small request at a time: nothing to hold back

    def resume_writing(self) -> None:
        pass

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self.fail(OutcomeUnknown("connection lost before the answer"))
        # break the cycles (parser and transport call back into us): freed by reference
        # counting, not whenever the GC next runs
        self.transport = None
        self.parser = None
        self.reader = None
        self.pool = None

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body.clear()
        self._answered(self.parser.get_status_code(), body, self.parser.should_keep_alive())

    def _answered(self, status: int, body: bytes, keep_alive: bool) -> None:
        done, self.done = self.done, None
        if done is None:  # an answer nobody asked for: the stream is out of step
            self.fail(OutcomeUnknown("unexpected answer"))
            return
        if keep_alive and self.pool is not None:
            self.pool.release(self)
        else:
            self.close()
        done(status, body, None)

    # used by the pool
    @property
    def writable(self) -> bool:
        """Open, and not closing under us (a FIN read whose connection_lost is still due)."""
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def send(
        self,
        data: bytes,
        timeout_s: float,
        done: Callable[[int, bytes, BaseException | None], None],
    ) -> None:
        assert self.transport is not None and self.done is None and self.pool is not None
        loop = self.loop
        self.done = done
        self.deadline = loop.time() + timeout_s
        self.pool.watch(self)
        try:
            self.transport.write(data)
        except Exception as exc:  # closed under us (e.g. the server's FIN, not yet delivered)
            # the outcome is unknown by the letter (a part may have left); fail on the next
            # loop turn: `done` never runs inside send()
            loop.call_soon(self.fail, OutcomeUnknown(f"write failed: {exc!r}"))

    def fail(self, exc: BaseException) -> None:
        """The request out (if any) fails with exc; this connection is done for."""
        self.close()
        done, self.done = self.done, None
        if done is not None:
            done(0, b"", exc)

    def close(self) -> None:
        self.closed = True
        if self.pool is not None:
            self.pool.forget(self)
        if self.transport is not None:
            self.transport.abort()


class PoolCore:
    """The hot half of a connection pool (see _fast.pyi): `rinha.http_client.HttpPool` is its
    Python subclass, which adds connecting, the cap, the waiting line and the sweep."""

    def __init__(self) -> None:
        self._idle: list[Any] = []  # open, no request out
        self._out: set[Any] = set()  # a request out, waiting for its answer
        # requests waiting for a connection (capped pools only): (data, deadline, done)
        self._waiting: deque[tuple[bytes, float, Any]] = deque()
        self.idle_close_s = 0.0  # > 0: close a connection idle that long
        # one timer for every request's deadline, not one per request; it also serves
        # waiting requests' deadlines and the idle closes
        self._sweep_timer: Any = None

    def send(self, data: bytes, timeout_s: float, done: Any) -> None:
        """Send prebuilt request bytes on an idle connection, or (none) `_send_new`."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.writable:
                conn.send(data, timeout_s, done)
                return
        self._send_new(data, timeout_s, done)  # type: ignore[attr-defined]

    def watch(self, conn: Any) -> None:
        """conn has a request out until conn.deadline: fail it then if no answer came."""
        self._out.add(conn)
        if self._sweep_timer is None or conn.deadline < self._sweep_timer.when():
            self._arm(conn.loop, conn.deadline)  # type: ignore[attr-defined]

    def release(self, conn: Any) -> None:
        """conn's answer is in and it stays open: the next waiting request's, or idle."""
        self._out.discard(conn)
        if self._waiting and conn.writable and self._hand_over(conn):  # type: ignore[attr-defined]
            return
        if self.idle_close_s:
            conn.idle_since = conn.loop.time()
            self._due(conn.loop, conn.idle_since + self.idle_close_s)  # type: ignore[attr-defined]
        self._idle.append(conn)


# ---------------------------------------------------------------------------- pacing
class CatchUp:
    """How many calls one dispatcher pump may start (see _fast.pyi and rinha.pacing)."""

    __slots__ = ("enabled", "cap", "rate", "window_s", "tick_s", "arrived", "credit", "at", "ends")

    def __init__(self, cap: int, rate_per_s: float, window_ms: float, tick_ms: float) -> None:
        self.enabled = rate_per_s > 0  # 0: every pump may start `cap` calls
        self.cap = cap  # calls per pump, whatever the pace
        self.rate = float(rate_per_s)  # backlog calls/s
        self.window_s = window_ms / 1000  # a drain's time limit, s
        self.tick_s = tick_ms / 1000
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
