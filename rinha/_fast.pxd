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
    cdef void pairs_c(self, Py_ssize_t start, Py_ssize_t n, unsigned char* out) noexcept
    cdef int load_c(self, const unsigned char* pairs, Py_ssize_t n) except -1


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


@cython.final
cdef class SharedIdSet:
    # a file mapped MAP_SHARED (see _fast.pyx): a 64-byte header, then _mask + 1 slots of 64 bits
    cdef unsigned char* _map  # NULL once closed
    cdef Py_ssize_t _nbytes  # file size
    cdef uint64_t* _slots
    cdef uint64_t* _used  # the header's count of used slots, changed atomically
    cdef uint64_t _mask  # slots - 1
    cdef uint64_t _limit  # ids held at most: slots * 3 // 4
    cdef uint64_t _k0  # the file's SipHash key, little-endian halves
    cdef uint64_t _k1
    cdef uint64_t _owner  # 0..254
    cdef object _path

    cdef int _ready(self) except -1
    cdef uint64_t _fp(self, const unsigned char* raw) noexcept nogil
    cdef int claim_raw(self, const unsigned char* raw, int64_t cents) noexcept nogil
    cdef int64_t owner_raw(self, const unsigned char* raw) noexcept nogil


@cython.final
cdef class Journal:
    # an append-only file of 40-byte records (see _fast.pyx), written through a MAP_SHARED
    # mapping of the whole file; the file is extended a chunk at a time ahead of the records
    cdef int _fd  # O_RDWR, holding a shared OFD lock; -1 once closed
    cdef bint _sync  # msync + fdatasync after each accept
    cdef unsigned char* _map  # the file mapped from offset 0; NULL until the next append maps it
    cdef Py_ssize_t _map_len  # bytes mapped (the file is at least this long: allocated, zeros)
    cdef Py_ssize_t _size  # the logical end: header and records; the next record goes here
    cdef Py_ssize_t _synced  # bytes before this offset were synced by the last sync
    cdef unsigned char* _buf  # records held while the file could not be extended (normally none)
    cdef Py_ssize_t _buf_len
    cdef Py_ssize_t _buf_cap
    cdef Py_ssize_t _dropped  # bytes the last replay cut off
    cdef object _path

    cdef int _ready(self) except -1
    cdef int _unmap(self) noexcept
    cdef int _room(self, Py_ssize_t n) except -1
    cdef int _datasync(self) except -1
    cdef int _sync_c(self) except -1
    cdef int accept_c(self, const unsigned char* raw, int64_t cents) except -1
    cdef int append_c(self, int kind, const unsigned char* raw, int64_t cents, int processor,
                      int64_t ms) except -1
    cdef int flush_c(self) except -1
    cdef int _record(self, int kind, object correlation_id, object cents, object processor,
                     object ms) except -1


cdef struct _Queued:
    unsigned char raw[16]  # the correlationId's UUID bytes
    int64_t cents


@cython.final
cdef class PaymentQueue:
    # a ring of _cap records; the first at _head, _len of them
    cdef _Queued* _items
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _head
    cdef Py_ssize_t _len

    cdef int _grow(self) except -1
    cdef int push_c(self, const unsigned char* raw, int64_t cents) except -1
    cdef int push_front_c(self, const unsigned char* raw, int64_t cents) except -1


@cython.final
cdef class PaymentIntake:
    cdef SharedIdSet _ids
    cdef Journal _journal
    cdef PaymentQueue _queue
    cdef Py_ssize_t _max_body  # bytes
    # prebuilt answers (rinha.answers)
    cdef object _accepted_answer
    cdef object _duplicate_answer
    cdef object _mismatch_answer
    cdef object _ids_full_answer
    cdef object _backlog_full_answer
    # answers given, by kind (also counted by the general path: rinha.routes)
    cdef public Py_ssize_t accepted
    cdef public Py_ssize_t rejected
    cdef public Py_ssize_t duplicates
    cdef public Py_ssize_t refused_full  # 503: backlog or id table full, journal write failed


@cython.final
cdef class ResponseReader:
    cdef bytes _held  # the bytes of an answer not yet whole
    cdef public int status
    cdef public bint keep_alive
    cdef public object body  # bytes
