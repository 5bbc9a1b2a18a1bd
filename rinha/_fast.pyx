# cython: language_level=3
"""Compiled hot paths: the POST /payments body, ISO-8601 <-> epoch ms, the processor request bytes,
the sorted cents ledger and the correlationId set. `rinha/_reference.py` is the readable twin with
the same API and behaviour; the typed API with docstrings is in `_fast.pyi`.

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
from libc.stdint cimport INT64_MAX, int64_t, uint64_t
from libc.string cimport memcmp, memcpy, memmove, memset

from rinha.errors import (
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

ctypedef const unsigned char* cstr

cdef enum:
    _MAX_DEPTH = 64  # deepest nesting of objects/arrays in a body (the top object is 1)
    _LEDGER_INITIAL = 1024  # entries (16 KiB)
    _IDSET_INITIAL = 1024  # slots (8 KiB), plus the slack
    _IDSET_SLACK = 64  # slots past the last home: the table does not wrap around
    _MS_PER_DAY = 86400000

cdef int64_t _MAX_CENTS = 10000000000000  # largest accepted amount: 100,000,000,000.00
cdef int64_t _MIN_MS = -62135596800000  # 0001-01-01T00:00:00.000Z
cdef int64_t _MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
cdef int64_t _EXP_CLAMP = 1000000000000000  # |exponent| beyond this changes no outcome
cdef int64_t _DAYS_0001 = -719162  # days from 1970-01-01 back to 0001-01-01

MAX_CENTS = _MAX_CENTS
MIN_MS = _MIN_MS
MAX_MS = _MAX_MS

# hex digit value of each byte, -1 if none
cdef signed char _HEX[256]
memset(_HEX, -1, sizeof(_HEX))
cdef int _i
for _i in range(10):
    _HEX[48 + _i] = _i
for _i in range(6):
    _HEX[65 + _i] = 10 + _i
    _HEX[97 + _i] = 10 + _i


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


def parse_payment(body):
    cdef bytes data = body if type(body) is bytes else bytes(memoryview(body))
    cdef cstr start = <cstr>PyBytes_AS_STRING(data)
    cdef cstr end = start + PyBytes_GET_SIZE(data)
    cdef cstr p
    cdef bint is_object = False
    cdef _Body found
    cdef unsigned char id_buf[36]
    cdef unsigned char lower[36]
    cdef cstr id_text
    cdef int64_t cents
    memset(&found, 0, sizeof(found))
    if not _utf8_ok(start, end - start):
        raise InvalidPayment(R_UTF8)
    p = _ws(start, end)
    if p < end and p[0] == c'{':
        is_object = True
        p = _top_object(p + 1, end, &found)
    else:
        p = _value(p, end, 0)
    if p == NULL:
        raise InvalidPayment(R_JSON)
    if _ws(p, end) != end:
        raise InvalidPayment(R_TRAILING)
    if not is_object:
        raise InvalidPayment(R_NOT_OBJECT)

    if found.n_id == 0:
        raise InvalidPayment(R_ID_MISSING)
    if found.n_id > 1:
        raise InvalidPayment(R_ID_DUPLICATE)
    if found.id_kind != _STRING:
        raise InvalidPayment(R_ID_TYPE)
    id_text = found.id_start
    if found.id_escaped:
        if _unescape_ascii(found.id_start, found.id_end, id_buf, 36) != 36:
            raise InvalidPayment(R_ID_UUID)
        id_text = id_buf
    elif found.id_end - found.id_start != 36:
        raise InvalidPayment(R_ID_UUID)
    if not _uuid_lower(id_text, lower):
        raise InvalidPayment(R_ID_UUID)

    if found.n_amount == 0:
        raise InvalidPayment(R_AMOUNT_MISSING)
    if found.n_amount > 1:
        raise InvalidPayment(R_AMOUNT_DUPLICATE)
    if found.amount_kind != _NUMBER:
        raise InvalidPayment(R_AMOUNT_TYPE)
    cents = _cents(&found.amount)
    if cents == -1:
        raise InvalidPayment(R_AMOUNT_SIGN)
    if cents == -2:
        raise InvalidPayment(R_AMOUNT_LARGE)
    if cents == 0:
        raise InvalidPayment(R_AMOUNT_ZERO)
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
def payment_body(correlation_id, cents, requested_at_ms):
    cdef unsigned char out[160]
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
    return PyBytes_FromStringAndSize(<char*>out, n + 2)


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
# A fingerprint is a 64-bit hash of the UUID's 128 bits. Two different ids share one with
# probability 2**-64, so after n ids a new id is wrongly taken for a duplicate with probability
# about n * 2**-64: 5e-14 at n = 1e6, and the chance that any of 1e6 ids ever collides is about
# n**2 / 2**65 = 3e-8. Only fingerprints are stored, 8 bytes a slot.
#
# The table is an *ordered* linear-probing table: a fingerprint's home slot grows with its value
# (home = fp * cap / 2**64, from the top 32 bits), and the slots hold the fingerprints in
# ascending order, each at or after its home, with no wrap-around (slack slots past `cap` take
# the last run; a run that reaches the end gets more slack, not a bigger table). A lookup stops
# at the first slot that is empty or holds a larger value, so even at 90 % load it reads a
# handful of slots; an insert shifts the rest of its run one slot right; a deletion shifts back
# what may move closer to home. That lets the table
# run at up to 90 % load and grow by 1.25x (any size, not a power of two): 8.9 to 11.1 bytes
# per id, where a classic table at <= 70 % load doubling in size needs 11.4 to 22.9. Growing is
# one ordered pass: every fingerprint goes to max(its new home, the previous one's slot + 1).


cdef inline uint64_t _mix(uint64_t h) noexcept nogil:
    # a 64-bit finalizer: a bijection in which every input bit flips about half the output bits
    h ^= h >> 33
    h *= 0xff51afd7ed558ccdULL
    h ^= h >> 33
    h *= 0xc4ceb9fe1a85ec53ULL
    h ^= h >> 33
    return h


cdef bint _fingerprint(object correlation_id, uint64_t* fp) except -1:
    """Fingerprint of a canonical UUID str (either case); False if it is not one."""
    cdef cstr s
    cdef uint64_t hi = 0, lo = 0
    cdef int i, nibbles = 0
    cdef signed char v
    if not isinstance(correlation_id, str):
        raise TypeError(f"correlation_id must be str, not {type(correlation_id).__name__}")
    if (PyUnicode_GET_LENGTH(correlation_id) != 36
            or PyUnicode_KIND(correlation_id) != PyUnicode_1BYTE_KIND):
        return False
    s = <cstr>PyUnicode_1BYTE_DATA(correlation_id)
    for i in range(36):
        if i == 8 or i == 13 or i == 18 or i == 23:
            if s[i] != c'-':
                return False
            continue
        v = _HEX[s[i]]
        if v < 0:
            return False
        if nibbles < 16:
            hi = (hi << 4) | <uint64_t>v
        else:
            lo = (lo << 4) | <uint64_t>v
        nibbles += 1
    fp[0] = _mix(hi ^ _mix(lo ^ 0x9e3779b97f4a7c15ULL))  # distinct lo => distinct inner hash
    if fp[0] == 0:  # 0 marks an empty slot
        fp[0] = 1
    return True


cdef uint64_t _fingerprint_of(object correlation_id) except 0:
    """Fingerprint of a canonical UUID str; ValueError (TypeError) if it is not one (a str)."""
    cdef uint64_t fp
    if not _fingerprint(correlation_id, &fp):
        raise ValueError(f"not a canonical UUID: {correlation_id!r}")
    return fp


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
        return self.add_fp(_fingerprint_of(correlation_id)) == 1

    def discard(self, correlation_id):
        self.discard_fp(_fingerprint_of(correlation_id))

    def __contains__(self, correlation_id):
        cdef uint64_t fp
        if not isinstance(correlation_id, str) or not _fingerprint(correlation_id, &fp):
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
