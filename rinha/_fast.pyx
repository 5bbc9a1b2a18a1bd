# cython: language_level=3
"""Compiled hot paths: the POST /payments body, ISO-8601 <-> epoch ms, the processor request bytes,
the sorted cents ledger, the correlationId set, the cluster's shared id table and the journal.
`rinha/_reference.py` is the readable twin with the same API, behaviour and file formats; the typed
API with docstrings is in `_fast.pyi`.

Money is int64 cents, time int64 epoch ms. Parsing walks `const unsigned char*` over the body's
own buffer: no Python object is made per byte, and none at all until the result.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.number cimport PyNumber_Index
from cpython.unicode cimport (
    PyUnicode_1BYTE_DATA,
    PyUnicode_1BYTE_KIND,
    PyUnicode_GET_LENGTH,
    PyUnicode_KIND,
)
from libc.errno cimport EINTR, EIO, errno
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t, uint32_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcmp, memcpy, memmove, memset

import asyncio
import fcntl
from collections import deque
import gc
import os
import struct

import httptools
from errno import EACCES, EAGAIN, EINVAL, ENOLCK, ENOSYS, ENOTSUP, EOPNOTSUPP

from rinha.errors import (
    OutcomeUnknown,
    FileFormatError,
    InvalidPayment,
    InvalidTimestamp,
    R_UTF8,
    R_JSON,
    R_TRAILING,
    R_NOT_OBJECT,
    R_ID_MISSING,
    R_ID_DUPLICATE,
    R_ID_TYPE,
    R_ID_UUID,
    R_AMOUNT_MISSING,
    R_AMOUNT_DUPLICATE,
    R_AMOUNT_TYPE,
    R_AMOUNT_SIGN,
    R_AMOUNT_LARGE,
    R_AMOUNT_ZERO,
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

ctypedef const unsigned char* cstr

cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)

cdef extern from *:
    """
    #include <stdint.h>
    #include <sys/mman.h>
    #include <unistd.h>
    #if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    #error "rinha/_fast.pyx stores its file formats in host order and needs a little-endian host"
    #endif
    /* the shared id table is written by several processes at once: every access to a slot or
       to the header's counter is one atomic 64-bit operation */
    static inline uint64_t rinha_load(uint64_t *p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
    }
    static inline void rinha_store(uint64_t *p, uint64_t v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE);
    }
    static inline int rinha_cas(uint64_t *p, uint64_t *expected, uint64_t desired) {
        return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_ACQ_REL,
                                           __ATOMIC_ACQUIRE);
    }
    static inline uint64_t rinha_add(uint64_t *p, uint64_t n) {
        return __atomic_add_fetch(p, n, __ATOMIC_ACQ_REL);
    }
    """
    uint64_t _atomic_load "rinha_load"(uint64_t* p) noexcept nogil
    void _atomic_store "rinha_store"(uint64_t* p, uint64_t v) noexcept nogil
    bint _atomic_cas "rinha_cas"(uint64_t* p, uint64_t* expected, uint64_t desired) noexcept nogil
    uint64_t _atomic_add "rinha_add"(uint64_t* p, uint64_t n) noexcept nogil
    void* mmap(void* addr, size_t length, int prot, int flags, int fd, long offset) nogil
    int munmap(void* addr, size_t length) nogil
    int msync(void* addr, size_t length, int flags) nogil
    void* MAP_FAILED
    int PROT_READ
    int PROT_WRITE
    int MAP_SHARED
    int MAP_POPULATE
    int MS_SYNC
    Py_ssize_t c_write "write"(int fd, const void* buf, size_t n) nogil
    int c_fdatasync "fdatasync"(int fd) nogil
    int c_close "close"(int fd) nogil

cdef enum:
    _MAX_DEPTH = 64  # deepest nesting of objects/arrays in a body (the top object is 1)
    _LEDGER_INITIAL = 1024  # entries (16 KiB)
    _IDSET_INITIAL = 1024  # slots (8 KiB), plus the slack
    _IDSET_SLACK = 64  # slots past the last home: the table does not wrap around
    _MS_PER_DAY = 86400000
    _IDS_HEADER = 64  # bytes before the shared id table's slots
    _IDS_VERSION = 1
    _JNL_HEADER = 16  # bytes before the journal's first record
    _JNL_VERSION = 1
    _REC = 40  # bytes per journal record
    _REC_MAGIC = 0xA5  # first byte of every record: zero-filled or torn space does not match
    _JNL_CHUNK = 1 << 20  # the journal's file grows by this much at a time, ahead of its records
    _QUEUE_INITIAL = 1024  # PaymentQueue entries (24 KiB); doubles when full
    _MAX_HEAD = 8192  # bytes of a request line and headers the intake frames (as protocol.py)
    _SNAP_CHUNK = 4096  # ledger entries per write(2) of a snapshot (64 KiB)

cdef int64_t _MAX_CENTS = 10000000000000  # largest accepted amount: 100,000,000,000.00
cdef int64_t _MIN_MS = -62135596800000  # 0001-01-01T00:00:00.000Z
cdef int64_t _MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
cdef int64_t _EXP_CLAMP = 1000000000000000  # |exponent| beyond this changes no outcome
cdef int64_t _DAYS_0001 = -719162  # days from 1970-01-01 back to 0001-01-01

MAX_CENTS = _MAX_CENTS
MIN_MS = _MIN_MS
MAX_MS = _MAX_MS

cdef enum:
    _CLAIM_NEW = 0
    _CLAIM_MINE = 1
    _CLAIM_OTHER = 2
    _CLAIM_CONFLICT = 3
    _CLAIM_FULL = 4

CLAIM_NEW = _CLAIM_NEW
CLAIM_MINE = _CLAIM_MINE
CLAIM_OTHER = _CLAIM_OTHER
CLAIM_CONFLICT = _CLAIM_CONFLICT
CLAIM_FULL = _CLAIM_FULL

J_ACCEPT = 1
J_ATTEMPT = 2
J_STORED = 3
J_RELEASED = 4
J_FINISHED = 5
J_SNAPSHOT = 6

# hex digit value of each byte, -1 if none
cdef signed char _HEX[256]
memset(_HEX, -1, sizeof(_HEX))
cdef int _i
for _i in range(10):
    _HEX[48 + _i] = _i
for _i in range(6):
    _HEX[65 + _i] = 10 + _i
    _HEX[97 + _i] = 10 + _i
cdef const char* _HEX_DIGITS = b"0123456789abcdef"

# CRC-32 as zlib computes it (reflected polynomial 0xEDB88320), eight bytes a step: _CRC[k][b]
# is the CRC of byte b followed by k zero bytes, so eight independent lookups replace a chain of
# eight dependent ones
cdef uint32_t _CRC[8][256]
cdef uint32_t _c
cdef int _k
for _i in range(256):
    _c = <uint32_t>_i
    for _k in range(8):
        _c = (_c >> 1) ^ 0xEDB88320U if _c & 1 else _c >> 1
    _CRC[0][_i] = _c
for _k in range(1, 8):
    for _i in range(256):
        _CRC[_k][_i] = (_CRC[_k - 1][_i] >> 8) ^ _CRC[0][_CRC[_k - 1][_i] & 0xFF]


cdef inline int64_t _i64(object value) except? -1:
    """An int64 from an int (or any __index__), never from a float, as operator.index."""
    if type(value) is not int:
        value = PyNumber_Index(value)
    return value  # OverflowError outside int64


cdef inline bint _digit(unsigned char c) noexcept nogil:
    return <unsigned char>(c - 48) < 10


# -- JSON scanning ------------------------------------------------------------------------------
# Each scanner takes the position of its token and returns the position just past it, or NULL
# when the text is not JSON. The body was checked to be UTF-8 beforehand, so bytes >= 0x80 are
# only looked at as opaque string content.


cdef bint _utf8_ok(cstr s, Py_ssize_t n) noexcept nogil:
    """Strict UTF-8, as Python's decoder: no overlongs, no surrogates, nothing past U+10FFFF."""
    cdef Py_ssize_t i = 0, need, j
    cdef uint64_t word
    cdef unsigned char c, lo, hi
    while i + 8 <= n:  # ASCII fast path, eight bytes at a time
        memcpy(&word, s + i, 8)
        if word & 0x8080808080808080ULL:
            break
        i += 8
    while i < n:
        c = s[i]
        if c < 0x80:
            i += 1
            continue
        lo = 0x80
        hi = 0xBF
        if c < 0xC2:
            return False
        elif c < 0xE0:
            need = 1
        elif c < 0xF0:
            need = 2
            if c == 0xE0:
                lo = 0xA0
            elif c == 0xED:
                hi = 0x9F
        elif c < 0xF5:
            need = 3
            if c == 0xF0:
                lo = 0x90
            elif c == 0xF4:
                hi = 0x8F
        else:
            return False
        if n - i <= need or s[i + 1] < lo or s[i + 1] > hi:
            return False
        for j in range(2, need + 1):
            if s[i + j] & 0xC0 != 0x80:
                return False
        i += need + 1
    return True


cdef inline cstr _ws(cstr p, cstr end) noexcept nogil:
    while p < end and (p[0] == c' ' or p[0] == c'\n' or p[0] == c'\r' or p[0] == c'\t'):
        p += 1
    return p


cdef cstr _string(cstr p, cstr end, bint* escaped) noexcept nogil:
    """p is just past the opening quote."""
    cdef unsigned char c
    while p < end:
        c = p[0]
        if c == c'"':
            return p + 1
        if c == c'\\':
            if end - p < 2:
                return NULL
            c = p[1]
            if c == c'u':
                if (end - p < 6 or _HEX[p[2]] < 0 or _HEX[p[3]] < 0 or _HEX[p[4]] < 0
                        or _HEX[p[5]] < 0):
                    return NULL
                p += 6
            elif (c == c'"' or c == c'\\' or c == c'/' or c == c'b' or c == c'f' or c == c'n'
                    or c == c'r' or c == c't'):
                p += 2
            else:
                return NULL
            escaped[0] = True
        elif c < 0x20:
            return NULL
        else:
            p += 1
    return NULL


cdef Py_ssize_t _unescape_ascii(cstr p, cstr end, unsigned char* out,
                                Py_ssize_t cap) noexcept nogil:
    """Decode a valid string body [p, end) into out; -1 if longer than cap or not all ASCII."""
    cdef Py_ssize_t n = 0
    cdef unsigned int c
    while p < end:
        c = p[0]
        if c == c'\\':
            c = p[1]
            if c == c'u':
                c = (_HEX[p[2]] << 12) | (_HEX[p[3]] << 8) | (_HEX[p[4]] << 4) | _HEX[p[5]]
                p += 6
            else:
                if c == c'b':
                    c = 8
                elif c == c'f':
                    c = 12
                elif c == c'n':
                    c = 10
                elif c == c'r':
                    c = 13
                elif c == c't':
                    c = 9
                p += 2  # '"', '\\' and '/' stand for themselves
        else:
            p += 1
        if c >= 0x80 or n == cap:
            return -1
        out[n] = <unsigned char>c
        n += 1
    return n


cdef struct _Number:
    # a JSON number as its text: value = (int digits . frac digits) * 10**exp
    bint neg
    cstr int_start
    cstr int_end
    cstr frac_start
    cstr frac_end
    int64_t exp  # clamped to +-_EXP_CLAMP


cdef cstr _number(cstr p, cstr end, _Number* num) noexcept nogil:
    # The longest number at p, as Python's json scans it: a '.' or 'e' not followed by digits
    # ends the number before it, and is then whatever error the caller makes of it.
    cdef cstr q
    num.neg = p < end and p[0] == c'-'
    if num.neg:
        p += 1
    if p >= end or not _digit(p[0]):
        return NULL
    num.int_start = p
    if p[0] == c'0':
        p += 1
    else:
        while p < end and _digit(p[0]):
            p += 1
    num.int_end = p
    num.frac_start = p
    num.frac_end = p
    num.exp = 0
    if end - p >= 2 and p[0] == c'.' and _digit(p[1]):
        p += 1
        num.frac_start = p
        while p < end and _digit(p[0]):
            p += 1
        num.frac_end = p
    if p < end and (p[0] == c'e' or p[0] == c'E'):
        q = p + 1
        if q < end and (q[0] == c'-' or q[0] == c'+'):
            q += 1
        if q < end and _digit(q[0]):
            while q < end and _digit(q[0]):
                if num.exp < _EXP_CLAMP:
                    num.exp = num.exp * 10 + (q[0] - 48)
                q += 1
            if num.exp > _EXP_CLAMP:
                num.exp = _EXP_CLAMP
            if p[1] == c'-':
                num.exp = -num.exp
            p = q
    return p


cdef cstr _literal(cstr p, cstr end, const char* word, Py_ssize_t n) noexcept nogil:
    if end - p < n or memcmp(p, word, n) != 0:
        return NULL
    return p + n


cdef cstr _value(cstr p, cstr end, int depth) noexcept nogil:
    """Skip any JSON value; depth is the nesting level of the container holding it."""
    cdef bint escaped = False
    cdef _Number num
    if p >= end:
        return NULL
    c = p[0]
    if c == c'"':
        return _string(p + 1, end, &escaped)
    if c == c'{' or c == c'[':
        return _container(p, end, depth + 1)
    if c == c't':
        return _literal(p, end, b"true", 4)
    if c == c'f':
        return _literal(p, end, b"false", 5)
    if c == c'n':
        return _literal(p, end, b"null", 4)
    return _number(p, end, &num)


cdef cstr _container(cstr p, cstr end, int depth) noexcept nogil:
    """An object or array at nesting level depth; p is on its opening bracket."""
    cdef bint is_object = p[0] == c'{'
    cdef unsigned char close = c'}' if is_object else c']'
    cdef bint escaped = False
    if depth > _MAX_DEPTH:
        return NULL
    p = _ws(p + 1, end)
    if p < end and p[0] == close:
        return p + 1
    while True:
        if is_object:
            if p >= end or p[0] != c'"':
                return NULL
            p = _string(p + 1, end, &escaped)
            if p == NULL:
                return NULL
            p = _ws(p, end)
            if p >= end or p[0] != c':':
                return NULL
            p = _ws(p + 1, end)
        p = _value(p, end, depth)
        if p == NULL:
            return NULL
        p = _ws(p, end)
        if p >= end:
            return NULL
        if p[0] == close:
            return p + 1
        if p[0] != c',':
            return NULL
        p = _ws(p + 1, end)


