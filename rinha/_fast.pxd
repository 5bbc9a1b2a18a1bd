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
    cdef _Queued* _take(self) except NULL


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

    cdef object feed_c(self, bytes data, Py_ssize_t room, Py_ssize_t* used, Py_ssize_t* taken)


cdef class DispatcherCore:
    # the hot half of rinha.dispatcher.Dispatcher (the Python subclass has the pump and every
    # decision): what is queued, an arrival, and when the pump runs next
    cdef public object fresh  # PaymentQueue: accepted, never attempted or known not stored
    cdef public tuple pinned  # (deque, deque) of Payment, per processor index
    cdef public object _pacing  # CatchUp
    cdef public object _loop  # the event loop, once the first wake has seen it
    cdef public object _pump_timer  # TimerHandle of the pump's next run, or None
    cdef public double _pump_at  # loop time the pump is due (valid while _pump_timer is set)
    cdef public double _tick_s  # the dispatch tick, s
    cdef public bint _closed  # no more pumps

    cdef Py_ssize_t backlog_c(self) except -1
    cdef int arrived_c(self, Py_ssize_t n) except -1
    cdef int wake_c(self, double delay_s) except -1


cdef class ProtocolCore:
    # the hot half of rinha.protocol.HttpProtocol (the Python subclass has httptools, the routes,
    # the timeouts and the writing): bytes in, at a request boundary through the intake
    cdef public object transport
    cdef public bint closing  # read nothing more
    cdef public double started  # loop time of the current request's first byte; 0.0: none
    cdef public double idle_since  # loop time the last request (or deferred answer) ended
    cdef public object pending  # deque: answers waiting for an earlier deferred one
    cdef public object watch  # rinha.protocol._Watch: its now_s is the coarse clock
    cdef public object intake  # PaymentIntake, or None (httptools alone)
    cdef public object dispatcher  # DispatcherCore (or any with backlog and arrived)
    cdef public Py_ssize_t max_backlog  # payments queued per instance at most


@cython.final
cdef class ResponseReader:
    cdef bytes _held  # the bytes of an answer not yet whole
    cdef public int status
    cdef public bint keep_alive
    cdef public object body  # bytes

    cdef int feed_c(self, bytes data) except -2


@cython.final
cdef class Payment:
    cdef unsigned char raw[16]  # the correlationId's UUID bytes
    cdef public object correlation_id  # its canonical str
    cdef public int64_t cents
    cdef public int pinned  # processor index of an attempt with an unknown outcome, or -1
    cdef public int64_t requested_at_ms  # epoch ms of the latest attempt (the pinned one)
    cdef public int64_t checked_ms  # epoch ms of the last settle lookup


cdef class ProcessorState:
    # what the routing knows of a processor: its calls out, what their outcomes and the shared
    # health reports say of it; rinha.processors.Processor (a Python subclass) adds its pool and
    # the logging. Compiled: the answer path updates it, and the pump reads it, without Python.
    cdef public int index
    cdef public bint ok  # usable at the last refresh (Processor.refresh)
    cdef public bint failing
    cdef public int64_t slow_ms  # a call slower than this makes it unusable
    cdef public int64_t retry_min_ms  # back-off after a failure: first, ms
    cdef public int64_t retry_max_ms  # back-off cap, and the probe spacing, ms
    cdef public int64_t in_flight
    cdef public int64_t processed
    cdef public double latency_ms  # duration of the latest answered call, ms
    cdef public int64_t last_outcome_ms  # epoch ms of the last real answer or timeout
    cdef public int64_t evidence_sent_ms  # send time of the call that set failing/latency
    cdef public int64_t bad_sent_ms  # send time of the newest call that showed it unusable
    cdef public int64_t backoff_ms
    cdef public int64_t next_probe_ms  # epoch ms before which a failing processor is not retried
    cdef public int64_t last_probe_ms  # epoch ms of the last probe sent while unusable
    cdef public dict call_starts  # payment attempt out -> epoch ms sent (insertion ordered)
    cdef public bint health_failing  # the last shared health report
    cdef public int64_t health_min_ms
    cdef public int64_t health_at_ms  # epoch ms it was taken
    cdef public int64_t ok_since_ms  # epoch ms at which `ok` last became true
    cdef bint _unusable  # not ok since _unusable_since (unusable_since_ms, None while usable)
    cdef int64_t _unusable_since  # epoch ms

    cdef int start_call_c(self, object payment, int64_t now) except -1
    cdef int end_call_c(self, object payment, int64_t now, int outcome) except -1
    cdef void observe_c(self, int64_t now, int64_t sent_ms, bint ok) noexcept
    cdef bint health_speaks_c(self, int64_t now) noexcept
    cdef int64_t oldest_call_age_c(self, int64_t now) except? -1
    cdef bint usable_c(self, int64_t now) except -1


@cython.final
cdef class AttemptFiler:
    cdef Ledger _default_ledger
    cdef Ledger _fallback_ledger
    cdef Journal _journal
    cdef PaymentQueue _fresh
    cdef object _pinned  # (deque, deque): pinned payments per processor
    cdef object _others  # Dispatcher._attempt_done: every outcome but "stored"
    cdef object _wake  # Dispatcher._wake
    cdef bytes _default_head  # each processor's POST /payments head, up to Content-Length: 
    cdef bytes _fallback_head

    cdef int file_c(self, Payment payment, ProcessorState p, int status, object body,
                    object error) except -1


@cython.final
cdef class AttemptCall:
    cdef public bytes request  # the attempt's request bytes (AttemptFiler.attempt)
    cdef AttemptFiler _filer
    cdef Payment _payment
    cdef ProcessorState _processor


@cython.final
cdef class Connection:
    cdef public object pool  # its HttpPool; None once lost
    cdef public object loop
    cdef public object transport
    cdef public ResponseReader reader  # None: every answer through httptools
    cdef public object parser  # httptools.HttpResponseParser, made when first needed
    cdef public object done  # the request out: done(status, body, error)
    cdef public double deadline  # loop time by which its answer must be in
    cdef public bint closed
    cdef public double idle_since  # loop time it went idle (pools that close idle ones)
    cdef list _body  # the answer's body parts (httptools)

    cdef int _answered(self, int status, object body, bint keep_alive) except -1
    cdef bint writable_c(self) except -1
    cdef int send_c(self, object data, double timeout_s, object done) except -1


cdef class PoolCore:
    # the hot half of rinha.http_client.HttpPool (a Python subclass adds connecting, the cap,
    # the waiting line and the sweep): an idle connection taken, watched, and given back
    cdef public list _idle  # open, no request out
    cdef public set _out  # a request out, waiting for its answer
    cdef public object _waiting  # deque of (data, deadline, done): capped pools only
    cdef public double idle_close_s  # > 0: close a connection idle that long
    cdef public object _sweep_timer  # the one timer for deadlines and idle closes

    cdef int watch_c(self, object conn) except -1
    cdef int release_c(self, object conn) except -1


@cython.final
cdef class CatchUp:
    # the dispatcher's pace (rinha.pacing): how many calls one pump may start
    cdef public bint enabled  # False: every pump may start `cap` calls
    cdef public Py_ssize_t cap  # calls per pump, whatever the pace
    cdef public double rate  # backlog calls/s
    cdef public double window_s  # a drain's time limit, s
    cdef public double tick_s
    cdef public Py_ssize_t arrived  # payments queued since the last pump
    cdef public double credit  # calls allowed beyond new arrivals, earned at `rate`
    cdef public double at  # loop time `credit` was last topped up
    cdef public double ends  # loop time a drain under way must end by (0: none)
