"""Typed API of the compiled hot paths (`rinha/_fast.pyx`); `rinha/_reference.py` is the same API
in pure Python. Money is int cents; time is int epoch milliseconds (UTC)."""

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Sequence, Sized
from typing import Any, Final

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
    "AttemptCall",
    "AttemptFiler",
    "CatchUp",
    "DispatcherCore",
    "ProcessorState",
    "Connection",
    "IdSet",
    "Journal",
    "Ledger",
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

MAX_CENTS: Final[int]
"""Largest accepted amount, in cents: 10**13 (100,000,000,000.00)."""

MIN_MS: Final[int]
"""Epoch ms of 0001-01-01T00:00:00.000Z, the first instant `ms_to_iso` can write."""

MAX_MS: Final[int]
"""Epoch ms of 9999-12-31T23:59:59.999Z, the last instant `ms_to_iso` can write."""

CLAIM_NEW: Final[int]
"""0: `SharedIdSet.claim` inserted the id now, under this set's owner."""

CLAIM_MINE: Final[int]
"""1: the id was already there, claimed by this owner with the same amount."""

CLAIM_OTHER: Final[int]
"""2: the id was already there, claimed by another owner with the same amount."""

CLAIM_CONFLICT: Final[int]
"""3: the id was already there with a different amount (whoever claimed it)."""

CLAIM_FULL: Final[int]
"""4: the id is not there and the table already holds `SharedIdSet.capacity` ids."""

J_ACCEPT: Final[int]
"""1: journal record: the payment (id, cents) was accepted (written before the 202)."""

J_ATTEMPT: Final[int]
"""2: journal record: the payment is being sent to processor p with requestedAt ms."""

J_STORED: Final[int]
"""3: journal record: processor p stored it under requestedAt ms (a ledger entry)."""

J_RELEASED: Final[int]
"""4: journal record: the attempt to processor p is known not to be stored (a 500, or never
sent): the payment is free to go anywhere again."""

J_FINISHED: Final[int]
"""5: journal record: nothing will ever be charged for this payment (a client's duplicate, a
refusal); it leaves the books."""

J_SNAPSHOT: Final[int]
"""6: journal block: one processor's whole ledger, written by `Journal.compact`. Never
returned by `Journal.replay` (it loads it into the ledgers) nor accepted in `pending`."""

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