cdef enum _Kind:
    _ABSENT, _STRING, _NUMBER, _OTHER

cdef enum _Key:
    _KEY_OTHER, _KEY_ID, _KEY_AMOUNT


cdef struct _Body:
    # what the scan of the top-level object found
    int n_id
    int n_amount
    _Kind id_kind  # JSON type of the first correlationId value
    cstr id_start  # its string body, between the quotes
    cstr id_end
    bint id_escaped
    _Kind amount_kind
    _Number amount


cdef _Key _key(cstr p, cstr end, bint escaped) noexcept nogil:
    cdef unsigned char buf[16]
    cdef Py_ssize_t n = end - p
    if escaped:
        n = _unescape_ascii(p, end, buf, 16)
        p = buf
    if n == 13 and memcmp(p, b"correlationId", 13) == 0:
        return _KEY_ID
    if n == 6 and memcmp(p, b"amount", 6) == 0:
        return _KEY_AMOUNT
    return _KEY_OTHER


cdef cstr _top_object(cstr p, cstr end, _Body* body) noexcept nogil:
    """The top-level object; p is just past '{'. Records the first correlationId and amount."""
    cdef cstr key
    cdef bint escaped
    cdef _Key which
    p = _ws(p, end)
    if p < end and p[0] == c'}':
        return p + 1
    while True:
        if p >= end or p[0] != c'"':
            return NULL
        key = p + 1
        escaped = False
        p = _string(key, end, &escaped)
        if p == NULL:
            return NULL
        which = _key(key, p - 1, escaped)
        p = _ws(p, end)
        if p >= end or p[0] != c':':
            return NULL
        p = _ws(p + 1, end)
        if p >= end:
            return NULL
        if which == _KEY_ID:
            body.n_id += 1
            if body.n_id == 1 and p[0] == c'"':
                body.id_kind = _STRING
                body.id_start = p + 1
                p = _string(p + 1, end, &body.id_escaped)
                if p == NULL:
                    return NULL
                body.id_end = p - 1
            else:
                if body.n_id == 1:
                    body.id_kind = _OTHER
                p = _value(p, end, 1)
        elif which == _KEY_AMOUNT:
            body.n_amount += 1
            if body.n_amount == 1 and (p[0] == c'-' or _digit(p[0])):
                body.amount_kind = _NUMBER
                p = _number(p, end, &body.amount)
            else:
                if body.n_amount == 1:
                    body.amount_kind = _OTHER
                p = _value(p, end, 1)
        else:
            p = _value(p, end, 1)
        if p == NULL:
            return NULL
        p = _ws(p, end)
        if p >= end:
            return NULL
        if p[0] == c'}':
            return p + 1
        if p[0] != c',':
            return NULL
        p = _ws(p + 1, end)


cdef inline unsigned char _nth_digit(const _Number* num, Py_ssize_t i) noexcept nogil:
    """Digit i of the number's digits with the decimal point taken out."""
    cdef Py_ssize_t n_int = num.int_end - num.int_start
    return (num.int_start[i] if i < n_int else num.frac_start[i - n_int]) - 48


cdef int64_t _cents(const _Number* num) noexcept nogil:
    """Exact int cents of the decimal text, rounded half to even; -1 if <= 0, -2 if too large."""
    cdef Py_ssize_t total = (num.int_end - num.int_start) + (num.frac_end - num.frac_start)
    cdef Py_ssize_t z = 0, n, i
    cdef int64_t k, m, cents = 0
    cdef unsigned char r
    cdef bint sticky = False
    while z < total and _nth_digit(num, z) == 0:
        z += 1
    n = total - z  # significant digits D; value in cents = D * 10**k
    if n == 0 or num.neg:
        return -1
    k = num.exp - (num.frac_end - num.frac_start) + 2
    m = n + k  # digits left of the point, in cents
    if m > 14:  # >= 10**14 cents, whatever rounding does
        return -2
    if m < 0:  # < 0.1 cent
        return 0
    for i in range(min(m, n)):
        cents = cents * 10 + _nth_digit(num, z + i)
    if k >= 0:
        for i in range(k):
            cents *= 10
    else:
        r = _nth_digit(num, z + m)
        for i in range(z + m + 1, total):
            if _nth_digit(num, i) != 0:
                sticky = True
                break
        if r > 5 or (r == 5 and (sticky or cents & 1)):
            cents += 1
    return -2 if cents > _MAX_CENTS else cents


cdef bint _uuid_lower(cstr s, unsigned char* out) noexcept nogil:
    """Copy 36 bytes lower-cased into out; False unless they are 8-4-4-4-12 hex digits."""
    cdef Py_ssize_t i
    cdef unsigned char c
    for i in range(36):
        c = s[i]
        if i == 8 or i == 13 or i == 18 or i == 23:
            if c != c'-':
                return False
        elif _HEX[c] < 0:
            return False
        out[i] = c | 0x20  # lower-cases A-F; digits and '-' already have the bit
    return True


# why a body is refused, by _payment_c's code (1..): the messages of rinha.errors
_REFUSALS = (None, R_UTF8, R_JSON, R_TRAILING, R_NOT_OBJECT, R_ID_MISSING, R_ID_DUPLICATE,
             R_ID_TYPE, R_ID_UUID, R_AMOUNT_MISSING, R_AMOUNT_DUPLICATE, R_AMOUNT_TYPE,
             R_AMOUNT_SIGN, R_AMOUNT_LARGE, R_AMOUNT_ZERO)


cdef int _payment_c(cstr start, cstr end, unsigned char* lower, int64_t* cents) noexcept nogil:
    """0 with the lower-case id text (36 bytes) in `lower` and the amount in `cents`, or the
    index in _REFUSALS of why the body is refused."""
    cdef cstr p
    cdef bint is_object = False
    cdef _Body found
    cdef unsigned char id_buf[36]
    cdef cstr id_text
    memset(&found, 0, sizeof(found))
    if not _utf8_ok(start, end - start):
        return 1
    p = _ws(start, end)
    if p < end and p[0] == c'{':
        is_object = True
        p = _top_object(p + 1, end, &found)
    else:
        p = _value(p, end, 0)
    if p == NULL:
        return 2
    if _ws(p, end) != end:
        return 3
    if not is_object:
        return 4
    if found.n_id == 0:
        return 5
    if found.n_id > 1:
        return 6
    if found.id_kind != _STRING:
        return 7
    id_text = found.id_start
    if found.id_escaped:
        if _unescape_ascii(found.id_start, found.id_end, id_buf, 36) != 36:
            return 8
        id_text = id_buf
    elif found.id_end - found.id_start != 36:
        return 8
    if not _uuid_lower(id_text, lower):
        return 8
    if found.n_amount == 0:
        return 9
    if found.n_amount > 1:
        return 10
    if found.amount_kind != _NUMBER:
        return 11
    cents[0] = _cents(&found.amount)
    if cents[0] == -1:
        return 12
    if cents[0] == -2:
        return 13
    if cents[0] == 0:
        return 14
    return 0


def parse_payment(body):
    cdef bytes data = body if type(body) is bytes else bytes(memoryview(body))
    cdef cstr start = <cstr>PyBytes_AS_STRING(data)
    cdef unsigned char lower[36]
    cdef int64_t cents = 0
    cdef int refused = _payment_c(start, start + PyBytes_GET_SIZE(data), lower, &cents)
    if refused:
        raise InvalidPayment(_REFUSALS[refused])
    return (<char*>lower)[:36].decode("ascii"), cents


# -- timestamps ---------------------------------------------------------------------------------


@cython.cdivision(True)
cdef inline int64_t _days_from_civil(int64_t y, int64_t m, int64_t d) noexcept nogil:
    """Days since 1970-01-01 of a proleptic Gregorian date with y >= 1."""
    # count years from March so that the leap day is the last day of a year; a 400-year era
    # then always has 146097 days and every quantity below is >= 0
    y -= m <= 2
    cdef int64_t era = y // 400
    cdef int64_t yoe = y - era * 400  # [0, 399]
    cdef int64_t doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1  # [0, 365], from March 1st
    cdef int64_t doe = yoe * 365 + yoe // 4 - yoe // 100 + doy  # [0, 146096]
    return era * 146097 + doe - 719468  # 719468: days from 0000-03-01 to 1970-01-01


