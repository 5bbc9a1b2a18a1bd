# cython: language_level=3
# Declarations of the compiled hot paths (implementation in _fast.pyx, typed API in _fast.pyi),
# so that other Cython modules can `cimport rinha._fast` and call the cdef methods directly.

cimport cython
from libc.stdint cimport int64_t, uint64_t


@cython.final
cdef class Ledger:
    # two parallel columns, sorted by requestedAt; 16 bytes per payment
    cdef int64_t* _ms  # requestedAt, epoch ms
    cdef int64_t* _sums  # _sums[i] = int cents of entries 0..i (prefix sum)
    cdef Py_ssize_t _len
    cdef Py_ssize_t _cap  # entries allocated in each column

    cdef int _resize(self, Py_ssize_t cap) except -1
    cdef int add_c(self, int64_t ms, int64_t cents) except -1
    cdef Py_ssize_t count_c(self, int64_t from_ms, int64_t to_ms, int64_t* cents) noexcept


@cython.final
cdef class IdSet:
    # ordered linear probing over 64-bit fingerprints (see _fast.pyx); 0 marks an empty slot
    cdef uint64_t* _slots  # _size slots, ascending among the non-empty ones
    cdef Py_ssize_t _len
    cdef Py_ssize_t _cap  # home slots
    cdef Py_ssize_t _size  # slots: _cap + at least _IDSET_SLACK, for the runs past the last home

    cdef int _grow(self, Py_ssize_t cap) except -1
    cdef int _extend(self) except -1
    cdef Py_ssize_t _find(self, uint64_t fp) noexcept
    cdef int add_fp(self, uint64_t fp) except -1
    cdef bint contains_fp(self, uint64_t fp) noexcept
    cdef bint discard_fp(self, uint64_t fp) noexcept