def payment_request(head: bytes, correlation_id: str, cents: int, requested_at_ms: int) -> bytes:
    """A whole processor request: `head` (everything up to and including `Content-Length: `),
    the body's length, a blank line and `payment_body(correlation_id, cents, requested_at_ms)`.
    Compiled: one bytes object, written in place. The same arguments give the same bytes: a
    pinned retry sends exactly the request of the attempt it repeats."""

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
    """A set of correlationIds for duplicate detection, about 10 bytes per id.

    Ids must be canonical 8-4-4-4-12 hex UUID strings; either case is the same id. Only a 64-bit
    fingerprint of each id is stored: SipHash-2-4 of its 16 bytes under a random key drawn when
    the module is imported (a forked child shares its parent's), so ids chosen by a client can
    neither be made to collide with another's nor to crowd one part of the table. A new id is
    taken for one already present with probability about len(self) / 2**64 (5e-14 with a
    million ids).

    The table is an ordered linear-probing table run at a load factor of at most 0.9 and grown
    by 1.25x: 8.9 to 11.1 bytes per id (10.0 on average over sizes from 1,000 to 1,000,000;
    the first ids also pay for a 64-slot slack). `rinha._reference.IdSet` keeps the ids
    themselves and has no fingerprints.
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

class SharedIdSet:
    """The correlationIds accepted by every instance of a stack since the last purge: one file,
    mapped MAP_SHARED by each instance, so that an id accepted by two instances is charged at
    most once, and claims outlive a SIGKILL of any process (the page cache holds the file).

    File format (little-endian): a 64-byte header, then `slots` 64-bit words.

    - header: magic `b"RINHAIDS"` (8 bytes), format version (uint32, 1), header size (uint32,
      64), slots (uint64, a power of two), the file's SipHash key (16 random bytes, chosen by
      whoever creates the file), used slots (uint64, changed with atomic adds), 16 zero bytes;
    - slot: 0 if empty, else `fingerprint << 16 | owner << 8 | amount tag`, where the
      fingerprint is the top 48 bits of SipHash-2-4 (file key) of the id's 16 bytes (1 if they
      are 0), owner the claiming set's `owner`, and the tag the top byte of
      `cents * 0x9E3779B97F4A7C15 mod 2**64`. Open addressing from slot `fingerprint % slots`,
      linear probing with wrap-around; slots are never emptied except by `clear`.

    The compiled module inserts with one 64-bit compare-and-swap and counts with an atomic add,
    so any number of processes may claim at once without a lock. `rinha._reference` reads and
    writes the same format but takes an flock on the file around each claim: it is safe against
    itself, not against the compiled module writing at the same moment.

    Two ids share a fingerprint with probability 2**-48: after n ids a new id is wrongly found
    "already there" with probability about n * 2**-48 (4e-9 at a million ids).
    """

    def __init__(self, path: str, capacity: int, owner: int) -> None:
        """Open the table at `path`, or create it there if missing.

        Creating writes a complete file under a temporary name in the same directory (created,
        mode 0700, if missing), blocks allocated up front, and links it to `path`; if another
        process linked first, its file is opened instead, so every process ends up on one file
        and one key. The file is mode 0600: every instance must run as the same user.
        `capacity` (>= 1, ids held at most) matters only at creation: slots = the smallest
        power of two >= capacity * 4 / 3; an existing file keeps its own size. `owner` (0..254)
        marks this instance's claims.

        Raises `rinha.errors.FileFormatError` (a ValueError) if the file has a bad magic,
        another format version or a size that contradicts its header; ValueError for a
        capacity or owner out of range; OSError from the file system.
        """
    def claim(self, correlation_id: str, cents: int) -> int:
        """Claim the id for `cents` (>= 0): `CLAIM_NEW` if it was not there and is now (owned by
        this set's owner), else `CLAIM_MINE`, `CLAIM_OTHER` or `CLAIM_CONFLICT` as for whoever
        has it, or `CLAIM_FULL` if it is not there and the table already holds `capacity` ids
        (a few processes racing at the limit may each add one more).

        TypeError if the id is not a str, ValueError if it is not a canonical UUID (either case)
        or cents < 0, ValueError if closed.
        """
    def owner_of(self, correlation_id: str) -> int | None:
        """The owner that claimed the id, or None (TypeError / ValueError as for `claim`)."""
    def __contains__(self, correlation_id: object) -> bool:
        """True if the id was claimed; False for anything that is not a canonical UUID str."""
    def __len__(self) -> int:
        """Ids claimed since the last clear, by every process (the header's counter)."""
    def clear(self) -> None:
        """Forget every id, for every process at once (purge). Not atomic against claims being
        made at the same moment: purge when no traffic flows."""
    def close(self) -> None:
        """Unmap the file (claims stay in it); any later use raises ValueError. Idempotent."""
    def __enter__(self) -> SharedIdSet: ...
    def __exit__(self, *exc_info: object) -> None:
        """`close()`."""
    @property
    def capacity(self) -> int:
        """Ids the table holds at most: slots * 3 // 4 (>= the capacity it was created with)."""
    @property
    def nbytes(self) -> int:
        """Size of the file: 64 + 8 * slots bytes (16 MiB for capacity 1,000,000)."""
    @property
    def path(self) -> str:
        """The path it was opened with."""
    @property
    def owner(self) -> int:
        """The owner (0..254) this set claims for."""

class Journal:
    """One instance's append-only log of its payments, so that a restarted instance can rebuild
    its ledgers, its queue and its pinned payments.

    File format (little-endian): a 16-byte header, magic `b"RINHAJNL"`, format version (uint32,
    1) and record size (uint32, 40); then 40-byte records:

        0 magic 0xA5 | 1 kind | 2 processor | 3 zero | 4 int64 cents | 12 int64 epoch ms |
        20 the id's 16 bytes | 36 CRC-32 (zlib's) of bytes 0..35

    `processor` and `ms` are 0 in the kinds that have none. A `J_SNAPSHOT` block is such a
    record (processor, entry count in the cents field, ms 0, id all zero) followed by the
    ledger's entries as (epoch ms int64, cents int64) pairs in time order and the CRC-32 of
    those pairs (4 bytes).

    The file (mode 0600, its directory created with mode 0700 if missing) is opened O_RDWR and
    mapped MAP_SHARED whole; a record is written by copying its 40 bytes into the mapping at
    the logical end (`size`): no system call, and the page-cache page it lands in outlives a
    SIGKILL of the process. The file is allocated (posix_fallocate) and mapped again 1 MiB
    (`_JOURNAL_CHUNK`) at a time ahead of the records, so while it is open, or after its
    process died, it is longer than `size` and ends in zeros; the clean end of the records is
    the first all-zero record slot. `close()` and `replay()` cut the zeros off. Extending is the
    only step that can fail (a full disk: OSError, never a SIGBUS when copying, as the blocks
    are allocated first); `accept` then raises and writes nothing, while the other kinds are
    held in memory (`pending_bytes`) and copied by the next `flush()` or `accept` that finds
    room. `sync=True` or `sync()` also makes the records outlive a power cut.

    Every open Journal holds a shared lock (an OFD lock, per open file) on its file; `replay()`
    and `close()` cut the file only while no other Journal has it open, since that one's
    mapping would then reach past the end of the file. A second Journal may thus open a live
    journal's file to read it; only one may append (and `clear()` it).

    After a crash, `replay()` before appending: if the file ends in a torn or corrupt record,
    a Journal just opened appends after the damage, and the next replay cuts those records off
    with it. Replayed records are Python objects (about 230 bytes each): `compact()` keeps the
    file short. Not thread-safe. A Journal collected without `close()` leaves its file with the
    zeros at its end (harmless: they are skipped as unused space) and loses any held records.
    """

    def __init__(self, path: str, sync: bool = False) -> None:
        """Open (or create) the journal at `path`; `sync`: each `accept` is msync'd and
        fdatasync'd before it returns.

        Finds the logical end by reading the records up to the first all-zero slot (the
        unused part of the file), which reads the whole file. Raises
        `rinha.errors.FileFormatError` (a ValueError) if the file is not a journal (bad
        magic) or of another format version; OSError from the file system.
        """
    def accept(self, correlation_id: str, cents: int) -> None:
        """Record that the payment was accepted: a `J_ACCEPT` record, copied into the mapping
        after any records held in memory (file order is call order); in the page cache when
        this returns. With sync=True, msync(MS_SYNC) of the pages written since the last sync
        and fdatasync before it returns (if they fail, the record is taken back). Call it before
        answering 202; on OSError (the file could not be extended, or synced) answer 503:
        nothing of it is in the file, and the held records are as they were.

        TypeError / ValueError for an id that is not a canonical UUID str, ValueError if
        cents < 0 or the journal is closed.
        """
    def attempt(self, correlation_id: str, cents: int, processor: int, ms: int) -> None:
        """Copy a `J_ATTEMPT` record into the mapping: sent to `processor` (0 default, 1
        fallback) with requestedAt `ms`. Never OSError: if the file cannot be extended the
        record is held in memory (`pending_bytes`) until `flush()` or the next `accept`.
        ValueError for a processor other than 0 or 1; otherwise as `accept`."""
    def stored(self, correlation_id: str, cents: int, processor: int, ms: int) -> None:
        """A `J_STORED` record, as `attempt`: `processor` stored the payment under requestedAt
        `ms`."""
    def released(self, correlation_id: str, cents: int, processor: int) -> None:
        """A `J_RELEASED` record, as `attempt`: the attempt to `processor` is known not to be
        stored."""
    def finished(self, correlation_id: str, cents: int) -> None:
        """A `J_FINISHED` record, as `attempt`: nothing will ever be charged for the payment."""
    def flush(self) -> None:
        """Copy the records held in memory (only after the file could not be extended) into
        the file: all of them, or OSError and they stay held. Usually nothing to do: every
        record is in the page cache when its call returns. ValueError if closed."""
    def sync(self) -> None:
        """`flush()`, then msync(MS_SYNC) of the pages written since the last sync and
        fdatasync(2): everything recorded so far outlives a power cut."""
    def replay(self, ledgers: Sequence[Ledger]) -> list[tuple[int, str, int, int, int]]:
        """Read the file from the start (after a `flush()`): snapshot blocks are added to
        `ledgers` (index 0 default, 1 fallback; each a Ledger of this module, TypeError
        otherwise), every other record is returned as (kind, correlationId lower-cased, cents,
        processor, ms), in file order.

        The first record that is all zeros ends the records (the unused part of the file). The
        first that is short, has a bad magic or CRC, or makes no sense also ends the replay.
        Appends go on from there, and the file is cut (ftruncate) right there, unless another
        open Journal maps it; `dropped_bytes` tells how many bytes of data were past that point.
        A crash while a record was being written leaves it torn at the tail; corruption in the
        middle of the file (a bad disk) also stops the replay there, and every record after it
        is lost with it.
        """
    def compact(
        self, ledgers: Sequence[Ledger], pending: Iterable[tuple[int, str, int, int, int]]
    ) -> None:
        """Replace the file with: the header, a `J_SNAPSHOT` of `ledgers[0]` and of
        `ledgers[1]`, then `pending` (tuples as `replay` returns, kinds 1..5) in order, and go on
        appending to it (the next record maps it).

        Held records are first flushed to the old file and not carried over: `ledgers` and
        `pending` must describe the whole state. The new file is written under a temporary
        name in the same directory and fsync'd, renamed over `path` (atomic: a crash leaves the
        old file or the new one), and the directory is fsync'd. Every pending tuple is checked
        before anything is written (TypeError / ValueError).
        """
    def clear(self) -> None:
        """Purge: the file becomes just its header (ftruncate) and held records are dropped."""
    def close(self) -> None:
        """Flush, unmap, cut off the zeros that end the file (the unused part of its last
        chunk, never a record: another Journal may have appended since this one looked) unless
        another open Journal has the file, then close it; any later use raises ValueError.
        Idempotent."""
    def __enter__(self) -> Journal: ...
    def __exit__(self, *exc_info: object) -> None:
        """`close()`."""
    @property
    def path(self) -> str:
        """The path it was opened with."""
    @property
    def size(self) -> int:
        """The logical size: header, records and snapshots, where the next record goes; not
        the file's allocated length (larger while open). Once closed (the only Journal on its
        file), the file is this long."""
    @property
    def pending_bytes(self) -> int:
        """Bytes of records held in memory because the file could not be extended (40 per
        record); 0 otherwise."""
    @property
    def dropped_bytes(self) -> int:
        """Bytes of data the last `replay()` found past the point where it stopped, the zeros
        that end the file not counted (0 if none, or never replayed)."""

class PaymentQueue:
    """Payments accepted and not yet attempted, first in first out. Compiled: a ring of 24-byte
    C records (the id's 16 bytes, int cents) doubling when full, so that no Python object
    exists per queued payment until `pop()` makes one for the payment about to be sent. The
    ids come out in canonical lower case."""

    def __init__(self) -> None: ...
    def push(self, correlation_id: str, cents: int) -> None:
        """Queue at the end. ValueError if the id is not a canonical UUID."""
    def push_front(self, correlation_id: str, cents: int) -> None:
        """Queue at the front (a payment put back after an attempt known not stored)."""
    def pop(self) -> tuple[str, int]:
        """(correlationId, cents) of the first; IndexError when empty."""
    def pop_payment(self) -> Payment:
        """The first, as a `Payment` about to be sent; IndexError when empty."""
    def items(self) -> list[tuple[str, int]]:
        """Every queued payment, first to last (for the journal's compaction)."""
    def clear(self) -> None: ...
    def __len__(self) -> int: ...

class PaymentIntake:
    """`POST /payments` framed and answered without the general HTTP parser.

    `feed(data, room)` takes the requests at the start of `data` (bytes a connection received at
    a request boundary) for as long as each is a whole, plain `POST /payments HTTP/1.1`: a head
    within 8 KiB whose headers are well-formed, with exactly one Content-Length (at most
    `max_body`), no Transfer-Encoding, Expect or Upgrade, Connection only `keep-alive`, the
    whole body present and a valid payment (`parse_payment`). For each it does what
    `rinha.routes.post_payment` does, in the same order: `room` (payments the backlog may
    still take) used up -> the backlog-full answer; `journal.accept` (OSError: stop before this
    request); `ids.claim` -> new: queued on `queue`, the accepted answer; conflict, full,
    duplicate -> their answers. `answers` are (accepted, duplicate, amount mismatch, ids full,
    backlog full) response bytes.

    Returns (bytes used, the answers to those requests concatenated, payments accepted); the
    caller hands `data[used:]` (anything else, an incomplete request, an invalid body) to the
    general parser, which answers it as before; with its id table or journal closed (shutdown)
    it takes nothing. The counters count the answers it gave.
    Compiled: the framing, the body, the journal record, the claim and the queue record are C,
    with no Python object made but the returned tuple.
    """

    accepted: int
    rejected: int
    duplicates: int
    refused_full: int  # backlog or id table full

    def __init__(
        self,
        ids: SharedIdSet,
        journal: Journal,
        queue: PaymentQueue,
        max_body: int,
        answers: tuple[bytes, bytes, bytes, bytes, bytes],
    ) -> None: ...
    def feed(self, data: bytes, room: int) -> tuple[int, bytes, int]: ...

class DispatcherCore:
    """The hot half of the dispatcher: `rinha.dispatcher.Dispatcher` is its Python subclass, which
    has the pump (`_pump`, the hook `_wake` schedules) and every decision. This half is what an
    arrival touches: the backlog's size, `arrived(n)` and the pump's timer.
    Compiled: a `ProtocolCore` reads the backlog and reports arrivals without a Python frame."""

    fresh: PaymentQueue  # accepted, never attempted or known not stored
    pinned: tuple[deque[Payment], deque[Payment]]  # per processor index
    _pacing: CatchUp
    _loop: asyncio.AbstractEventLoop | None  # once the first wake has seen it
    _pump_timer: asyncio.TimerHandle | None  # the pump's next run
    _pump_at: float  # loop time the pump is due (valid while _pump_timer is set)
    _tick_s: float  # the dispatch tick, s
    _closed: bool  # no more pumps

    def __init__(self) -> None: ...
    @property
    def backlog(self) -> int:
        """Payments queued: fresh and pinned."""
    def arrived(self, n: int) -> None:
        """`n` payments were queued on `fresh`: counted for the pace, and the pump runs within a
        tick."""
    def _wake(self, delay_s: float | None = None) -> None:
        """Run `_pump` within `delay_s` (default: one tick): an earlier timer stands, a later one
        is moved up. Nothing once `_closed`."""

class ProtocolCore:
    """The hot half of the clients' HTTP protocol: `rinha.protocol.HttpProtocol` is its Python
    subclass, which has `_parse(data)` (httptools, the routes, every error answer) and the rest
    of the connection's life.

    `data_received(data)`: when the connection has an `intake` and is at a request boundary with
    no answer owed, the intake takes the plain `POST /payments` at the start of `data` with room
    for `max_backlog` minus the dispatcher's backlog, their answers are written and the
    dispatcher told of the payments queued; what is left goes to `_parse`.
    Compiled: with a compiled intake and dispatcher, a plain POST runs no Python frame from the
    bytes in to the 202 out and the pump's timer set."""

    transport: asyncio.Transport | None
    closing: bool  # read nothing more
    started: float  # loop time of the current request's first byte; 0.0: none
    idle_since: float  # loop time the last request (or deferred answer) ended
    pending: deque[Any]  # answers waiting for an earlier deferred one
    watch: Any  # rinha.protocol._Watch: its now_s is the coarse clock
    intake: PaymentIntake | None  # None: httptools alone
    dispatcher: DispatcherCore
    max_backlog: int  # payments queued per instance at most

    def __init__(self) -> None: ...
    def data_received(self, data: bytes) -> None: ...

class ResponseReader:
    """A processor's (or a peer's) answer framed without the general HTTP parser, one at a time
    on one keep-alive connection.

    `feed(data)` -> 1: the bytes fed since the last answer are exactly one whole answer, now in
    `status`, `keep_alive` (False for `Connection: close`) and `body`; 0: not whole yet (the
    bytes are held); -1: not an answer framed here, and nothing is taken from it: `take()`
    returns every byte held, for the general parser to read from the start. Framed here: an
    `HTTP/1.1` status line with a 2xx-5xx status (not 204 or 304), well-formed headers within
    8 KiB, exactly one Content-Length, no Transfer-Encoding, Connection only `close` or
    `keep-alive`, and nothing after the body (a second answer in the same bytes is -1).
    Compiled: the framing is C; the only objects made are the held bytes and the body.
    """

    status: int
    keep_alive: bool
    body: bytes

    def __init__(self) -> None: ...
    def feed(self, data: bytes) -> int: ...
    def take(self) -> bytes:
        """The bytes held (all of them since the last answer), and forget them."""

STORED: Final[int]
"""How a call ended, as evidence about its processor: the payment is in its books (counted as
processed)."""

ANSWERED: Final[int]
"""An answer that stored nothing new: a 422 duplicate, a settle lookup's 404."""

FAILED: Final[int]
"""An error status, a timeout or a lost connection."""

NO_EVIDENCE: Final[int]
"""Says nothing of the processor's health: a 429 (its queue is full), a 4xx refusal."""

UNPINNED: Final[int]
"""`Payment.pinned` of a payment with no attempt of unknown outcome: -1."""

class Payment:
    """One accepted payment on its way to a processor, made when it is sent (or restored from the
    journal). Compiled: a C struct with the id's 16 bytes, so that the answer path journals it
    without parsing the id again. Hashed by identity (a key of `ProcessorState.call_starts`)."""

    correlation_id: str  # canonical lower case
    cents: int  # int cents
    pinned: int  # processor index of an earlier attempt with an unknown outcome, or UNPINNED
    requested_at_ms: int  # epoch ms of the latest attempt (the pinned one, once pinned)
    checked_ms: int  # epoch ms of the last settle lookup

    def __init__(self, correlation_id: str, cents: int) -> None:
        """ValueError if the id is not a canonical UUID, TypeError/OverflowError for cents."""
    def pin(self, processor: int) -> None:
        """Its latest attempt (at `processor`, `requested_at_ms`) has an unknown outcome: it is
        retried there alone, with the identical request."""

class ProcessorState:
    """What the routing knows of a processor: its calls out, what their outcomes and the shared
    health reports say of it, and whether it is usable. The base class of
    `rinha.processors.Processor`, which adds its pool, its requests and the logging. Compiled, so
    that the pump reads it and `AttemptFiler` counts an answer without a Python frame."""

    index: int  # 0 default, 1 fallback
    ok: bool  # usable at the last `Processor.refresh`
    failing: bool  # the newest evidence was a failure
    slow_ms: int  # a call slower than this makes it unusable
    retry_min_ms: int  # back-off after a failure: first, ms
    retry_max_ms: int  # back-off cap, and the probe spacing, ms
    in_flight: int  # calls out: payment attempts and settle lookups
    processed: int  # payments it stored (answers and settled lookups)
    latency_ms: float  # duration of the newest evidence's call, ms
    last_outcome_ms: int  # epoch ms of the newest evidence
    evidence_sent_ms: int  # send time (epoch ms) of the call that is the newest evidence
    bad_sent_ms: int  # send time of the newest call that showed it failing or slow
    backoff_ms: int  # the current back-off after failures
    next_probe_ms: int  # epoch ms before which a failing processor is not called again
    last_probe_ms: int  # epoch ms of the last call sent while it was not `ok`
    call_starts: dict[Payment, int]  # payment attempt out -> epoch ms sent, in sending order
    health_failing: bool  # the last shared health report (rinha.health)
    health_min_ms: int
    health_at_ms: int  # epoch ms it was taken
    ok_since_ms: int  # epoch ms at which `ok` last became true
    unusable_since_ms: int | None  # epoch ms `ok` became false; None while ok

    def __init__(self) -> None: ...
    def start_call(self, payment: Payment, now: int) -> None:
        """A payment attempt leaves now (a probe, while not `ok`)."""
    def end_call(self, payment: Payment, now: int, outcome: int) -> None:
        """The attempt's outcome came back: STORED, ANSWERED, FAILED or NO_EVIDENCE. KeyError if
        it was not started."""
    def start_lookup(self) -> None:
        """A settle lookup (GET /payments/{id}) leaves: a call out, not a latency sample (the
        lookup endpoint answers even while payments fail)."""
    def end_lookup(self, now: int, outcome: int) -> None:
        """STORED: found, counted as processed; FAILED: evidence of failure; else nothing."""
    def observe(self, now: int, sent_ms: int, ok: bool) -> None:
        """A real outcome of a call sent at `sent_ms`: an answer (ok) or a failure. Newest
        evidence wins: the outcome of a call sent before the one that set the current state
        says nothing new (a stale 500 must not undo a recovery). The latest latency, not an
        average: a processor that got fast again is seen as fast after one answer."""
    def health_speaks(self, now: int) -> bool:
        """No real outcome for 2 s, and a health report newer than the last one: the report
        speaks for the processor."""
    def oldest_call_age_ms(self, now: int) -> int:
        """Age of the oldest call still out that was sent after the newest evidence (calls sent
        before it, e.g. probes still waiting on a failing processor, are old news); 0 if none."""
    def usable(self, now: int) -> bool:
        """Not failing, and no known latency above slow_ms: the latest answer's, the oldest call
        out's, and the health report's when it speaks."""
    def refresh(self, now: int) -> bool:
        """`ok = usable(now)`, once per dispatcher tick; `ok_since_ms` and `unusable_since_ms`
        follow it, a call out longer than slow_ms is evidence of slowness (`bad_sent_ms`), and
        each change goes to `_log_change(now, ok)` (a subclass logs it). Returns `ok`."""
    def _log_change(self, now: int, ok: bool) -> None: ...
    def unusable_for_ms(self, now: int) -> int:
        """ms since `ok` became false at a refresh; 0 while ok."""
    def apply_health(self, now: int, failing: bool, min_response_ms: int) -> None:
        """The shared health report, taken at `now`."""

class AttemptFiler:
    """Files the answers to payment attempts. The `AttemptCall` that `attempt` returns is the
    `done(status, body, error)` callback of that attempt: an answer that means "stored" (a 2xx;
    a 422 to a payment pinned to that processor, whose earlier attempt stored it) goes to that
    processor's
    ledger under `payment.requested_at_ms`, to the journal (STORED) and to `processor.end_call`,
    and `wake()` is called if a payment is queued (`fresh` or `pinned`); any other outcome goes
    to `others(payment, processor, status, body, error)`. Compiled, the stored case runs without
    a Python frame."""

    def __init__(
        self,
        ledgers: Sequence[Ledger],
        journal: Journal,
        fresh: PaymentQueue,
        pinned: Sequence[Sized],
        others: Callable[[Payment, ProcessorState, int, bytes, ConnectionError | None], None],
        wake: Callable[[], None],
        heads: Sequence[bytes],
    ) -> None: ...
    def attempt(self, payment: Payment, p: ProcessorState, now: int) -> AttemptCall:
        """One attempt of `payment` at `p` leaves at `now` (epoch ms): journaled (ATTEMPT, under
        requestedAt = now) unless the payment is pinned to `p`, whose identical request was
        journaled before; counted out (`p.start_call`); its `request` made with `p`'s head
        (`heads[p.index]`: `POST /payments ... Content-Length: `) by `payment_request`."""

class AttemptCall:
    """One payment attempt: its `request` bytes, and its `done(status, body, error)` callback,
    which files the outcome through its AttemptFiler."""

    request: bytes

    def __call__(self, status: int, body: bytes, error: ConnectionError | None) -> None: ...

class Connection(asyncio.Protocol):
    """One keep-alive connection of an `HttpPool` (rinha.http_client) carrying one request at a
    time: an asyncio protocol. `send(data, timeout_s, done)` writes a request (the pool watches
    its deadline); its answer goes to `done(status, body, None)` and the connection back to the
    pool (`release`), or closed if the answer says `Connection: close`; a lost connection, a
    bad answer or an answer nobody asked for fails the request out with `OutcomeUnknown`
    (`done(0, b"", exc)`) and the connection is done for (`pool.forget`). Answers are framed by
    `ResponseReader` (`frame_answers`) until the first it does not frame; that one and every
    later one on the connection go to httptools. Compiled, an `AttemptFiler` callback is filed
    without a Python frame."""

    pool: Any  # its HttpPool; None once the connection is lost
    loop: Any
    transport: Any
    reader: ResponseReader | None
    parser: Any
    done: Callable[[int, bytes, ConnectionError | None], None] | None
    deadline: float  # loop time by which the answer must be in
    closed: bool
    idle_since: float  # loop time it went idle (kept only by pools that close idle ones)

    def __init__(self, pool: Any, frame_answers: bool = True) -> None: ...
    def connection_made(self, transport: Any) -> None: ...
    def data_received(self, data: bytes) -> None: ...
    def eof_received(self) -> None: ...
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...
    def connection_lost(self, exc: BaseException | None) -> None: ...
    def on_body(self, body: bytes) -> None:
        """httptools callback."""
    def on_message_complete(self) -> None:
        """httptools callback."""
    @property
    def writable(self) -> bool:
        """Open, and not closing under us (a FIN read whose connection_lost is still due)."""
    def send(
        self,
        data: bytes,
        timeout_s: float,
        done: Callable[[int, bytes, ConnectionError | None], None],
    ) -> None: ...
    def fail(self, exc: BaseException) -> None:
        """The request out (if any) fails with exc; this connection is done for."""
    def close(self) -> None: ...

def now_ms() -> int:
    """Wall-clock epoch ms (CLOCK_REALTIME, as `time.time_ns() // 1_000_000`): the clock the
    processors file `requestedAt` with."""

class PoolCore:
    """The hot half of a connection pool: `rinha.http_client.HttpPool` is its Python subclass,
    which adds connecting, the cap, the waiting line and the sweep, and the hooks this half
    calls: `_send_new(data, timeout_s, done)` (no idle connection), `_arm(loop, at)` and
    `_due(loop, at)` (the sweep timer), `_hand_over(conn)` (a waiting request takes conn)."""

    _idle: list[Connection]  # open, no request out
    _out: set[Connection]  # a request out, waiting for its answer
    _waiting: deque[tuple[bytes, float, Callable[[int, bytes, ConnectionError | None], None]]]
    idle_close_s: float  # > 0: close a connection idle that long (s)
    _sweep_timer: asyncio.TimerHandle | None  # one timer for every deadline and idle close

    def __init__(self) -> None: ...
    def send(
        self,
        data: bytes,
        timeout_s: float,
        done: Callable[[int, bytes, ConnectionError | None], None],
    ) -> None:
        """Send prebuilt request bytes on an idle connection that is still writable, or else
        through `_send_new`."""
    def watch(self, conn: Connection) -> None:
        """conn has a request out until conn.deadline: the sweep fails it then if no answer
        came."""
    def release(self, conn: Connection) -> None:
        """conn's answer is in and it stays open: the next waiting request's, or idle."""

class CatchUp:
    """How many calls one dispatcher pump may start (rinha.pacing says why): every payment that
    arrived since the last pump (`arrive`) brings its own call; on top of that, queued payments go
    out at `rate_per_s`, at most `cap` calls a pump. A drain (a pump that starts all it may while
    more waits) must end within `window_ms`: the pace rises when the backlog needs it. Credit
    earned while idle is capped at two ticks' worth (`tick_ms`). `rate_per_s` 0: `cap` every
    pump."""

    enabled: bool
    cap: int  # calls per pump, whatever the pace
    rate: float  # backlog calls/s
    window_s: float  # a drain's time limit, s
    tick_s: float  # the dispatch tick, s
    arrived: int  # payments queued since the last pump
    credit: float  # calls allowed beyond new arrivals, earned at `rate`
    at: float  # loop time `credit` was last topped up
    ends: float  # loop time a drain under way must end by (0: none)

    def __init__(self, cap: int, rate_per_s: float, window_ms: float, tick_ms: float) -> None: ...
    def arrive(self, n: int = 1) -> None:
        """`n` payments were queued."""
    def budget(self, now_s: float, backlog: int) -> tuple[int, int]:
        """(calls this pump may start, how many of them are new arrivals' own); `now_s` is loop
        time, `backlog` the payments queued."""
    def spent(self, allowed: int, started: int, arrived: int, backlog: int) -> None:
        """After the pump: `started` of the `allowed` calls went out, `backlog` still waits.
        Arrivals' own calls come first; what is left of them is not carried over."""
    def stop(self) -> None:
        """Shutting down: what is queued goes as fast as allowed."""