@cython.cdivision(True)
cdef inline void _civil_from_days(int64_t days, int* year, int* month, int* day) noexcept nogil:
    """Inverse of _days_from_civil for days >= -719468 (0000-03-01)."""
    cdef int64_t z = days + 719468
    cdef int64_t era = z // 146097
    cdef int64_t doe = z - era * 146097  # [0, 146096]
    # years of the era: take out the leap days (every 4th year, but not the 100th, but the 400th)
    cdef int64_t yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365  # [0, 399]
    cdef int64_t doy = doe - (365 * yoe + yoe // 4 - yoe // 100)  # [0, 365], from March 1st
    cdef int64_t mp = (5 * doy + 2) // 153  # [0, 11], March = 0
    day[0] = <int>(doy - (153 * mp + 2) // 5 + 1)
    month[0] = <int>(mp + 3 if mp < 10 else mp - 9)
    year[0] = <int>(yoe + era * 400 + (month[0] <= 2))


cdef inline int _two(cstr s) noexcept nogil:
    """Two ASCII digits, or -1."""
    if not (_digit(s[0]) and _digit(s[1])):
        return -1
    return (s[0] - 48) * 10 + (s[1] - 48)


cdef bint _iso(cstr s, Py_ssize_t n, int64_t* out) noexcept nogil:
    cdef int year, month, day, hour = 0, minute = 0, second = 0, millis = 0
    cdef int off_h, off_m, days_in_month, scale
    cdef int64_t offset = 0  # minutes east of UTC
    cdef Py_ssize_t i, digits
    cdef bint leap
    if n < 10 or s[4] != c'-' or s[7] != c'-':
        return False
    year = _two(s) * 100 + _two(s + 2)
    if _two(s) < 0 or _two(s + 2) < 0 or year == 0:
        return False
    month = _two(s + 5)
    day = _two(s + 8)
    if month < 1 or month > 12 or day < 1:
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if month == 2:
        days_in_month = 29 if leap else 28
    elif month == 4 or month == 6 or month == 9 or month == 11:
        days_in_month = 30
    else:
        days_in_month = 31
    if day > days_in_month:
        return False
    i = 10
    if n > 10:
        if n < 19 or not (s[10] == c'T' or s[10] == c't' or s[10] == c' '):
            return False
        if s[13] != c':' or s[16] != c':':
            return False
        hour = _two(s + 11)
        minute = _two(s + 14)
        second = _two(s + 17)
        if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59):
            return False
        i = 19
        if i < n and s[i] == c'.':
            i += 1
            digits = 0
            scale = 100
            while i < n and _digit(s[i]):
                if digits < 3:  # later digits truncate: floor of the fraction
                    millis += (s[i] - 48) * scale
                    scale //= 10
                digits += 1
                i += 1
            if digits == 0 or digits > 9:
                return False
        if i < n:
            if (s[i] == c'Z' or s[i] == c'z') and i + 1 == n:
                i += 1
            elif s[i] == c'+' or s[i] == c'-':
                if n - i == 6 and s[i + 3] == c':':
                    off_m = _two(s + i + 4)
                elif n - i == 5:
                    off_m = _two(s + i + 3)
                else:
                    return False
                off_h = _two(s + i + 1)
                if not (0 <= off_h <= 23 and 0 <= off_m <= 59):
                    return False
                offset = off_h * 60 + off_m
                if s[i] == c'-':
                    offset = -offset
                i = n
            else:
                return False
    if i != n:
        return False
    out[0] = ((_days_from_civil(year, month, day) * 86400
               + hour * 3600 + minute * 60 + second - offset * 60) * 1000 + millis)
    return True


cdef bint _ascii_view(object text, cstr* s, Py_ssize_t* n) except -1:
    """Point s at the 1-byte-per-char data of a str or bytes; False for wider str."""
    if isinstance(text, bytes):
        s[0] = <cstr>PyBytes_AS_STRING(text)
        n[0] = PyBytes_GET_SIZE(text)
        return True
    if isinstance(text, str):
        if PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND:
            return False  # code points > 255: cannot be what we accept
        s[0] = <cstr>PyUnicode_1BYTE_DATA(text)  # latin-1; bytes >= 0x80 fail every check
        n[0] = PyUnicode_GET_LENGTH(text)
        return True
    raise TypeError(f"expected str or bytes, got {type(text).__name__}")


def iso_to_ms(text):
    cdef cstr s = NULL
    cdef Py_ssize_t n = 0
    cdef int64_t ms = 0
    if not _ascii_view(text, &s, &n) or not _iso(s, n, &ms):
        raise InvalidTimestamp(f"invalid timestamp {text!r}")
    return ms


@cython.cdivision(True)
cdef void _write_iso(int64_t ms, unsigned char* out) noexcept nogil:
    """24 bytes 'YYYY-MM-DDTHH:MM:SS.mmmZ' of ms in [_MIN_MS, _MAX_MS]."""
    cdef int64_t since = ms - _MIN_MS  # >= 0, so C division is floor division
    cdef int64_t in_day = since % _MS_PER_DAY
    cdef int year = 0, month = 0, day = 0
    _civil_from_days(since // _MS_PER_DAY + _DAYS_0001, &year, &month, &day)
    _put(out, year, 4)
    out[4] = c'-'
    _put(out + 5, month, 2)
    out[7] = c'-'
    _put(out + 8, day, 2)
    out[10] = c'T'
    _put(out + 11, <int>(in_day // 3600000), 2)
    out[13] = c':'
    _put(out + 14, <int>(in_day // 60000 % 60), 2)
    out[16] = c':'
    _put(out + 17, <int>(in_day // 1000 % 60), 2)
    out[19] = c'.'
    _put(out + 20, <int>(in_day % 1000), 3)
    out[23] = c'Z'


@cython.cdivision(True)
cdef inline void _put(unsigned char* out, int value, int width) noexcept nogil:
    """value (>= 0) as exactly width decimal digits, zero-padded."""
    while width > 0:
        width -= 1
        out[width] = <unsigned char>(48 + value % 10)
        value //= 10


cdef int _check_ms(int64_t ms) except -1:
    if ms < _MIN_MS or ms > _MAX_MS:
        raise ValueError(f"ms out of range [{_MIN_MS}, {_MAX_MS}]: {ms}")
    return 0


def ms_to_iso(ms):
    cdef unsigned char out[24]
    cdef int64_t t = _i64(ms)
    _check_ms(t)
    _write_iso(t, out)
    return (<char*>out)[:24].decode("ascii")


# -- processor request --------------------------------------------------------------------------


cdef cstr _uuid_text(object correlation_id) except NULL:
    """The 36 bytes of a canonical UUID str, or TypeError / ValueError."""
    cdef cstr s
    cdef unsigned char scratch[36]
    if not isinstance(correlation_id, str):
        raise TypeError(f"correlation_id must be str, not {type(correlation_id).__name__}")
    if (PyUnicode_GET_LENGTH(correlation_id) != 36
            or PyUnicode_KIND(correlation_id) != PyUnicode_1BYTE_KIND):
        raise ValueError(f"not a canonical UUID: {correlation_id!r}")
    s = <cstr>PyUnicode_1BYTE_DATA(correlation_id)
    if not _uuid_lower(s, scratch):
        raise ValueError(f"not a canonical UUID: {correlation_id!r}")
    return s


@cython.cdivision(True)
cdef Py_ssize_t _payment_body_c(object correlation_id, object cents, object requested_at_ms,
                                unsigned char* out) except -1:
    """The body into out (at most 160 bytes); its length."""
    cdef unsigned char digits[20]
    cdef cstr uuid = _uuid_text(correlation_id)
    cdef int64_t amount = _i64(cents)
    cdef int64_t at = _i64(requested_at_ms)
    cdef Py_ssize_t n, d
    cdef int64_t units
    if amount < 0:
        raise ValueError("cents must be >= 0")
    _check_ms(at)
    memcpy(out, b'{"correlationId":"', 18)
    memcpy(out + 18, uuid, 36)
    memcpy(out + 54, b'","amount":', 11)
    n = 65
    units = amount // 100
    d = 20
    while True:  # integer part, at least one digit
        d -= 1
        digits[d] = <unsigned char>(48 + units % 10)
        units //= 10
        if units == 0:
            break
    memcpy(out + n, digits + d, 20 - d)
    n += 20 - d
    out[n] = c'.'
    _put(out + n + 1, <int>(amount % 100), 2)
    n += 3
    memcpy(out + n, b',"requestedAt":"', 16)
    n += 16
    _write_iso(at, out + n)
    n += 24
    out[n] = c'"'
    out[n + 1] = c'}'
    return n + 2


def payment_body(correlation_id, cents, requested_at_ms):
    cdef unsigned char out[160]
    cdef Py_ssize_t n = _payment_body_c(correlation_id, cents, requested_at_ms, out)
    return PyBytes_FromStringAndSize(<char*>out, n)


def payment_request(bytes head not None, correlation_id, cents, requested_at_ms):
    return _payment_request(head, correlation_id, cents, requested_at_ms)


cdef bytes _payment_request(bytes head, object correlation_id, object cents,
                            object requested_at_ms):
    cdef unsigned char out[160]
    cdef Py_ssize_t n = _payment_body_c(correlation_id, cents, requested_at_ms, out)
    cdef Py_ssize_t digits = 3 if n >= 100 else 2  # a body is 100..160 bytes long
    cdef Py_ssize_t size = PyBytes_GET_SIZE(head)
    cdef bytes request = PyBytes_FromStringAndSize(NULL, size + digits + 4 + n)
    cdef char* p = PyBytes_AS_STRING(request)
    memcpy(p, PyBytes_AS_STRING(head), size)
    p += size
    if digits == 3:
        p[0] = <char>(48 + n // 100)
        p += 1
    p[0] = <char>(48 + (n // 10) % 10)
    p[1] = <char>(48 + n % 10)
    memcpy(p + 2, b"\r\n\r\n", 4)
    memcpy(p + 6, out, n)
    return request


# -- ledger -------------------------------------------------------------------------------------


cdef inline Py_ssize_t _lower_bound(const int64_t* a, Py_ssize_t lo, Py_ssize_t hi,
                                    int64_t x) noexcept nogil:
    """First index in [lo, hi) whose value is >= x (hi if none)."""
    cdef Py_ssize_t mid
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline Py_ssize_t _upper_bound(const int64_t* a, Py_ssize_t lo, Py_ssize_t hi,
                                    int64_t x) noexcept nogil:
    """First index in [lo, hi) whose value is > x (hi if none)."""
    cdef Py_ssize_t mid
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if a[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@cython.final
cdef class Ledger:

    def __cinit__(self):
        self._ms = NULL
        self._sums = NULL
        self._len = 0
        self._cap = 0
        self._resize(_LEDGER_INITIAL)

    def __dealloc__(self):
        PyMem_Free(self._ms)
        PyMem_Free(self._sums)

    cdef int _resize(self, Py_ssize_t cap) except -1:
        # cap >= _len; _cap never exceeds what either column holds, even if one realloc fails
        cdef int64_t* ms = <int64_t*>PyMem_Realloc(self._ms, cap * sizeof(int64_t))
        cdef int64_t* sums
        if ms == NULL:
            raise MemoryError()
        self._ms = ms
        if cap < self._cap:
            self._cap = cap
        sums = <int64_t*>PyMem_Realloc(self._sums, cap * sizeof(int64_t))
        if sums == NULL:
            raise MemoryError()
        self._sums = sums
        self._cap = cap
        return 0

    cdef int add_c(self, int64_t ms, int64_t cents) except -1:
        cdef Py_ssize_t n = self._len, pos, i, stop
        cdef int64_t total = self._sums[n - 1] if n else 0
        if cents < 0:
            raise ValueError("cents must be >= 0")
        if cents > INT64_MAX - total:
            raise OverflowError("ledger total would overflow int64")
        if n == self._cap:
            self._resize(n + (n >> 1) + 1)
        # late arrivals (concurrent completions) land near the tail: walk back a few steps,
        # then binary-search the rest; equal times go after the existing ones (stable)
        pos = n
        stop = n - 16 if n > 16 else 0
        while pos > stop and self._ms[pos - 1] > ms:
            pos -= 1
        if pos == stop and pos > 0 and self._ms[pos - 1] > ms:
            pos = _upper_bound(self._ms, 0, pos, ms)
        if pos < n:
            memmove(self._ms + pos + 1, self._ms + pos, (n - pos) * sizeof(int64_t))
            i = n
            while i > pos:  # shift the prefix sums, adding the new cents to each
                self._sums[i] = self._sums[i - 1] + cents
                i -= 1
        self._ms[pos] = ms
        self._sums[pos] = (self._sums[pos - 1] if pos else 0) + cents
        self._len = n + 1
        return 0

    cdef Py_ssize_t count_c(self, int64_t from_ms, int64_t to_ms, int64_t* cents) noexcept:
        """Entries with from_ms <= ms <= to_ms; their int cents go to cents[0]."""
        cdef Py_ssize_t lo, hi
        if from_ms > to_ms:
            cents[0] = 0
            return 0
        lo = _lower_bound(self._ms, 0, self._len, from_ms)
        hi = _upper_bound(self._ms, lo, self._len, to_ms)
        cents[0] = ((self._sums[hi - 1] if hi else 0) - (self._sums[lo - 1] if lo else 0))
        return hi - lo

    cdef void pairs_c(self, Py_ssize_t start, Py_ssize_t n, unsigned char* out) noexcept:
        """Entries [start, start + n) as packed (epoch ms int64, int cents int64) pairs, the
        cents taken back out of the prefix sums; 16 bytes each into out."""
        cdef Py_ssize_t i
        cdef int64_t cents
        for i in range(start, start + n):
            cents = self._sums[i] - (self._sums[i - 1] if i else 0)
            memcpy(out, &self._ms[i], 8)
            memcpy(out + 8, &cents, 8)
            out += 16

    cdef int load_c(self, const unsigned char* pairs, Py_ssize_t n) except -1:
        """Add n packed (epoch ms int64, int cents int64) pairs, as pairs_c writes them.

        All or nothing: ValueError (negative cents) or OverflowError (the total would leave int64)
        before any is added. Pairs sorted by time that start at or after the last entry (a
        snapshot into an empty ledger) are appended in one pass; others go through add_c."""
        cdef Py_ssize_t i, n0 = self._len
        cdef int64_t ms, cents, previous
        cdef int64_t total = self._sums[n0 - 1] if n0 else 0
        cdef bint in_order = True
        previous = self._ms[n0 - 1] if n0 else INT64_MIN
        for i in range(n):
            memcpy(&ms, pairs + 16 * i, 8)
            memcpy(&cents, pairs + 16 * i + 8, 8)
            if cents < 0:
                raise ValueError("cents must be >= 0")
            if cents > INT64_MAX - total:
                raise OverflowError("ledger total would overflow int64")
            total += cents
            if ms < previous:
                in_order = False
            previous = ms
        if not in_order:
            for i in range(n):
                memcpy(&ms, pairs + 16 * i, 8)
                memcpy(&cents, pairs + 16 * i + 8, 8)
                self.add_c(ms, cents)
            return 0
        if n0 + n > self._cap:
            self._resize(n0 + n)
        total = self._sums[n0 - 1] if n0 else 0
        for i in range(n):
            memcpy(&self._ms[n0 + i], pairs + 16 * i, 8)
            memcpy(&cents, pairs + 16 * i + 8, 8)
            total += cents
            self._sums[n0 + i] = total
        self._len = n0 + n
        return 0

    def add(self, ms, cents):
        self.add_c(_i64(ms), _i64(cents))

    def summary(self, from_ms, to_ms):
        cdef int64_t cents
        cdef Py_ssize_t count = self.count_c(_i64(from_ms), _i64(to_ms), &cents)
        return count, cents

    def clear(self):
        self._len = 0
        if self._cap > _LEDGER_INITIAL:
            self._resize(_LEDGER_INITIAL)

    def __len__(self):
        return self._len

    @property
    def nbytes(self):
        return self._cap * 2 * sizeof(int64_t)


# -- correlationId set --------------------------------------------------------------------------
# A fingerprint is SipHash-2-4, under a secret 128-bit key drawn once per process, of the UUID's
# 16 bytes. Keyed, because an unkeyed hash can be inverted: a client could then pick ids that
# share a victim's fingerprint (the victim's payment refused as a duplicate) or that share their
# top bits and pile into one probe run (every insert then shifts the whole run). Two different
# ids share a fingerprint with probability 2**-64, so after n ids a new id is wrongly taken for a
# duplicate with probability about n * 2**-64: 5e-14 at n = 1e6, and the chance that any of 1e6
# ids ever collides is about n**2 / 2**65 = 3e-8. Only fingerprints are stored, 8 bytes a slot.
#
# The table is an *ordered* linear-probing table: a fingerprint's home slot grows with its value
# (home = fp * cap / 2**64, from the top 32 bits), and the slots hold the fingerprints in
# ascending order, each at or after its home, with no wrap-around (slack slots past `cap` take
# the last run; a run that reaches the end gets more slack, not a bigger table). A lookup stops
# at the first slot that is empty or holds a larger value, so even at 90 % load it reads a
# handful of slots; an insert shifts the rest of its run one slot right; a deletion shifts back
# what may move closer to home. That lets the table run at a high load and grow by a small
# factor (any size, not a power of two): fewer bytes per id than a classic table that must stay
# sparse and double (docs/PERFORMANCE.md). Growing is one ordered pass: every fingerprint goes
# to max(its new home, the previous one's slot + 1).


cdef struct _Sip:
    uint64_t v0
    uint64_t v1
    uint64_t v2
    uint64_t v3


cdef inline uint64_t _rotl(uint64_t x, int b) noexcept nogil:
    return (x << b) | (x >> (64 - b))


cdef inline void _sip_rounds(_Sip* s, int rounds) noexcept nogil:
    cdef int r
    for r in range(rounds):
        s.v0 += s.v1
        s.v1 = _rotl(s.v1, 13)
        s.v1 ^= s.v0
        s.v0 = _rotl(s.v0, 32)
        s.v2 += s.v3
        s.v3 = _rotl(s.v3, 16)
        s.v3 ^= s.v2
        s.v0 += s.v3
        s.v3 = _rotl(s.v3, 21)
        s.v3 ^= s.v0
        s.v2 += s.v1
        s.v1 = _rotl(s.v1, 17)
        s.v1 ^= s.v2
        s.v2 = _rotl(s.v2, 32)


cdef uint64_t _siphash(uint64_t k0, uint64_t k1, cstr m, Py_ssize_t n) noexcept nogil:
    """SipHash-2-4 of n bytes under the key (k0, k1), the key's two little-endian halves."""
    cdef _Sip s
    cdef uint64_t word, last = (<uint64_t>n) << 56
    cdef Py_ssize_t i = 0, j
    s.v0 = k0 ^ 0x736f6d6570736575ULL
    s.v1 = k1 ^ 0x646f72616e646f6dULL
    s.v2 = k0 ^ 0x6c7967656e657261ULL
    s.v3 = k1 ^ 0x7465646279746573ULL
    while i + 8 <= n:
        memcpy(&word, m + i, 8)  # little-endian host: the word as SipHash reads it
        s.v3 ^= word
        _sip_rounds(&s, 2)
        s.v0 ^= word
        i += 8
    for j in range(n - i):
        last |= (<uint64_t>m[i + j]) << (8 * j)
    s.v3 ^= last
    _sip_rounds(&s, 2)
    s.v0 ^= last
    s.v2 ^= 0xff
    _sip_rounds(&s, 4)
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3


cdef int _key_words(object key, uint64_t* k0, uint64_t* k1) except -1:
    """The two halves of a 16-byte SipHash key."""
    cdef bytes raw = bytes(memoryview(key))  # TypeError for an int, which bytes() would take
    if len(raw) != 16:
        raise ValueError(f"a SipHash key is 16 bytes, not {len(raw)}")
    memcpy(k0, PyBytes_AS_STRING(raw), 8)
    memcpy(k1, PyBytes_AS_STRING(raw) + 8, 8)
    return 0


_IDSET_KEY = os.urandom(16)  # per process (a fork shares its parent's): never leaves it
cdef uint64_t _IDSET_K0 = 0, _IDSET_K1 = 0
_key_words(_IDSET_KEY, &_IDSET_K0, &_IDSET_K1)


cdef bint _uuid_raw(object correlation_id, unsigned char* out) except -1:
    """The 16 bytes of a canonical UUID str (either case) into out; False if it is not one."""
    if not isinstance(correlation_id, str):
        raise TypeError(f"correlation_id must be str, not {type(correlation_id).__name__}")
    if (PyUnicode_GET_LENGTH(correlation_id) != 36
            or PyUnicode_KIND(correlation_id) != PyUnicode_1BYTE_KIND):
        return False
    return _uuid_raw_c(<cstr>PyUnicode_1BYTE_DATA(correlation_id), out)


cdef bint _uuid_raw_c(cstr s, unsigned char* out) noexcept nogil:
    """The 16 bytes of 36 bytes of canonical UUID text (either case); False if it is not."""
    cdef int i, n = 0
    cdef signed char hi, lo
    if s[8] != c'-' or s[13] != c'-' or s[18] != c'-' or s[23] != c'-':
        return False
    i = 0
    while i < 36:
        if i == 8 or i == 13 or i == 18 or i == 23:
            i += 1
            continue
        hi = _HEX[s[i]]
        lo = _HEX[s[i + 1]]
        if hi < 0 or lo < 0:
            return False
        out[n] = <unsigned char>((hi << 4) | lo)
        n += 1
        i += 2
    return True


cdef int _uuid_raw_of(object correlation_id, unsigned char* out) except -1:
    """As _uuid_raw, but ValueError if it is not a canonical UUID."""
    if not _uuid_raw(correlation_id, out):
        raise ValueError(f"not a canonical UUID: {correlation_id!r}")
    return 0


cdef int64_t _id_and_cents(object correlation_id, object cents, unsigned char* raw) except? -1:
    """The amount as int64 (TypeError first), the id's 16 bytes into raw (ValueError)."""
    cdef int64_t amount = _i64(cents)
    _uuid_raw_of(correlation_id, raw)
    return amount


cdef object _uuid_str(const unsigned char* raw):
    """The lower-case 8-4-4-4-12 str of 16 UUID bytes."""
    cdef object text = PyUnicode_New(36, 127)
    cdef unsigned char* out = <unsigned char*>PyUnicode_1BYTE_DATA(text)
    cdef int i
    for i in range(16):
        if i == 4 or i == 6 or i == 8 or i == 10:
            out[0] = c'-'
            out += 1
        out[0] = _HEX_DIGITS[raw[i] >> 4]
        out[1] = _HEX_DIGITS[raw[i] & 15]
        out += 2
    return text


cdef bint _idset_fp(object correlation_id, uint64_t* fp) except -1:
    """IdSet fingerprint of a canonical UUID str (either case); False if it is not one."""
    cdef unsigned char raw[16]
    if not _uuid_raw(correlation_id, raw):
        return False
    fp[0] = _siphash(_IDSET_K0, _IDSET_K1, raw, 16)
    if fp[0] == 0:  # 0 marks an empty slot
        fp[0] = 1
    return True


cdef uint64_t _idset_fp_of(object correlation_id) except 0:
    """Fingerprint of a canonical UUID str; ValueError (TypeError) if it is not one (a str)."""
    cdef uint64_t fp
    if not _idset_fp(correlation_id, &fp):
        raise ValueError(f"not a canonical UUID: {correlation_id!r}")
    return fp


# test hooks: the reference module has the same functions, and the tests check that they agree
def _siphash24(key, data):
    """SipHash-2-4 of bytes under a 16-byte key, as an int."""
    cdef uint64_t k0, k1
    cdef bytes raw = bytes(memoryview(data))
    _key_words(key, &k0, &k1)
    return _siphash(k0, k1, <cstr>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))


def _fingerprint(correlation_id, key):
    """The IdSet fingerprint of a canonical UUID str under a 16-byte key (0 is taken as 1)."""
    cdef uint64_t k0, k1, fp
    cdef unsigned char raw[16]
    _key_words(key, &k0, &k1)
    _uuid_raw_of(correlation_id, raw)
    fp = _siphash(k0, k1, raw, 16)
    return fp if fp else 1


def _idset_key():
    """This process's IdSet key (compiled module only: the reference IdSet keeps the ids)."""
    return _IDSET_KEY


cdef inline Py_ssize_t _home(uint64_t fp, Py_ssize_t cap) noexcept nogil:
    """Home slot of fp in a table of cap (< 2**32) slots: non-decreasing in fp."""
    return <Py_ssize_t>(((fp >> 32) * <uint64_t>cap) >> 32)


@cython.final
cdef class IdSet:

    def __cinit__(self):
        self._slots = NULL
        self._len = 0
        self._cap = 0
        self._size = 0
        self._grow(_IDSET_INITIAL)

    def __dealloc__(self):
        PyMem_Free(self._slots)

    cdef int _grow(self, Py_ssize_t cap) except -1:
        """Move every fingerprint, in order, into a fresh table with cap home slots."""
        cdef uint64_t* old = self._slots
        cdef Py_ssize_t i, at, next_free = 0
        cdef Py_ssize_t size = cap + _IDSET_SLACK
        cdef uint64_t* slots
        if cap >= 0xFFFFFFFF:  # _home() takes a 32-bit cap
            raise MemoryError("IdSet is full")
        for i in range(self._size):  # where the last one lands: the slack must reach past it
            if old[i]:
                at = _home(old[i], cap)
                next_free = (at if at > next_free else next_free) + 1
        if next_free + _IDSET_SLACK > size:
            size = next_free + _IDSET_SLACK
        slots = <uint64_t*>PyMem_Malloc(size * sizeof(uint64_t))
        if slots == NULL:
            raise MemoryError()
        memset(slots, 0, size * sizeof(uint64_t))
        next_free = 0
        for i in range(self._size):
            if old[i]:
                at = _home(old[i], cap)
                if at < next_free:
                    at = next_free
                slots[at] = old[i]
                next_free = at + 1
        self._slots = slots
        self._cap = cap
        self._size = size
        PyMem_Free(old)
        return 0

    cdef int _extend(self) except -1:
        """More slack: a run reached the end of the table (homes do not move)."""
        cdef Py_ssize_t size = self._size + _IDSET_SLACK
        cdef uint64_t* slots = <uint64_t*>PyMem_Realloc(self._slots, size * sizeof(uint64_t))
        if slots == NULL:
            raise MemoryError()
        memset(slots + self._size, 0, _IDSET_SLACK * sizeof(uint64_t))
        self._slots = slots
        self._size = size
        return 0

    cdef Py_ssize_t _find(self, uint64_t fp) noexcept:
        """The first slot at or after fp's home that is empty or holds a value >= fp
        (_size if none)."""
        cdef Py_ssize_t i = _home(fp, self._cap)
        cdef Py_ssize_t size = self._size
        cdef uint64_t* slots = self._slots
        while i < size and slots[i] and slots[i] < fp:
            i += 1
        return i

    cdef int add_fp(self, uint64_t fp) except -1:
        """1 if fp was new (and is now in), 0 if it was already there."""
        cdef Py_ssize_t i, j
        if (self._len + 1) * 10 > self._cap * 9:  # keep the load factor <= 0.9
            self._grow(self._cap + (self._cap >> 2))
        i = self._find(fp)
        if i < self._size and self._slots[i] == fp:
            return 0
        j = i
        while j < self._size and self._slots[j]:
            j += 1
        if j == self._size:
            self._extend()
        if j > i:  # keep the order: the rest of the run moves one slot right
            memmove(self._slots + i + 1, self._slots + i, (j - i) * sizeof(uint64_t))
        self._slots[i] = fp
        self._len += 1
        return 1

    cdef bint contains_fp(self, uint64_t fp) noexcept:
        cdef Py_ssize_t i = self._find(fp)
        return i < self._size and self._slots[i] == fp

    cdef bint discard_fp(self, uint64_t fp) noexcept:
        """Remove fp; False if it was not there."""
        cdef Py_ssize_t i = self._find(fp), j
        cdef Py_ssize_t size = self._size
        cdef uint64_t* slots = self._slots
        if i >= size or slots[i] != fp:
            return False
        # the following entries that sit past their home each move one slot back (they stay
        # in order and at or after home); the first one at its home, or a hole, ends the shift
        j = i + 1
        while j < size and slots[j] and _home(slots[j], self._cap) < j:
            j += 1
        memmove(slots + i, slots + i + 1, (j - i - 1) * sizeof(uint64_t))
        slots[j - 1] = 0
        self._len -= 1
        return True

    def add(self, correlation_id):
        return self.add_fp(_idset_fp_of(correlation_id)) == 1

    def discard(self, correlation_id):
        self.discard_fp(_idset_fp_of(correlation_id))

    def __contains__(self, correlation_id):
        cdef uint64_t fp
        if not isinstance(correlation_id, str) or not _idset_fp(correlation_id, &fp):
            return False
        return self.contains_fp(fp)

    def clear(self):
        cdef uint64_t* old = self._slots
        cdef Py_ssize_t old_size = self._size
        self._size = 0  # _grow() then moves nothing
        self._len = 0
        try:
            self._grow(_IDSET_INITIAL)  # frees the old table
        except MemoryError:  # the old table is still ours: empty it instead
            self._size = old_size
            memset(old, 0, old_size * sizeof(uint64_t))

    # test hooks (compiled module only): raw fingerprints build crowded runs on purpose, and
    # the layout lets a test check the table's order invariant
    def _add_fingerprint(self, uint64_t fp):
        return self.add_fp(fp or 1) == 1

    def _discard_fingerprint(self, uint64_t fp):
        return self.discard_fp(fp or 1)

    def _contains_fingerprint(self, uint64_t fp):
        return self.contains_fp(fp or 1)

    def _layout(self):
        """(cap, every slot's value) with 0 for the empty ones."""
        return self._cap, [self._slots[i] for i in range(self._size)]

    def __len__(self):
        return self._len

    @property
    def nbytes(self):
        return self._size * sizeof(uint64_t)


# -- files shared with other processes ----------------------------------------------------------
# Both files are little-endian (the extension refuses to build elsewhere) and are read and written
# by this module and by rinha/_reference.py alike. Opening, creating and checking them is rare and
# done with the os module; the per-payment paths (claim, accept, replay) are C.

_IDS_MAGIC = b"RINHAIDS"
_IDS_LAYOUT = struct.Struct("<8sIIQ16sQ16x")  # magic, version, header bytes, slots, key, used
_JNL_MAGIC = b"RINHAJNL"
_JNL_LAYOUT = struct.Struct("<8sII")  # magic, version, record bytes
_NO_FALLOCATE = {EINVAL, ENOSYS, ENOTSUP, EOPNOTSUPP}  # file systems that cannot preallocate
_JOURNAL_CHUNK = _JNL_CHUNK
_FLOCK = struct.Struct("@hhqqi4x")  # Linux's struct flock: type, whence, start, length, pid
_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", None)  # open file description locks (Linux)
_OFD_SETLKW = getattr(fcntl, "F_OFD_SETLKW", None)
_NO_LOCKS = {EINVAL, ENOLCK, ENOSYS, ENOTSUP, EOPNOTSUPP}  # file systems without them


def _make_parent(path):
    """Create path's directory (mode 0700) if missing; return it."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    return directory


def _ids_slots(capacity):
    """The smallest power of two >= capacity * 4 / 3: capacity ids fit at load <= 0.75."""
    need = -(-capacity * 4 // 3)
    return 1 << (need - 1).bit_length()


def _check_ids_header(path, header, size):
    """(slots, key) of a shared id table's header, or FileFormatError."""
    if len(header) < _IDS_HEADER or header[:8] != _IDS_MAGIC:
        raise FileFormatError(f"{path}: not a rinha shared id table (bad magic)")
    _, version, header_size, slots, key, _ = _IDS_LAYOUT.unpack(header)
    if version != _IDS_VERSION:
        raise FileFormatError(
            f"{path}: shared id table format version {version}, this build reads {_IDS_VERSION}")
    if (header_size != _IDS_HEADER or slots < 2 or slots & (slots - 1)
            or size != _IDS_HEADER + slots * 8):
        raise FileFormatError(f"{path}: corrupt shared id table ({slots} slots, {size} bytes)")
    return slots, key


def _create_ids_file(path, capacity):
    """A new table written whole under a temporary name, then linked to path: a process that
    opens path sees a complete file or none. Returns an O_RDWR fd of path's file, which is
    another process's if it linked first."""
    slots = _ids_slots(capacity)
    size = _IDS_HEADER + slots * 8
    directory = _make_parent(path)
    tmp = os.path.join(
        directory, f".{os.path.basename(path)}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
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


def _open_ids_file(path, capacity):
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


def _check_journal_header(path, header):
    if len(header) < _JNL_HEADER or header[:8] != _JNL_MAGIC:
        raise FileFormatError(f"{path}: not a rinha journal (bad magic)")
    _, version, record = _JNL_LAYOUT.unpack(header)
    if version != _JNL_VERSION or record != _REC:
        raise FileFormatError(
            f"{path}: journal format version {version} with {record}-byte records, "
            f"this build reads version {_JNL_VERSION} with {_REC}")


def _lock_journal(fd, exclusive, wait):
    """Set this open file description's lock on the whole journal file: shared (every open
    Journal holds one) or exclusive (taken for a moment to cut the file). False if another open
    file description holds a conflicting lock and not wait; True where the system has no OFD
    locks (a Journal then acts as its file's only user)."""
    if _OFD_SETLK is None:
        return True
    request = _FLOCK.pack(fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0)
    try:
        fcntl.fcntl(fd, _OFD_SETLKW if wait else _OFD_SETLK, request)
    except OSError as exc:
        if exc.errno in (EAGAIN, EACCES) and not wait:
            return False
        if exc.errno in _NO_LOCKS:
            return True
        raise
    return True


def _zeros_start(fd, size, length):
    """Where the zero bytes that end the file's bytes size..length start (size if all are)."""
    end = length
    while end > size:
        start = max(size, end - 65536)
        kept = len(os.pread(fd, end - start, start).rstrip(b"\0"))
        if kept:
            return start + kept
        end = start
    return size


def _cut_journal(fd, size, zeros_only=False):
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


def _allocate_journal(fd, start, end):
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


def _open_journal_file(path):
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
                raise OSError(EIO, "short write of the journal header", path)
        else:
            _check_journal_header(path, header)
        size = os.fstat(fd).st_size
    except BaseException:
        os.close(fd)
        raise
    return fd, size


def _fsync_directory(directory):
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- shared id table ----------------------------------------------------------------------------
# One file, mapped MAP_SHARED by every instance of the stack: a 64-byte header, then a power of
# two of 64-bit slots, open addressing with linear probing and wrap-around. A slot is
#   fingerprint (48 bits, never 0) << 16 | owner (8 bits) << 8 | amount tag (8 bits)
# and 0 when empty. The fingerprint is the top 48 bits of SipHash-2-4, under the file's own key,
# of the UUID's 16 bytes: a wrong "already there" after n ids has probability about n * 2**-48
# (4e-9 at 1e6). A slot goes from 0 to its final value in one compare-and-swap and never changes
# after that (until clear), so concurrent claims need no lock: the loser of a race for a slot
# reads the winner's value and either finds its id there or probes on. Nothing is ever deleted,
# so a probe that meets an empty slot has seen every slot the id could be in.


cdef inline uint64_t _amount_tag(int64_t cents) noexcept nogil:
    # the top byte of a Fibonacci hash: amounts that differ in a few low digits get unrelated tags
    return (<uint64_t>cents * 0x9E3779B97F4A7C15ULL) >> 56


@cython.final
cdef class SharedIdSet:

    def __cinit__(self, path, capacity, owner):
        cdef int64_t cap = _i64(capacity)
        cdef int64_t who = _i64(owner)
        cdef void* mapped
        cdef int err
        self._map = NULL
        if cap < 1:
            raise ValueError("capacity must be >= 1")
        if cap > (1 << 40):
            raise ValueError("capacity must be <= 2**40")
        if who < 0 or who > 254:
            raise ValueError(f"owner must be in 0..254, not {who}")
        self._path = os.fspath(path)
        fd, size, slots, key = _open_ids_file(self._path, cap)
        try:
            # populated now: on tmpfs no claim ever takes a page fault (each first touch of a
            # page would otherwise cost one, on the POST path)
            mapped = mmap(NULL, <size_t>size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                          fd, 0)
            if mapped == MAP_FAILED:
                err = errno
                raise OSError(err, os.strerror(err), self._path)
        finally:
            os.close(fd)  # the mapping keeps the file
        self._map = <unsigned char*>mapped
        self._nbytes = size
        self._slots = <uint64_t*>(self._map + _IDS_HEADER)
        self._used = <uint64_t*>(self._map + 40)
        self._mask = slots - 1
        self._limit = slots * 3 // 4
        self._owner = who
        _key_words(key, &self._k0, &self._k1)

    def __dealloc__(self):
        if self._map != NULL:
            munmap(self._map, <size_t>self._nbytes)

    cdef int _ready(self) except -1:
        if self._map == NULL:
            raise ValueError("SharedIdSet is closed")
        return 0

    cdef uint64_t _fp(self, const unsigned char* raw) noexcept nogil:
        cdef uint64_t fp = _siphash(self._k0, self._k1, raw, 16) >> 16
        return fp if fp else 1

    cdef int claim_raw(self, const unsigned char* raw, int64_t cents) noexcept nogil:
        """Claim the 16 UUID bytes for cents (>= 0): one of the CLAIM_* codes. The table must be
        open."""
        cdef uint64_t fp = self._fp(raw)
        cdef uint64_t tag = _amount_tag(cents)
        cdef uint64_t word = (fp << 16) | (self._owner << 8) | tag
        cdef uint64_t i = fp & self._mask, probes, seen
        for probes in range(self._mask + 1):
            seen = _atomic_load(&self._slots[i])
            if seen == 0:
                # Checked before the swap, so a few processes racing at the limit may each
                # add one: the load stays a hair above 0.75 at worst.
                if _atomic_load(self._used) >= self._limit:
                    return 4  # CLAIM_FULL
                if _atomic_cas(&self._slots[i], &seen, word):
                    _atomic_add(self._used, 1)
                    return 0  # CLAIM_NEW
                # another process took this slot first: seen now holds its value
            if seen >> 16 == fp:
                if seen & 0xFF != tag:
                    return 3  # CLAIM_CONFLICT
                if (seen >> 8) & 0xFF == self._owner:
                    return 1  # CLAIM_MINE
                return 2  # CLAIM_OTHER
            i = (i + 1) & self._mask
        return 4  # every slot taken (only if the counter was cleared under a claim)

    cdef int64_t owner_raw(self, const unsigned char* raw) noexcept nogil:
        """Owner of the 16 UUID bytes, -1 if absent. The table must be open."""
        cdef uint64_t fp = self._fp(raw)
        cdef uint64_t i = fp & self._mask, probes, seen
        for probes in range(self._mask + 1):
            seen = _atomic_load(&self._slots[i])
            if seen == 0:
                return -1
            if seen >> 16 == fp:
                return <int64_t>((seen >> 8) & 0xFF)
            i = (i + 1) & self._mask
        return -1

    def claim(self, correlation_id, cents):
        cdef unsigned char raw[16]
        cdef int64_t amount
        self._ready()
        _uuid_raw_of(correlation_id, raw)
        amount = _i64(cents)
        if amount < 0:
            raise ValueError("cents must be >= 0")
        return self.claim_raw(raw, amount)

    def owner_of(self, correlation_id):
        cdef unsigned char raw[16]
        cdef int64_t who
        self._ready()
        _uuid_raw_of(correlation_id, raw)
        who = self.owner_raw(raw)
        return None if who < 0 else who

    def __contains__(self, correlation_id):
        cdef unsigned char raw[16]
        self._ready()
        if not isinstance(correlation_id, str) or not _uuid_raw(correlation_id, raw):
            return False
        return self.owner_raw(raw) >= 0

    def __len__(self):
        self._ready()
        return _atomic_load(self._used)

    def clear(self):
        cdef uint64_t i
        self._ready()
        for i in range(self._mask + 1):
            if _atomic_load(&self._slots[i]):  # pages never written stay unwritten
                _atomic_store(&self._slots[i], 0)
        _atomic_store(self._used, 0)

    def close(self):
        if self._map != NULL:
            munmap(self._map, <size_t>self._nbytes)
            self._map = NULL

    def __enter__(self):
        self._ready()
        return self

    def __exit__(self, *exc_info):
        self.close()

    @property
    def capacity(self):
        return self._limit

    @property
    def nbytes(self):
        return self._nbytes

    @property
    def path(self):
        return self._path

    @property
    def owner(self):
        return self._owner


# -- journal ------------------------------------------------------------------------------------
# A 16-byte header, then records of 40 bytes:
#   0 magic 0xA5 | 1 kind | 2 processor | 3 zero | 4 int64 cents | 12 int64 epoch ms
#   | 20 the UUID's 16 bytes | 36 CRC-32 of bytes 0..35
# A snapshot (kind 6) is such a record with the entry count in the cents field, followed by that
# many (epoch ms int64, cents int64) pairs and the CRC-32 of those pairs (4 bytes).
#
# Records are copied into a MAP_SHARED mapping of the file (no system call: a page-cache page
# outlives the process). The file is allocated (posix_fallocate) and mapped _JNL_CHUNK bytes at a
# time ahead of the records, so while it is open (or after its process was killed) it ends in
# zeros: the logical end is where the records stop, at the first all-zero slot. close() and
# replay() cut the zeros off again.


cdef uint32_t _crc32(uint32_t crc, cstr p, Py_ssize_t n) noexcept nogil:
    """zlib.crc32(p[:n], crc)."""
    cdef uint32_t lo, hi
    crc = ~crc
    while n >= 8:
        memcpy(&lo, p, 4)  # little-endian host: the first byte is the low one
        memcpy(&hi, p + 4, 4)
        lo ^= crc
        crc = (_CRC[7][lo & 0xFF] ^ _CRC[6][(lo >> 8) & 0xFF] ^ _CRC[5][(lo >> 16) & 0xFF]
               ^ _CRC[4][lo >> 24] ^ _CRC[3][hi & 0xFF] ^ _CRC[2][(hi >> 8) & 0xFF]
               ^ _CRC[1][(hi >> 16) & 0xFF] ^ _CRC[0][hi >> 24])
        p += 8
        n -= 8
    while n > 0:
        crc = _CRC[0][(crc ^ p[0]) & 0xFF] ^ (crc >> 8)
        p += 1
        n -= 1
    return ~crc


def _crc32_of(data, value=0):
    """zlib.crc32 (test hook: the tests compare the two)."""
    cdef bytes raw = bytes(memoryview(data))
    return _crc32(<uint32_t>value, <cstr>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))


cdef void _encode(unsigned char* out, int kind, int processor, const unsigned char* raw,
                  int64_t cents, int64_t ms) noexcept nogil:
    cdef uint32_t crc
    out[0] = _REC_MAGIC
    out[1] = <unsigned char>kind
    out[2] = <unsigned char>processor
    out[3] = 0
    memcpy(out + 4, &cents, 8)
    memcpy(out + 12, &ms, 8)
    if raw == NULL:
        memset(out + 20, 0, 16)
    else:
        memcpy(out + 20, raw, 16)
    crc = _crc32(0, out, 36)
    memcpy(out + 36, &crc, 4)


cdef int _write_fd(int fd, cstr data, Py_ssize_t n, object path) except -1:
    """All n bytes with write(2), again after EINTR or a short write; OSError if the kernel
    refuses (some of the bytes may then be in the file)."""
    cdef Py_ssize_t done = 0, wrote
    cdef int err
    while done < n:
        wrote = c_write(fd, data + done, <size_t>(n - done))
        if wrote < 0:
            err = errno
            if err == EINTR:
                continue
            raise OSError(err, os.strerror(err), path)
        if wrote == 0:
            raise OSError(EIO, "write(2) wrote nothing", path)
        done += wrote
    return 0


cdef int _check_record(int64_t kind, int64_t processor, int64_t cents) except -1:
    if kind < 1 or kind > 5:
        raise ValueError(f"record kind must be 1..5, not {kind}")
    if processor != 0 and processor != 1:
        raise ValueError(f"processor must be 0 or 1, not {processor}")
    if cents < 0:
        raise ValueError("cents must be >= 0")
    return 0


cdef Py_ssize_t _write_snapshot(int fd, Ledger ledger, int processor, object path) except -1:
    """Write ledger as a snapshot block; its size in bytes."""
    cdef unsigned char head[_REC]
    cdef unsigned char tail[4]
    cdef unsigned char* chunk
    cdef Py_ssize_t n = ledger._len, start = 0, k
    cdef uint32_t crc = 0
    _encode(head, 6, processor, NULL, n, 0)
    _write_fd(fd, head, _REC, path)
    chunk = <unsigned char*>PyMem_Malloc(_SNAP_CHUNK * 16)
    if chunk == NULL:
        raise MemoryError()
    try:
        while start < n:
            k = min(<Py_ssize_t>_SNAP_CHUNK, n - start)
            ledger.pairs_c(start, k, chunk)
            crc = _crc32(crc, chunk, 16 * k)
            _write_fd(fd, chunk, 16 * k, path)
            start += k
    finally:
        PyMem_Free(chunk)
    memcpy(tail, &crc, 4)
    _write_fd(fd, tail, 4, path)
    return _REC + 16 * n + 4


cdef Py_ssize_t _PAGE = os.sysconf("SC_PAGE_SIZE")


cdef Py_ssize_t _walk(cstr base, Py_ssize_t size, list records, Ledger default,
                      Ledger fallback) except -1:
    """Where the first record that is short, zero, torn, corrupt or senseless starts (size if
    none). With records not None, every record before it goes there as a tuple and the
    snapshots' entries to default / fallback."""
    cdef Py_ssize_t pos = _JNL_HEADER
    cdef const unsigned char* rec
    cdef uint32_t crc
    cdef int64_t cents, ms, count
    cdef int kind, processor
    cdef Ledger target
    while size - pos >= _REC:
        rec = base + pos
        memcpy(&crc, rec + 36, 4)
        if rec[0] != _REC_MAGIC or crc != _crc32(0, rec, 36):
            break  # zeros (the unused part of the file), or torn or corrupt
        kind = rec[1]
        processor = rec[2]
        memcpy(&cents, rec + 4, 8)
        memcpy(&ms, rec + 12, 8)
        if kind < 1 or kind > 6 or processor > 1 or rec[3] != 0 or cents < 0:
            break
        if kind != 6:
            if records is not None:
                records.append((kind, _uuid_str(rec + 20), cents, processor, ms))
            pos += _REC
            continue
        count = cents
        if count > (size - pos - _REC - 4) // 16:
            break  # torn
        memcpy(&crc, rec + _REC + 16 * count, 4)
        if crc != _crc32(0, rec + _REC, 16 * count):
            break
        if records is not None:
            target = default if processor == 0 else fallback
            target.load_c(rec + _REC, count)
        pos += _REC + 16 * count + 4
    return pos


cdef Py_ssize_t _data_end(cstr base, Py_ssize_t pos, Py_ssize_t size) noexcept nogil:
    """size less the zero bytes that end the file, but not less than pos."""
    cdef uint64_t word
    while size - pos >= 8:
        memcpy(&word, base + size - 8, 8)
        if word:
            break
        size -= 8
    while size > pos and base[size - 1] == 0:
        size -= 1
    return size


cdef tuple _scan(int fd, object path, list records, Ledger default, Ledger fallback):
    """(where a replay stops, where the file's data ends: past its last non-zero byte, and not
    before the former); records, default and fallback as _walk's."""
    cdef Py_ssize_t size = os.fstat(fd).st_size, pos, end
    cdef void* mapped
    cdef int err
    _check_journal_header(path, os.pread(fd, _JNL_HEADER, 0))
    mapped = mmap(NULL, <size_t>size, PROT_READ, MAP_SHARED, fd, 0)
    if mapped == MAP_FAILED:
        err = errno
        raise OSError(err, os.strerror(err), path)
    # a million records are a million tuples: the cyclic GC would walk them again and again as
    # they pile up, though tuples of ints and strs can form no cycle
    collecting = records is not None and gc.isenabled()
    if collecting:
        gc.disable()
    try:
        pos = _walk(<cstr>mapped, size, records, default, fallback)
        end = _data_end(<cstr>mapped, pos, size)
    finally:
        if collecting:
            gc.enable()
        munmap(mapped, <size_t>size)
    return pos, end


@cython.final
cdef class Journal:

    def __cinit__(self, path, sync=False):
        self._fd = -1
        self._map = NULL
        self._map_len = 0
        self._buf = NULL
        self._buf_len = 0
        self._buf_cap = 0
        self._size = 0
        self._synced = 0
        self._dropped = 0
        self._sync = bool(sync)
        self._path = os.fspath(path)
        self._fd, _ = _open_journal_file(self._path)
        pos, end = _scan(self._fd, self._path, None, None, None)
        # pos when only zeros follow it (the clean end); past the damage otherwise, as before:
        # replay() first, or what is appended goes when the next replay cuts the damage off
        self._size = end

    def __dealloc__(self):
        self._unmap()
        if self._fd >= 0:
            c_close(self._fd)
        free(self._buf)

    cdef int _ready(self) except -1:
        if self._fd < 0:
            raise ValueError("journal is closed")
        return 0

    cdef int _unmap(self) noexcept:
        if self._map != NULL:
            munmap(self._map, <size_t>self._map_len)
            self._map = NULL
            self._map_len = 0
        return 0

    cdef int _room(self, Py_ssize_t n) except -1:
        """Make the mapping reach n bytes past the logical end: allocate the file a chunk
        further and map it whole again. OSError (nothing changed) if the disk is full."""
        cdef Py_ssize_t need = self._size + n, length
        cdef void* mapped
        cdef int err
        if need <= self._map_len:
            return 0
        length = (need + _JNL_CHUNK - 1) // _JNL_CHUNK * _JNL_CHUNK
        _allocate_journal(self._fd, self._size, length)
        mapped = mmap(NULL, <size_t>length, PROT_READ | PROT_WRITE, MAP_SHARED, self._fd, 0)
        if mapped == MAP_FAILED:
            err = errno
            raise OSError(err, os.strerror(err), self._path)
        self._unmap()
        self._map = <unsigned char*>mapped
        self._map_len = length
        return 0

    cdef int _datasync(self) except -1:
        cdef int rc, err
        with nogil:
            rc = c_fdatasync(self._fd)
        if rc != 0:
            err = errno
            raise OSError(err, os.strerror(err), self._path)
        return 0

    cdef int _sync_c(self) except -1:
        """msync(MS_SYNC) of the pages written since the last sync, then fdatasync (the file's
        length and blocks, and anything written through an earlier mapping)."""
        cdef Py_ssize_t start
        cdef int rc, err
        if self._map != NULL and self._synced < self._size:
            start = self._synced - self._synced % _PAGE
            with nogil:
                rc = msync(self._map + start, <size_t>(self._size - start), MS_SYNC)
            if rc != 0:
                err = errno
                raise OSError(err, os.strerror(err), self._path)
        self._datasync()
        self._synced = self._size
        return 0

    cdef int append_c(self, int kind, const unsigned char* raw, int64_t cents, int processor,
                      int64_t ms) except -1:
        """Copy one record (kind, processor and cents already checked) to the logical end of
        the file; held in memory instead if the file cannot be extended (never OSError)."""
        cdef unsigned char rec[_REC]
        cdef unsigned char* buf
        cdef Py_ssize_t cap
        self._ready()
        _encode(rec, kind, processor, raw, cents, ms)
        if self._buf_len == 0:
            if self._size + _REC > self._map_len:
                try:
                    self._room(_REC)
                except OSError:
                    pass
            if self._size + _REC <= self._map_len:
                memcpy(self._map + self._size, rec, _REC)
                self._size += _REC
                return 0
        if self._buf_len + _REC > self._buf_cap:
            cap = self._buf_cap * 2 if self._buf_cap else 64 * _REC
            buf = <unsigned char*>realloc(self._buf, <size_t>cap)
            if buf == NULL:
                raise MemoryError()
            self._buf = buf
            self._buf_cap = cap
        memcpy(self._buf + self._buf_len, rec, _REC)
        self._buf_len += _REC
        return 0

    cdef int flush_c(self) except -1:
        """Copy the records held in memory (if any) to the file: all, or OSError and none."""
        self._ready()
        if self._buf_len:
            self._room(self._buf_len)
            memcpy(self._map + self._size, self._buf, <size_t>self._buf_len)
            self._size += self._buf_len
            self._buf_len = 0
        return 0

    cdef int _record(self, int kind, object correlation_id, object cents, object processor,
                     object ms) except -1:
        cdef unsigned char raw[16]
        cdef int64_t amount = _i64(cents), at = _i64(ms), p = _i64(processor)
        _uuid_raw_of(correlation_id, raw)
        _check_record(kind, p, amount)
        return self.append_c(kind, raw, amount, <int>p, at)

    cdef int accept_c(self, const unsigned char* raw, int64_t cents) except -1:
        cdef unsigned char rec[_REC]
        _check_record(1, 0, cents)
        self._ready()
        _encode(rec, 1, 0, raw, cents, 0)
        if self._size + self._buf_len + _REC > self._map_len:
            self._room(self._buf_len + _REC)  # OSError: nothing of it is in the file
        if self._buf_len:
            self.flush_c()  # records held in memory go first: file order is call order
        memcpy(self._map + self._size, rec, _REC)
        self._size += _REC
        if self._sync:
            try:
                self._sync_c()
            except BaseException:  # the record is taken back: zeros, the logical end
                self._size -= _REC
                memset(self._map + self._size, 0, _REC)
                raise
        return 0

    def accept(self, correlation_id, cents):
        cdef unsigned char raw[16]
        self.accept_c(raw, _id_and_cents(correlation_id, cents, raw))

    def attempt(self, correlation_id, cents, processor, ms):
        self._record(2, correlation_id, cents, processor, ms)

    def stored(self, correlation_id, cents, processor, ms):
        self._record(3, correlation_id, cents, processor, ms)

    def released(self, correlation_id, cents, processor):
        self._record(4, correlation_id, cents, processor, 0)

    def finished(self, correlation_id, cents):
        self._record(5, correlation_id, cents, 0, 0)

    def flush(self):
        self.flush_c()

    def sync(self):
        self.flush_c()
        self._sync_c()

    def replay(self, ledgers):
        cdef Ledger default = ledgers[0], fallback = ledgers[1]
        cdef list records = []
        if self._fd < 0:
            raise ValueError("journal is closed")
        self.flush_c()
        pos, end = _scan(self._fd, self._path, records, default, fallback)
        self._unmap()  # it may reach past pos: the next record maps the file again
        self._dropped = end - pos
        self._size = pos
        self._synced = min(self._synced, pos)
        _cut_journal(self._fd, pos)
        return records

    def compact(self, ledgers, pending):
        cdef Ledger default = ledgers[0], fallback = ledgers[1]
        cdef bytearray encoded = bytearray(len(pending) * _REC)
        cdef unsigned char* out = encoded
        cdef unsigned char raw[16]
        cdef int64_t kind, processor, cents, ms
        cdef Py_ssize_t size
        cdef int fd, old
        for item in pending:
            kind_, correlation_id, cents_, processor_, ms_ = item
            kind = _i64(kind_)
            cents = _i64(cents_)
            processor = _i64(processor_)
            ms = _i64(ms_)
            _uuid_raw_of(correlation_id, raw)
            _check_record(kind, processor, cents)
            _encode(out, <int>kind, <int>processor, raw, cents, ms)
            out += _REC
        self.flush_c()  # to the old file: if the new one never takes its place, nothing is lost
        directory = os.path.dirname(os.path.abspath(self._path))
        tmp = f"{self._path}.{os.getpid()}.compact.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            _lock_journal(fd, False, True)  # as every open journal's (see _cut_journal)
            header = _JNL_LAYOUT.pack(_JNL_MAGIC, _JNL_VERSION, _REC)
            _write_fd(fd, <cstr>(<bytes>header), _JNL_HEADER, tmp)
            size = _JNL_HEADER
            size += _write_snapshot(fd, default, 0, tmp)
            size += _write_snapshot(fd, fallback, 1, tmp)
            _write_fd(fd, <cstr>(<unsigned char*>encoded), len(encoded), tmp)
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
        old = self._fd
        self._fd = fd
        self._size = size
        self._synced = size
        c_close(old)
        _fsync_directory(directory)  # the rename itself outlives a power cut

    def clear(self):
        if self._fd < 0:
            raise ValueError("journal is closed")
        self._unmap()
        os.ftruncate(self._fd, _JNL_HEADER)
        self._buf_len = 0
        self._size = _JNL_HEADER
        self._synced = min(self._synced, _JNL_HEADER)

    def close(self):
        if self._fd < 0:
            return
        try:
            self.flush_c()
        finally:
            self._unmap()
            try:
                # the unused zeros past the records; never data, which a Journal whose
                # size is stale (another appended since it looked) would not know of
                _cut_journal(self._fd, self._size, True)
            finally:
                c_close(self._fd)
                self._fd = -1
                self._buf_len = 0

    def __enter__(self):
        self._ready()
        return self

    def __exit__(self, *exc_info):
        self.close()

    @property
    def path(self):
        return self._path

    @property
    def size(self):
        return self._size

    @property
    def pending_bytes(self):
        return self._buf_len

    @property
    def dropped_bytes(self):
        return self._dropped


# -- accepted payments as C data, and POST /payments framed and answered in C -------------------


@cython.final
cdef class PaymentQueue:
    """Payments accepted and not yet attempted, first in first out: a ring of 24-byte C
    records, no Python object per payment until one is popped to be sent."""

    def __cinit__(self):
        self._items = <_Queued*>PyMem_Malloc(_QUEUE_INITIAL * sizeof(_Queued))
        if self._items == NULL:
            raise MemoryError()
        self._cap = _QUEUE_INITIAL
        self._head = 0
        self._len = 0

    def __dealloc__(self):
        PyMem_Free(self._items)

    cdef int _grow(self) except -1:
        cdef Py_ssize_t cap = self._cap * 2, first = self._cap - self._head
        cdef _Queued* items = <_Queued*>PyMem_Malloc(cap * sizeof(_Queued))
        if items == NULL:
            raise MemoryError()
        if first >= self._len:
            memcpy(items, self._items + self._head, self._len * sizeof(_Queued))
        else:  # wrapped: the tail end of the ring, then its start
            memcpy(items, self._items + self._head, first * sizeof(_Queued))
            memcpy(items + first, self._items, (self._len - first) * sizeof(_Queued))
        PyMem_Free(self._items)
        self._items = items
        self._cap = cap
        self._head = 0
        return 0

    cdef int push_c(self, const unsigned char* raw, int64_t cents) except -1:
        cdef _Queued* item
        if self._len == self._cap:
            self._grow()
        item = &self._items[(self._head + self._len) % self._cap]
        memcpy(item.raw, raw, 16)
        item.cents = cents
        self._len += 1
        return 0

    cdef int push_front_c(self, const unsigned char* raw, int64_t cents) except -1:
        cdef _Queued* item
        if self._len == self._cap:
            self._grow()
        self._head = (self._head + self._cap - 1) % self._cap
        item = &self._items[self._head]
        memcpy(item.raw, raw, 16)
        item.cents = cents
        self._len += 1
        return 0

    def push(self, correlation_id, cents):
        cdef unsigned char raw[16]
        self.push_c(raw, _id_and_cents(correlation_id, cents, raw))

    def push_front(self, correlation_id, cents):
        cdef unsigned char raw[16]
        self.push_front_c(raw, _id_and_cents(correlation_id, cents, raw))

    cdef _Queued* _take(self) except NULL:
        """The first record, taken off the ring (valid until the next push); IndexError if none."""
        cdef _Queued* item
        if self._len == 0:
            raise IndexError("pop from an empty PaymentQueue")
        item = &self._items[self._head]
        self._head = (self._head + 1) % self._cap
        self._len -= 1
        return item

    def pop(self):
        cdef _Queued* item = self._take()
        return _uuid_str(item.raw), item.cents

    def pop_payment(self):
        cdef _Queued* item = self._take()
        return _payment_of(item.raw, item.cents)

    def items(self):
        cdef Py_ssize_t i
        cdef _Queued* item
        cdef list out = []
        for i in range(self._len):
            item = &self._items[(self._head + i) % self._cap]
            out.append((_uuid_str(item.raw), item.cents))
        return out

    def clear(self):
        self._head = 0
        self._len = 0

    def __len__(self):
        return self._len


cdef const char* _POST_PAYMENTS = b"POST /payments HTTP/1.1\r\n"
cdef Py_ssize_t _POST_PAYMENTS_LEN = 25


cdef inline bint _tchar(unsigned char c) noexcept nogil:
    """A character of an HTTP token (a header name), RFC 9110 5.6.2."""
    if (c >= c'a' and c <= c'z') or (c >= c'A' and c <= c'Z') or (c >= c'0' and c <= c'9'):
        return True
    return (c == c'!' or c == c'#' or c == c'$' or c == c'%' or c == c'&' or c == c"'"
            or c == c'*' or c == c'+' or c == c'-' or c == c'.' or c == c'^' or c == c'_'
            or c == c'`' or c == c'|' or c == c'~')


cdef inline bint _name_is(cstr name, Py_ssize_t n, const char* lower, Py_ssize_t m) noexcept nogil:
    """An HTTP header name equals `lower` (m bytes, lower case), ignoring case."""
    cdef Py_ssize_t i
    if n != m:
        return False
    for i in range(n):
        if (name[i] | 0x20) != <unsigned char>lower[i]:
            return False
    return True


cdef enum:
    _LINE_BAD = -1  # not a well-formed head line
    _LINE_INCOMPLETE = 0  # the bytes end inside it
    _LINE_END = 1  # the blank line that ends a head
    _LINE_HEADER = 2  # `name: value`


cdef int _head_line(cstr* at, cstr end, cstr* name, Py_ssize_t* name_len, cstr* value,
                    Py_ssize_t* value_len) noexcept nogil:
    """One line of an HTTP head at *at (a header, or the blank line that ends the head); *at
    moves past it. A header's name is a token followed by a colon; its value, the optional
    whitespace around it stripped, has no control byte but tab; lines end in CRLF."""
    cdef cstr q = at[0]
    cdef cstr value_end
    if end - q < 2:
        return _LINE_INCOMPLETE
    if q[0] == c'\r':
        if q[1] != c'\n':
            return _LINE_BAD
        at[0] = q + 2
        return _LINE_END
    name[0] = q
    while q < end and _tchar(q[0]):
        q += 1
    name_len[0] = q - name[0]
    if q >= end:
        return _LINE_INCOMPLETE
    if name_len[0] == 0 or q[0] != c':':
        return _LINE_BAD
    q += 1
    while q < end and (q[0] == c' ' or q[0] == c'\t'):
        q += 1
    value[0] = q
    while q < end and q[0] != c'\r':
        if (q[0] < 0x20 and q[0] != c'\t') or q[0] == 0x7f:
            return _LINE_BAD
        q += 1
    if end - q < 2:
        return _LINE_INCOMPLETE
    if q[1] != c'\n':
        return _LINE_BAD
    value_end = q
    while value_end > value[0] and (value_end[-1] == c' ' or value_end[-1] == c'\t'):
        value_end -= 1
    value_len[0] = value_end - value[0]
    at[0] = q + 2
    return _LINE_HEADER


cdef Py_ssize_t _content_length(cstr value, Py_ssize_t n) noexcept nogil:
    """A Content-Length value: 1 to 9 digits, nothing else; -1 otherwise."""
    cdef Py_ssize_t i, length = 0
    if n == 0 or n > 9:
        return -1
    for i in range(n):
        if not _digit(value[i]):
            return -1
        length = length * 10 + (value[i] - 48)
    return length


cdef Py_ssize_t _frame_post(cstr p, cstr end, Py_ssize_t max_body, cstr* body,
                            Py_ssize_t* body_len) noexcept nogil:
    """The length of one whole, plain `POST /payments HTTP/1.1` request at p (its body in
    `body`); 0 for anything else: incomplete, another route, a head over _MAX_HEAD bytes,
    Transfer-Encoding, Expect, Upgrade, Connection other than keep-alive, no or a repeated
    or malformed Content-Length, a body over max_body, any malformed line. Those go to the
    general parser, which answers them as it always did."""
    cdef cstr q, name, value
    cdef Py_ssize_t name_len, value_len, length = -1
    cdef int line
    if end - p < _POST_PAYMENTS_LEN or memcmp(p, _POST_PAYMENTS, _POST_PAYMENTS_LEN) != 0:
        return 0
    q = p + _POST_PAYMENTS_LEN
    while True:
        if q - p > _MAX_HEAD:
            return 0
        line = _head_line(&q, end, &name, &name_len, &value, &value_len)
        if line == _LINE_END:
            break
        if line != _LINE_HEADER:
            return 0
        if _name_is(name, name_len, "content-length", 14):
            if length >= 0:
                return 0
            length = _content_length(value, value_len)
            if length < 0:
                return 0
        elif _name_is(name, name_len, "connection", 10):
            if not _name_is(value, value_len, "keep-alive", 10):
                return 0
        elif (_name_is(name, name_len, "transfer-encoding", 17)
              or _name_is(name, name_len, "expect", 6)
              or _name_is(name, name_len, "upgrade", 7)):
            return 0
    if length < 0 or length > max_body or end - q < length:
        return 0
    body[0] = q
    body_len[0] = length
    return (q - p) + length


@cython.final
cdef class PaymentIntake:
    """POST /payments framed and answered in C, for a connection at a request boundary."""

    def __init__(self, SharedIdSet ids not None, Journal journal not None,
                 PaymentQueue queue not None, Py_ssize_t max_body, answers):
        self._ids = ids
        self._journal = journal
        self._queue = queue
        self._max_body = max_body
        (self._accepted_answer, self._duplicate_answer, self._mismatch_answer,
         self._ids_full_answer, self._backlog_full_answer) = answers
        self.accepted = 0
        self.rejected = 0
        self.duplicates = 0
        self.refused_full = 0

    def feed(self, bytes data not None, Py_ssize_t room):
        cdef Py_ssize_t used = 0, taken = 0
        answers = self.feed_c(data, room, &used, &taken)
        return used, answers, taken

    cdef object feed_c(self, bytes data, Py_ssize_t room, Py_ssize_t* used, Py_ssize_t* taken):
        """The answers; *used: bytes taken from data, *taken: payments queued."""
        cdef cstr start = <cstr>PyBytes_AS_STRING(data)
        cdef cstr end = start + PyBytes_GET_SIZE(data)
        cdef cstr p = start
        cdef cstr body
        cdef Py_ssize_t n, body_len
        cdef unsigned char lower[36]
        cdef unsigned char raw[16]
        cdef int64_t cents
        cdef int claim
        cdef object answer, out = None
        cdef list parts = None
        used[0] = 0
        taken[0] = 0
        if self._ids._map == NULL or self._journal._fd < 0:
            return b""  # closed (shutdown): the general path answers
        while p < end:
            n = _frame_post(p, end, self._max_body, &body, &body_len)
            if n == 0:
                break
            if _payment_c(body, body + body_len, lower, &cents) != 0:
                break  # the general path answers 400 with the reason
            if room <= 0:
                self.refused_full += 1
                answer = self._backlog_full_answer
            else:
                _uuid_raw_c(lower, raw)
                try:  # on disk (page cache) before the claim and the 202
                    self._journal.accept_c(raw, cents)
                except OSError:
                    break  # the general path logs it and answers 503
                claim = self._ids.claim_raw(raw, cents)
                if claim == _CLAIM_NEW:
                    self._queue.push_c(raw, cents)
                    self.accepted += 1
                    taken[0] += 1
                    room -= 1
                    answer = self._accepted_answer
                elif claim == _CLAIM_CONFLICT:
                    self.rejected += 1
                    answer = self._mismatch_answer
                elif claim == _CLAIM_FULL:
                    self.refused_full += 1
                    answer = self._ids_full_answer
                else:  # CLAIM_MINE, CLAIM_OTHER: accepted before, here or by a peer
                    self.duplicates += 1
                    answer = self._duplicate_answer
            p += n
            if out is None:
                out = answer
            else:
                if parts is None:
                    parts = [out]
                parts.append(answer)
        if parts is not None:
            out = b"".join(parts)
        used[0] = p - start
        return b"" if out is None else out


# -- the clients' connections and the pump's clock: a plain POST with no Python frame -----------

cdef class DispatcherCore:
    """The hot half of rinha.dispatcher.Dispatcher (see _fast.pyi): the Python subclass has the
    pump (`_pump`) and every decision."""

    def __cinit__(self, *args, **kwargs):
        self.fresh = None
        self.pinned = (deque(), deque())
        self._pacing = None
        self._loop = None
        self._pump_timer = None
        self._pump_at = 0.0
        self._tick_s = 0.0
        self._closed = False

    @property
    def backlog(self):
        return self.backlog_c()

    cdef Py_ssize_t backlog_c(self) except -1:
        cdef object fresh = self.fresh
        cdef Py_ssize_t n = (<PaymentQueue>fresh)._len if type(fresh) is PaymentQueue else len(fresh)
        return n + len(self.pinned[0]) + len(self.pinned[1])

    def arrived(self, Py_ssize_t n):
        self.arrived_c(n)

    cdef int arrived_c(self, Py_ssize_t n) except -1:
        if type(self._pacing) is CatchUp:
            (<CatchUp>self._pacing).arrived += n
        else:
            self._pacing.arrive(n)
        return self.wake_c(self._tick_s)

    def _wake(self, delay_s=None):
        self.wake_c(self._tick_s if delay_s is None else <double>delay_s)

    cdef int wake_c(self, double delay_s) except -1:
        cdef double at
        if self._closed:
            return 0
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        at = loop.time() + delay_s
        if self._pump_timer is not None:
            if self._pump_at <= at:
                return 0
            self._pump_timer.cancel()
        self._pump_at = at
        self._pump_timer = loop.call_later(delay_s, self._pump)  # call_at would add a time()
        return 0


cdef class ProtocolCore:
    """The hot half of rinha.protocol.HttpProtocol (see _fast.pyi): `data_received`. The
    Python subclass has `_parse` (httptools) and the rest of the connection's life."""

    def __cinit__(self, *args, **kwargs):
        self.transport = None
        self.closing = False
        self.started = 0.0
        self.idle_since = 0.0
        self.pending = deque()
        self.watch = None
        self.intake = None
        self.dispatcher = None
        self.max_backlog = 0

    def data_received(self, data):
        cdef Py_ssize_t used = 0, taken = 0, room
        cdef object dispatcher, answers
        if self.closing:
            return
        if self.intake is not None and self.started == 0.0 and not self.pending:
            # at a request boundary with nothing owed: the plain POSTs at the start, in C
            dispatcher = self.dispatcher
            if isinstance(dispatcher, DispatcherCore):
                room = self.max_backlog - (<DispatcherCore>dispatcher).backlog_c()
            else:
                room = self.max_backlog - dispatcher.backlog
            if type(self.intake) is PaymentIntake and type(data) is bytes:
                answers = (<PaymentIntake>self.intake).feed_c(data, room, &used, &taken)
            else:
                used, answers, taken = self.intake.feed(data, room)
            if used:
                self.transport.write(answers)
                if taken:
                    if isinstance(dispatcher, DispatcherCore):
                        (<DispatcherCore>dispatcher).arrived_c(taken)
                    else:
                        dispatcher.arrived(taken)
                if used == len(data):
                    self.idle_since = self.watch.now_s
                    return
                data = data[used:]
        self._parse(data)


# -- a processor's answer framed in C ------------------------------------------------------------

cdef const char* _HTTP11 = b"HTTP/1.1 "


@cython.final
cdef class ResponseReader:
    """One HTTP/1.1 answer at a time, framed in C (see _fast.pyi)."""

    def __cinit__(self):
        self._held = b""
        self.status = 0
        self.keep_alive = True
        self.body = b""

    def feed(self, bytes data not None):
        return self.feed_c(data)

    cdef int feed_c(self, bytes data) except -2:
        cdef bytes buf = data if not self._held else self._held + data
        cdef cstr start = <cstr>PyBytes_AS_STRING(buf)
        cdef Py_ssize_t size = PyBytes_GET_SIZE(buf)
        cdef cstr end = start + size
        cdef cstr q, name, value
        cdef Py_ssize_t name_len, value_len, length = -1
        cdef int status, line
        cdef bint keep_alive = True
        self._held = buf
        if size < 12:
            return 0 if memcmp(start, _HTTP11, size if size < 9 else 9) == 0 else -1
        if memcmp(start, _HTTP11, 9) != 0:
            return -1
        if not (_digit(start[9]) and _digit(start[10]) and _digit(start[11])):
            return -1
        status = (start[9] - 48) * 100 + (start[10] - 48) * 10 + (start[11] - 48)
        if status < 200 or status == 204 or status == 304:
            return -1  # no body or an interim answer: the general parser's rules
        q = start + 12
        while q < end and q[0] != c'\r':  # the reason phrase
            if (q[0] < 0x20 and q[0] != c'\t') or q[0] == 0x7f:
                return -1
            q += 1
        if end - q < 2:
            return 0 if q - start <= _MAX_HEAD else -1
        if q[1] != c'\n':
            return -1
        q += 2
        while True:
            if q - start > _MAX_HEAD:
                return -1
            line = _head_line(&q, end, &name, &name_len, &value, &value_len)
            if line == _LINE_END:
                break
            if line != _LINE_HEADER:
                return 0 if line == _LINE_INCOMPLETE else -1
            if _name_is(name, name_len, "content-length", 14):
                if length >= 0:
                    return -1
                length = _content_length(value, value_len)
                if length < 0:
                    return -1
            elif _name_is(name, name_len, "connection", 10):
                if _name_is(value, value_len, "close", 5):
                    keep_alive = False
                elif not _name_is(value, value_len, "keep-alive", 10):
                    return -1
            elif _name_is(name, name_len, "transfer-encoding", 17):
                return -1
        if length < 0:
            return -1  # the body runs to the end of the connection: the general parser's case
        if end - q < length:
            return 0
        if end - q > length:
            return -1  # more than one answer: the stream is out of step, or pipelined
        self.status = status
        self.keep_alive = keep_alive
        self.body = PyBytes_FromStringAndSize(<char*>q, length) if length else b""
        self._held = b""
        return 1

    def take(self):
        cdef bytes held = self._held
        self._held = b""
        return held


# ---------------------------------------------------------------------------- calls
# A payment attempt's life after the pump sends it: the processor's call accounting (ProcessorState,
# the base of rinha.processors.Processor) and the filing of its answer (AttemptFiler). The common
# answer, "stored", is filed here without a Python frame; every other outcome goes to the
# dispatcher's Python (`Dispatcher._attempt_done`), which decides retries and pins.

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clock_id, timespec* tp)
    int CLOCK_REALTIME

cdef enum:
    # how a call ended, as evidence about the processor (exported below; rinha.processors
    # re-exports them)
    _STORED = 0  # the payment is in its books: counted as processed
    _ANSWERED = 1  # an answer that stored nothing new (a 422 duplicate; a lookup's 404)
    _FAILED = 2  # an error status, a timeout or a lost connection
    _NO_EVIDENCE = 3  # says nothing of its health (429; a 4xx refusal)
    _UNPINNED = -1


STORED = _STORED
ANSWERED = _ANSWERED
FAILED = _FAILED
NO_EVIDENCE = _NO_EVIDENCE
UNPINNED = _UNPINNED


cdef inline int64_t _now_ms() noexcept nogil:
    """Wall-clock epoch ms, the clock of time.time_ns() (what the processors file)."""
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000 + ts.tv_nsec // 1000000


def now_ms():
    return _now_ms()


@cython.final
@cython.freelist(64)
cdef class Payment:
    """One accepted payment on its way to a processor (see _fast.pyi)."""

    def __init__(self, correlation_id, cents):
        self.cents = _id_and_cents(correlation_id, cents, self.raw)
        self.correlation_id = _uuid_str(self.raw)
        self.pinned = _UNPINNED
        self.requested_at_ms = 0
        self.checked_ms = 0

    def pin(self, int processor):
        self.pinned = processor

    def __repr__(self):
        return f"Payment({self.correlation_id!r}, {self.cents})"


cdef Payment _payment_of(const unsigned char* raw, int64_t cents):
    cdef Payment payment = Payment.__new__(Payment)
    memcpy(payment.raw, raw, 16)
    payment.correlation_id = _uuid_str(raw)
    payment.cents = cents
    payment.pinned = _UNPINNED
    return payment


cdef class ProcessorState:
    """A processor's calls out and what their outcomes say of it (see _fast.pyi)."""

    def __cinit__(self, *args, **kwargs):
        self.ok = True
        self.call_starts = {}

    cdef int start_call_c(self, object payment, int64_t now) except -1:
        if not self.ok:
            self.last_probe_ms = now
        self.in_flight += 1
        self.call_starts[payment] = now
        return 0

    cdef int end_call_c(self, object payment, int64_t now, int outcome) except -1:
        cdef int64_t sent_ms = self.call_starts.pop(payment)
        self.in_flight -= 1
        if outcome == _STORED:
            self.processed += 1
        if outcome != _NO_EVIDENCE:
            self.observe_c(now, sent_ms, outcome != _FAILED)
        return 0

    cdef void observe_c(self, int64_t now, int64_t sent_ms, bint ok) noexcept:
        cdef int64_t latency_ms = now - sent_ms
        if not ok or latency_ms > self.slow_ms:
            if sent_ms > self.bad_sent_ms:
                self.bad_sent_ms = sent_ms
        if sent_ms < self.evidence_sent_ms:
            return
        self.evidence_sent_ms = sent_ms
        self.last_outcome_ms = now
        self.latency_ms = <double>latency_ms
        if ok:
            self.failing = False
            self.backoff_ms = 0
            self.next_probe_ms = 0
        else:
            self.failing = True
            self.backoff_ms = min(self.retry_max_ms, max(self.retry_min_ms, self.backoff_ms * 2))
            self.next_probe_ms = now + self.backoff_ms

    def start_call(self, payment, int64_t now):
        self.start_call_c(payment, now)

    def end_call(self, payment, int64_t now, int outcome):
        self.end_call_c(payment, now, outcome)

    def start_lookup(self):
        self.in_flight += 1

    def end_lookup(self, int64_t now, int outcome):
        self.in_flight -= 1
        if outcome == _STORED:
            self.processed += 1
        elif outcome == _FAILED:
            self.observe_c(now, now, False)

    def observe(self, int64_t now, int64_t sent_ms, bint ok):
        self.observe_c(now, sent_ms, ok)

    # the routing's view
    @property
    def unusable_since_ms(self):
        return self._unusable_since if self._unusable else None

    @unusable_since_ms.setter
    def unusable_since_ms(self, value):
        self._unusable = value is not None
        self._unusable_since = 0 if value is None else value

    cdef bint health_speaks_c(self, int64_t now) noexcept:
        return now - self.last_outcome_ms > 2000 and self.health_at_ms > self.last_outcome_ms

    cdef int64_t oldest_call_age_c(self, int64_t now) except? -1:
        cdef int64_t started
        for value in self.call_starts.values():
            started = value
            if started >= self.evidence_sent_ms:
                return now - started
        return 0

    cdef bint usable_c(self, int64_t now) except -1:
        cdef bint speaks = self.health_speaks_c(now)
        if self.health_failing if speaks else self.failing:
            return False
        if self.latency_ms > self.slow_ms or (speaks and self.health_min_ms > self.slow_ms):
            return False
        return not self.call_starts or self.oldest_call_age_c(now) <= self.slow_ms

    def health_speaks(self, int64_t now):
        return self.health_speaks_c(now)

    def oldest_call_age_ms(self, int64_t now):
        return self.oldest_call_age_c(now)

    def usable(self, int64_t now):
        return self.usable_c(now)

    def refresh(self, int64_t now):
        cdef bint ok = self.usable_c(now)
        cdef int64_t age
        if ok != self.ok:
            self._log_change(now, ok)
        if ok:
            if not self.ok:
                self.ok_since_ms = now
            self._unusable = False
        else:
            if not self._unusable:
                self._unusable = True
                self._unusable_since = now
            age = self.oldest_call_age_c(now)
            if age > self.slow_ms:  # a call out for that long is evidence of slowness by itself
                self.bad_sent_ms = max(self.bad_sent_ms, now - age)
        self.ok = ok
        return ok

    def _log_change(self, int64_t now, bint ok):
        pass  # rinha.processors.Processor logs it

    def unusable_for_ms(self, int64_t now):
        return now - self._unusable_since if self._unusable else 0

    def apply_health(self, int64_t now, bint failing, int64_t min_response_ms):
        self.health_failing = failing
        self.health_min_ms = min_response_ms
        self.health_at_ms = now


@cython.final
cdef class AttemptFiler:
    """Files each payment attempt's answer (see _fast.pyi)."""

    def __init__(self, ledgers, Journal journal not None, PaymentQueue fresh not None, pinned,
                 others, wake, heads):
        self._default_ledger, self._fallback_ledger = ledgers
        self._default_head, self._fallback_head = heads
        self._journal = journal
        self._fresh = fresh
        self._pinned = pinned
        self._others = others
        self._wake = wake

    def attempt(self, Payment payment not None, ProcessorState p not None, int64_t now):
        cdef AttemptCall call = AttemptCall.__new__(AttemptCall)
        if payment.pinned != p.index:  # pinned: the identical request, already journaled
            payment.requested_at_ms = now
            self._journal.append_c(2, payment.raw, payment.cents, p.index, now)
        p.start_call_c(payment, now)  # a payment has one attempt out at most
        call._filer = self
        call._payment = payment
        call._processor = p
        # the same (id, cents, requestedAt) always give the same bytes
        call.request = _payment_request(
            self._default_head if p.index == 0 else self._fallback_head,
            payment.correlation_id, payment.cents, payment.requested_at_ms,
        )
        return call

    cdef int file_c(self, Payment payment, ProcessorState p, int status, object body,
                    object error) except -1:
        cdef int64_t now
        cdef Ledger ledger
        if error is not None or not (
            200 <= status < 300 or (status == 422 and payment.pinned == p.index)
        ):
            self._others(payment, p, status, body, error)
            return 0
        # stored by this call, or (422) by the earlier unknown one: the same requestedAt
        now = _now_ms()
        ledger = self._default_ledger if p.index == 0 else self._fallback_ledger
        ledger.add_c(payment.requested_at_ms, payment.cents)
        self._journal.append_c(3, payment.raw, payment.cents, p.index, payment.requested_at_ms)
        p.end_call_c(payment, now, _STORED)
        if self._fresh._len or len(self._pinned[0]) or len(self._pinned[1]):
            self._wake()  # something waits for this call's slot: pump next tick
        return 0


@cython.final
@cython.freelist(64)
cdef class AttemptCall:
    """`done(status, body, error)` of one payment attempt, and its `request` (see _fast.pyi)."""

    def __call__(self, int status, body, error):
        self._filer.file_c(self._payment, self._processor, status, body, error)



# ---------------------------------------------------------------------------- connection
@cython.final
cdef class Connection:
    """One keep-alive connection of an HttpPool (rinha.http_client), carrying one request at a
    time (see _fast.pyi). Compiled, an answer framed by ResponseReader and filed by an
    AttemptFiler reaches the ledger without a Python frame but the pool's `release`."""

    def __init__(self, pool, bint frame_answers=True):
        self.pool = pool
        # looked up once: asyncio.get_running_loop() per send costs a getpid() system call
        self.loop = asyncio.get_running_loop()
        self.transport = None
        self.reader = ResponseReader() if frame_answers else None
        self.parser = None  # httptools, from the first answer the reader does not frame
        self.done = None
        self.deadline = 0.0
        self.closed = False
        self.idle_since = 0.0
        self._body = []

    # asyncio callbacks
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, bytes data not None):
        cdef ResponseReader reader = self.reader
        cdef int framed
        if reader is not None:
            framed = reader.feed_c(data)
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

    def eof_received(self):
        return None  # the transport closes itself; connection_lost follows

    def pause_writing(self):
        pass  # one small request at a time: nothing to hold back

    def resume_writing(self):
        pass

    def connection_lost(self, exc):
        self.closed = True
        self.fail(OutcomeUnknown("connection lost before the answer"))
        # break the cycles (parser and transport call back into us): freed by reference
        # counting, not whenever the GC next runs
        self.transport = None
        self.parser = None
        self.reader = None
        self.pool = None

    # httptools callbacks
    def on_body(self, body):
        self._body.append(body)

    def on_message_complete(self):
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._body.clear()
        self._answered(self.parser.get_status_code(), body, self.parser.should_keep_alive())

    cdef int _answered(self, int status, object body, bint keep_alive) except -1:
        cdef object done = self.done
        self.done = None
        if done is None:  # an answer nobody asked for: the stream is out of step
            self.fail(OutcomeUnknown("unexpected answer"))
            return 0
        if keep_alive and self.pool is not None:
            if isinstance(self.pool, PoolCore):
                (<PoolCore>self.pool).release_c(self)
            else:
                self.pool.release(self)
        else:
            self.close()
        if type(done) is AttemptCall:
            (<AttemptCall>done)._filer.file_c(
                (<AttemptCall>done)._payment, (<AttemptCall>done)._processor, status, body, None
            )
        else:
            done(status, body, None)
        return 0

    # used by the pool
    @property
    def writable(self):
        return self.writable_c()

    cdef bint writable_c(self) except -1:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def send(self, data, double timeout_s, done):
        self.send_c(data, timeout_s, done)

    cdef int send_c(self, object data, double timeout_s, object done) except -1:
        assert self.transport is not None and self.done is None and self.pool is not None
        loop = self.loop
        self.done = done
        self.deadline = loop.time() + timeout_s
        if isinstance(self.pool, PoolCore):
            (<PoolCore>self.pool).watch_c(self)
        else:
            self.pool.watch(self)
        try:
            self.transport.write(data)
        except Exception as exc:  # closed under us (e.g. the server's FIN, not yet delivered)
            # the outcome is unknown by the letter (a part may have left); fail on the next
            # loop turn: `done` never runs inside send()
            loop.call_soon(self.fail, OutcomeUnknown(f"write failed: {exc!r}"))
        return 0

    def fail(self, exc):
        self.close()
        done = self.done
        self.done = None
        if done is not None:
            done(0, b"", exc)

    def close(self):
        self.closed = True
        if self.pool is not None:
            self.pool.forget(self)
        if self.transport is not None:
            self.transport.abort()



cdef class PoolCore:
    """The hot half of a connection pool (see _fast.pyi): `rinha.http_client.HttpPool` is its
    Python subclass. Connections are compiled `Connection`s (or any with the same methods)."""

    def __cinit__(self, *args, **kwargs):
        self._idle = []
        self._out = set()
        self._waiting = deque()
        self.idle_close_s = 0.0
        self._sweep_timer = None

    def send(self, data, double timeout_s, done):
        cdef list idle = self._idle
        while idle:
            conn = idle.pop()
            if type(conn) is Connection:
                if (<Connection>conn).writable_c():
                    (<Connection>conn).send_c(data, timeout_s, done)
                    return
            elif conn.writable:
                conn.send(data, timeout_s, done)
                return
        self._send_new(data, timeout_s, done)

    def watch(self, conn):
        self.watch_c(conn)

    cdef int watch_c(self, object conn) except -1:
        self._out.add(conn)
        if self._sweep_timer is None or conn.deadline < self._sweep_timer.when():
            self._arm(conn.loop, conn.deadline)
        return 0

    def release(self, conn):
        self.release_c(conn)

    cdef int release_c(self, object conn) except -1:
        self._out.discard(conn)
        if self._waiting and conn.writable and self._hand_over(conn):
            return 0
        if self.idle_close_s:
            conn.idle_since = conn.loop.time()
            self._due(conn.loop, conn.idle_since + self.idle_close_s)
        self._idle.append(conn)
        return 0



# ---------------------------------------------------------------------------- pacing
@cython.final
cdef class CatchUp:
    """How many calls one dispatcher pump may start (see _fast.pyi and rinha.pacing)."""

    def __init__(self, Py_ssize_t cap, double rate_per_s, double window_ms, double tick_ms):
        self.enabled = rate_per_s > 0
        self.cap = cap
        self.rate = rate_per_s
        self.window_s = window_ms / 1000
        self.tick_s = tick_ms / 1000
        self.arrived = 0
        self.credit = 0.0
        self.at = 0.0
        self.ends = 0.0

    def arrive(self, Py_ssize_t n=1):
        self.arrived += n

    def budget(self, double now_s, Py_ssize_t backlog):
        cdef Py_ssize_t cap = self.cap, arrived = self.arrived
        cdef double rate, left_s, earned
        self.arrived = 0
        if not self.enabled:
            return cap, cap
        if backlog <= arrived <= cap and not self.ends:
            return arrived, arrived  # only new arrivals wait and all may go: nothing to pace
        rate = self.rate
        if self.ends:
            left_s = self.ends - now_s
            if left_s <= self.tick_s:
                return cap, arrived  # out of time: full speed
            rate = max(rate, backlog / left_s)
        earned = (now_s - self.at) * rate
        self.at = now_s
        self.credit = min(self.credit + earned, max(1.0, 2 * rate * self.tick_s))
        return min(cap, arrived + <Py_ssize_t>(self.credit + 1e-9)), arrived

    def spent(self, Py_ssize_t allowed, Py_ssize_t started, Py_ssize_t arrived,
              Py_ssize_t backlog):
        if not self.enabled:
            return
        self.credit = max(0.0, self.credit - max(0, started - arrived))
        if started == allowed and backlog:
            if not self.ends:
                self.ends = self.at + self.window_s
        else:
            self.ends = 0.0

    def stop(self):
        self.enabled = False
