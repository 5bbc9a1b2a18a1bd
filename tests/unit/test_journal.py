"""Journal: one instance's append-only, crash-surviving log of its payments, written through a
MAP_SHARED mapping of a file allocated ahead in chunks. Every test runs against both modules
through the `fast` fixture, and each module replays the other's files."""

from __future__ import annotations

import errno
import importlib
import multiprocessing
import os
import random
import resource
import shutil
import signal
import stat
import struct
import tempfile
import uuid
import zlib
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rinha.errors import FileFormatError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
HEADER = b"RINHAJNL" + struct.pack("<II", 1, 40)
FORK = multiprocessing.get_context("fork")
SETTINGS = settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow])
RANGES = [
    (INT64_MIN, INT64_MAX),
    (0, 0),
    (-50, 50),
    (1_752_582_896_000, 1_752_582_899_999),
    (10, 5),
]


def ids(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(n)]


def write_every_kind(journal, pool: list[str]) -> list[tuple]:
    """One record of each kind per id, extremes included; what replay must give back."""
    expected = []
    for n, cid in enumerate(pool):
        cents, ms = [(1990, 1_752_582_896_000), (0, INT64_MIN), (INT64_MAX, INT64_MAX)][n % 3]
        processor = n % 2
        journal.accept(cid.upper() if n % 2 else cid, cents)
        journal.attempt(cid, cents, processor, ms)
        journal.stored(cid, cents, processor, ms)
        journal.released(cid, cents, 1 - processor)
        journal.finished(cid, cents)
        expected += [
            (1, cid, cents, 0, 0),
            (2, cid, cents, processor, ms),
            (3, cid, cents, processor, ms),
            (4, cid, cents, 1 - processor, 0),
            (5, cid, cents, 0, 0),
        ]
    journal.flush()
    return expected


def encoded(kind: int, cid: str, cents: int, processor: int, ms: int) -> bytes:
    """One record's 40 bytes, as the format says."""
    body = struct.pack("<BBBBqq16s", 0xA5, kind, processor, 0, cents, ms, uuid.UUID(cid).bytes)
    return body + struct.pack("<I", zlib.crc32(body))


def chunk(fast: ModuleType) -> int:
    """How far ahead of its records the file is allocated and mapped."""
    return fast._JOURNAL_CHUNK


def fresh(fast: ModuleType) -> tuple:
    return fast.Ledger(), fast.Ledger()


def summaries(ledgers) -> list:
    return [ledger.summary(lo, hi) for ledger in ledgers for lo, hi in RANGES]


def fill(fast: ModuleType, entries: list[list[tuple[int, int]]]) -> tuple:
    ledgers = fresh(fast)
    for ledger, pairs in zip(ledgers, entries, strict=True):
        for ms, cents in pairs:
            ledger.add(ms, cents)
    return ledgers


def replay_file(fast: ModuleType, path: Path) -> tuple[list, tuple, int]:
    journal = fast.Journal(str(path))
    ledgers = fresh(fast)
    records = journal.replay(ledgers)
    dropped = journal.dropped_bytes
    journal.close()
    return records, ledgers, dropped


# -- records ------------------------------------------------------------------------------------


def test_round_trip_of_every_kind(fast: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    journal = fast.Journal(str(path))
    expected = write_every_kind(journal, ids(7))
    size = 16 + 40 * len(expected)
    assert journal.size == size and journal.pending_bytes == 0  # the logical size
    raw = path.read_bytes()  # open: allocated a chunk ahead, zeros past the records
    assert len(raw) == chunk(fast) and raw[:16] == HEADER and not any(raw[size:])
    journal.close()
    assert path.stat().st_size == size  # closed: cut back to its records
    records, ledgers, dropped = replay_file(fast, path)
    assert records == expected and dropped == 0
    assert all(type(value) is int for record in records for value in record[::2])
    assert len(ledgers[0]) == len(ledgers[1]) == 0  # stored records are returned, not applied


def test_record_bytes(fast: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    with fast.Journal(str(path)) as journal:
        journal.stored("4A7901B8-7D26-4D9D-AA19-4DC1C7CF60B3", 1990, 1, 1_752_582_896_000)
    body = struct.pack(
        "<BBBBqq16s",
        0xA5,
        3,
        1,
        0,
        1990,
        1_752_582_896_000,
        bytes.fromhex("4a7901b87d264d9daa194dc1c7cf60b3"),
    )
    assert path.read_bytes() == HEADER + body + struct.pack("<I", zlib.crc32(body))


def test_every_record_is_in_the_file_when_its_call_returns(
    fast: ModuleType, tmp_path: Path
) -> None:
    path = tmp_path / "journal.bin"
    journal = fast.Journal(str(path))
    assert journal.size == path.stat().st_size == 16  # nothing allocated before the first record
    a, b, c = ids(3)
    written = [(2, a, 100, 0, 5), (3, a, 100, 0, 5)]
    journal.attempt(a, 100, 0, 5)
    journal.stored(a, 100, 0, 5)
    assert journal.pending_bytes == 0 and journal.size == 96
    assert path.read_bytes()[:96] == HEADER + b"".join(encoded(*r) for r in written)  # no flush
    journal.accept(b, 200)
    journal.released(b, 200, 1)
    journal.finished(c, 300)
    written += [(1, b, 200, 0, 0), (4, b, 200, 1, 0), (5, c, 300, 0, 0)]
    raw = path.read_bytes()
    assert raw[:216] == HEADER + b"".join(encoded(*r) for r in written) and not any(raw[216:])
    assert journal.size == 216 and path.stat().st_size == chunk(fast)
    journal.flush()  # nothing held: nothing to do
    assert journal.pending_bytes == 0 and path.read_bytes() == raw
    journal.finished(a, 100)
    journal.sync()
    assert journal.size == 256 and path.stat().st_size == chunk(fast)
    journal.attempt(c, 300, 1, 9)
    journal.close()  # cuts the unused zeros off
    journal.close()
    assert path.stat().st_size == 296
    records, _, _ = replay_file(fast, path)
    assert [r[:2] for r in records] == [(2, a), (3, a), (1, b), (4, b), (5, c), (5, a), (2, c)]


def test_sync_journal_and_reopening_appends(fast: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "journal.bin"  # directories made as needed, mode 0700
    with fast.Journal(str(path), sync=True) as journal:
        journal.accept(ids(1)[0], 1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with fast.Journal(str(path), True) as journal:
        assert journal.size == 56 and journal.path == str(path)
        journal.accept(ids(2)[1], 2)
    records, _, _ = replay_file(fast, path)
    assert [r[2] for r in records] == [1, 2]


def test_torn_tail_is_cut_off(fast: ModuleType, tmp_path: Path) -> None:
    """A record cut short at every byte: as an old write(2) could leave it (the file ends there)
    or a process killed while copying it into the mapping (zeros follow)."""
    whole = tmp_path / "whole.bin"
    with fast.Journal(str(whole)) as journal:
        expected = write_every_kind(journal, ids(2))
    raw = whole.read_bytes()
    good = len(raw) - 40
    path = tmp_path / "torn.bin"
    for cut in range(good, len(raw)):
        torn = len(raw[good:cut].rstrip(b"\0"))  # its bytes up to the last non-zero one
        for zeros in (0, 1000):
            path.write_bytes(raw[:cut] + bytes(zeros))
            journal = fast.Journal(str(path))
            assert journal.size == good + torn, cut  # past the damage until a replay
            records = journal.replay(fresh(fast))
            assert records == expected[:-1], cut
            assert path.stat().st_size == journal.size == good
            assert journal.dropped_bytes == torn  # the zeros that end the file do not count
            journal.finished(ids(3)[2], 5)  # new records follow good data
            journal.close()
            records, _, dropped = replay_file(fast, path)
            assert records == [*expected[:-1], (5, ids(3)[2], 5, 0, 0)] and dropped == 0
            assert path.stat().st_size == good + 40


@pytest.mark.parametrize(
    "damage",
    [
        lambda rec: rec[:10] + bytes([rec[10] ^ 1]) + rec[11:],  # a bit of the cents
        lambda rec: rec[:37] + bytes([rec[37] ^ 0x80]) + rec[38:],  # a bit of the CRC
        lambda rec: b"\x00" + rec[1:],  # the magic
        lambda rec: bytes(40),  # zeros, as a power cut can leave
        lambda rec: None,  # a well-formed record of an unknown kind
    ],
)
def test_corruption_in_the_middle_stops_the_replay_there(
    fast: ModuleType, tmp_path: Path, damage
) -> None:
    path = tmp_path / "journal.bin"
    with fast.Journal(str(path)) as journal:
        expected = write_every_kind(journal, ids(3))
    raw = path.read_bytes()
    at = 16 + 40 * 6
    bad = damage(raw[at : at + 40])
    if bad is None:
        body = struct.pack("<BBBBqq16s", 0xA5, 9, 0, 0, 1, 2, bytes(16))
        bad = body + struct.pack("<I", zlib.crc32(body))
    path.write_bytes(raw[:at] + bad + raw[at + 40 :])
    records, _, dropped = replay_file(fast, path)
    assert records == expected[:6]
    assert path.stat().st_size == at and dropped == len(raw) - at


def test_clear(fast: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    journal = fast.Journal(str(path))
    write_every_kind(journal, ids(3))
    journal.attempt(ids(1)[0], 5, 0, 5)
    journal.clear()
    assert journal.size == path.stat().st_size == 16 and journal.pending_bytes == 0
    assert path.read_bytes() == HEADER
    journal.accept(ids(1)[0], 7)
    assert journal.replay(fresh(fast)) == [(1, ids(1)[0], 7, 0, 0)]
    journal.close()


# -- compaction ---------------------------------------------------------------------------------


def test_compact_then_replay(fast: ModuleType, tmp_path: Path) -> None:
    rng = random.Random(4)
    now = 1_752_582_896_000
    entries = [
        [(now + rng.randint(-5000, 5000), rng.choice([1990, 1, 0, 10**6])) for _ in range(10_000)],
        [(now + rng.randint(-50, 50), 1990) for _ in range(300)] + [(INT64_MIN, 1), (INT64_MAX, 2)],
    ]
    ledgers = fill(fast, entries)
    pool = ids(5)
    pending = [
        (fast.J_ACCEPT, pool[0], 100, 0, 0),
        (fast.J_ATTEMPT, pool[1], 200, 1, now),
        (fast.J_STORED, pool[2], 300, 0, now + 1),
        (fast.J_RELEASED, pool[3], 400, 1, 0),
        (fast.J_FINISHED, pool[4], 500, 0, 0),
    ]
    path = tmp_path / "journal.bin"
    journal = fast.Journal(str(path))
    write_every_kind(journal, ids(50, seed=9))
    journal.attempt(pool[0], 100, 0, now)  # buffered: flushed to the old file, not carried over
    journal.compact(ledgers, [(k, cid.upper(), c, p, ms) for k, cid, c, p, ms in pending])
    assert journal.pending_bytes == 0
    expected_size = 16 + (40 + 16 * 10_000 + 4) + (40 + 16 * 302 + 4) + 40 * 5
    assert journal.size == path.stat().st_size == expected_size
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    journal.accept(pool[4], 600)  # appends go on in the new file
    journal.close()
    assert sorted(os.listdir(tmp_path)) == ["journal.bin"]
    records, replayed, _ = replay_file(fast, path)
    assert records == [*pending, (fast.J_ACCEPT, pool[4], 600, 0, 0)]
    assert summaries(replayed) == summaries(ledgers)
    assert [len(ledger) for ledger in replayed] == [10_000, 302]


def test_compact_of_empty_ledgers_and_replay_into_full_ones(
    fast: ModuleType, tmp_path: Path
) -> None:
    path = tmp_path / "journal.bin"
    journal = fast.Journal(str(path))
    journal.compact(fresh(fast), [])
    assert journal.size == 16 + 2 * 44
    assert journal.replay(fresh(fast)) == []
    journal.compact(fill(fast, [[(5, 50), (1, 10)], [(3, 30)]]), [])
    ledgers = fill(fast, [[(2, 20), (9, 90)], []])  # a snapshot adds to what is there
    assert journal.replay(ledgers) == []
    assert [ledger.summary(INT64_MIN, INT64_MAX) for ledger in ledgers] == [(4, 170), (1, 30)]
    assert ledgers[0].summary(2, 5) == (2, 70)
    journal.close()


def test_compact_checks_everything_before_writing(fast: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    journal = fast.Journal(str(path))
    journal.accept(ids(1)[0], 1)
    before = path.read_bytes()
    cid = ids(1)[0]
    for bad, error in [
        ((fast.J_SNAPSHOT, cid, 1, 0, 0), ValueError),
        ((0, cid, 1, 0, 0), ValueError),
        ((fast.J_ATTEMPT, cid, 1, 2, 0), ValueError),
        ((fast.J_ATTEMPT, cid, -1, 0, 0), ValueError),
        ((fast.J_ATTEMPT, cid[:-1], 1, 0, 0), ValueError),
        ((fast.J_ATTEMPT, None, 1, 0, 0), TypeError),
        ((fast.J_ATTEMPT, cid, 1.5, 0, 0), TypeError),
        ((fast.J_ATTEMPT, cid, 1, 0), ValueError),
    ]:
        with pytest.raises(error):
            journal.compact(fresh(fast), [(fast.J_ACCEPT, cid, 1, 0, 0), bad])
    with pytest.raises(TypeError):
        journal.compact((fast.Ledger(), object()), [])
    assert path.read_bytes() == before
    journal.close()


# a ledger as (ms, cents) entries; times crowd a few values to make ties
_entries = st.lists(
    st.tuples(st.integers(-20, 20) | st.integers(INT64_MIN, INT64_MAX), st.integers(0, 10**13)),
    max_size=40,
)


@SETTINGS
@given(
    entries=st.tuples(_entries, _entries),
    bounds=st.lists(
        st.tuples(
            st.integers(-25, 25) | st.integers(INT64_MIN, INT64_MAX),
            st.integers(-25, 25) | st.integers(INT64_MIN, INT64_MAX),
        ),
        max_size=10,
    ),
)
def test_compact_and_replay_preserve_every_summary(
    fast: ModuleType, entries: tuple, bounds: list[tuple[int, int]]
) -> None:
    ledgers = fill(fast, list(entries))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "journal.bin"
        with fast.Journal(str(path)) as journal:
            journal.compact(ledgers, [])
        records, replayed, dropped = replay_file(fast, path)
    assert records == [] and dropped == 0
    for ledger, again in zip(ledgers, replayed, strict=True):
        assert len(again) == len(ledger)
        for lo, hi in [*RANGES, *bounds]:
            assert again.summary(lo, hi) == ledger.summary(lo, hi)


def test_torn_snapshot_loads_nothing(fast: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    with fast.Journal(str(path)) as journal:
        journal.compact(fill(fast, [[(1, 1), (2, 2)], [(n, 1) for n in range(100)]]), [])
    raw = path.read_bytes()
    second = 16 + 40 + 32 + 4  # where the fallback's block starts
    for cut in [second + 1, second + 40, second + 40 + 800, len(raw) - 1]:
        path.write_bytes(raw[:cut])
        records, ledgers, dropped = replay_file(fast, path)
        assert records == [] and dropped == len(raw[second:cut].rstrip(b"\0"))
        assert [len(ledger) for ledger in ledgers] == [2, 0]
        assert path.stat().st_size == second
    damaged = bytearray(raw)
    damaged[second + 40 + 5] ^= 1  # a payload byte: the block's own CRC catches it
    path.write_bytes(bytes(damaged))
    records, ledgers, _ = replay_file(fast, path)
    assert [len(ledger) for ledger in ledgers] == [2, 0]


# -- the two implementations --------------------------------------------------------------------


def same_session(module: ModuleType, path: Path) -> None:
    rng = random.Random(3)
    with module.Journal(str(path)) as journal:
        write_every_kind(journal, ids(20))
        ledgers = fill(
            module,
            [
                [(rng.randint(0, 99), rng.randint(0, 999)) for _ in range(5000)],
                [(rng.randint(0, 99), 7) for _ in range(30)],
            ],
        )
        journal.compact(ledgers, [(module.J_ATTEMPT, ids(1)[0], 5, 1, 77)])
        journal.accept(ids(2)[1], 9)
        journal.stored(ids(2)[1], 9, 0, 78)


def test_both_implementations_write_the_same_bytes(
    compiled: ModuleType, reference: ModuleType, tmp_path: Path
) -> None:
    same_session(compiled, tmp_path / "compiled.bin")
    same_session(reference, tmp_path / "reference.bin")
    assert (tmp_path / "compiled.bin").read_bytes() == (tmp_path / "reference.bin").read_bytes()


@pytest.mark.parametrize("writer_name", ["compiled", "reference"])
def test_each_replays_the_others_file(
    compiled: ModuleType, reference: ModuleType, tmp_path: Path, writer_name: str
) -> None:
    writer, reader = (compiled, reference) if writer_name == "compiled" else (reference, compiled)
    path = tmp_path / "journal.bin"
    same_session(writer, path)
    copy = tmp_path / "copy.bin"
    shutil.copy(path, copy)
    theirs, their_ledgers, _ = replay_file(reader, path)
    ours, our_ledgers, _ = replay_file(writer, copy)
    assert theirs == ours and len(theirs) == 3
    assert summaries(their_ledgers) == summaries(our_ledgers)
    assert [len(ledger) for ledger in their_ledgers] == [5000, 30]


def test_replay_wants_this_modules_ledgers(
    compiled: ModuleType, reference: ModuleType, tmp_path: Path
) -> None:
    for module, other in [(compiled, reference), (reference, compiled)]:
        with module.Journal(str(tmp_path / f"{module.__name__}.bin")) as journal:
            with pytest.raises(TypeError):
                journal.replay((other.Ledger(), other.Ledger()))
            with pytest.raises(TypeError):
                journal.compact((other.Ledger(), other.Ledger()), [])


# -- misuse and bad files -----------------------------------------------------------------------


def test_bad_arguments(fast: ModuleType, tmp_path: Path) -> None:
    journal = fast.Journal(str(tmp_path / "journal.bin"))
    cid = ids(1)[0]
    for call, error in [
        (lambda: journal.accept(cid, -1), ValueError),
        (lambda: journal.accept(cid[:-1], 1), ValueError),
        (lambda: journal.accept(cid.encode(), 1), TypeError),
        (lambda: journal.accept(cid, 2**63), OverflowError),
        (lambda: journal.attempt(cid, 1, 2, 0), ValueError),
        (lambda: journal.attempt(cid, 1, -1, 0), ValueError),
        (lambda: journal.attempt(cid, 1, 0, 1.0), TypeError),
        (lambda: journal.stored(cid, 1, 0, 2**63), OverflowError),
        (lambda: journal.released(cid, 1, 5), ValueError),
        (lambda: journal.finished(None, 1), TypeError),
    ]:
        with pytest.raises(error):
            call()
    assert journal.pending_bytes == 0 and journal.size == 16
    journal.close()
    for use in (
        lambda: journal.accept(cid, 1),
        lambda: journal.attempt(cid, 1, 0, 0),
        journal.flush,
        journal.sync,
        journal.clear,
        lambda: journal.replay(fresh(fast)),
        lambda: journal.compact(fresh(fast), []),
    ):
        with pytest.raises(ValueError, match="closed"):
            use()


def test_bad_files(fast: ModuleType, tmp_path: Path) -> None:
    for name, content, message in [
        ("magic", b"NOTRINHA" + HEADER[8:], "bad magic"),
        ("version", HEADER[:8] + struct.pack("<II", 2, 40), "version 2"),
        ("record", HEADER[:8] + struct.pack("<II", 1, 48), "48-byte"),
        ("garbage", b"hello", "bad magic"),
    ]:
        path = tmp_path / f"{name}.bin"
        path.write_bytes(content)
        with pytest.raises(FileFormatError, match=message) as info:
            fast.Journal(str(path))
        assert isinstance(info.value, ValueError) and str(path) in str(info.value)
        assert path.read_bytes() == content  # left alone
    for torn in (b"", HEADER[:1], HEADER[:15]):  # a header cut short as the file was made
        path = tmp_path / "torn.bin"
        path.write_bytes(torn)
        with fast.Journal(str(path)) as journal:
            assert journal.size == 16
        assert path.read_bytes() == HEADER


# -- chunks, crashes and write errors -----------------------------------------------------------


def test_records_past_a_chunk_boundary(fast: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    journal = fast.Journal(str(path))
    n = chunk(fast) // 40 + 100  # the file is extended once, in the middle of a record
    pool = ids(n // 2 + 1, seed=5)
    expected = []
    for i in range(n):
        cid = pool[i // 2]
        if i % 2:
            journal.attempt(cid, i, 1, i)
            expected.append((2, cid, i, 1, i))
        else:
            journal.accept(cid, i)
            expected.append((1, cid, i, 0, 0))
        if i == n - 50:
            journal.sync()  # msync + fdatasync across both chunks
    assert journal.size == 16 + 40 * n and journal.pending_bytes == 0
    assert path.stat().st_size == 2 * chunk(fast)  # the allocated length, not the logical one
    journal.close()
    assert path.stat().st_size == 16 + 40 * n
    records, _, dropped = replay_file(fast, path)
    assert records == expected and dropped == 0


def _second_journal_on_a_live_file(module_name: str, path: str, pool: list[str], conn) -> None:
    module = importlib.import_module(module_name)
    live = module.Journal(path)
    for cid in pool[:100]:
        live.accept(cid, 1)
    allocated = os.path.getsize(path)
    peek = module.Journal(path)  # a reader while the live journal maps the file
    report = {"sizes": (peek.size, live.size, allocated)}
    report["peeked"] = peek.replay((module.Ledger(), module.Ledger()))
    report["after_peek"] = (os.path.getsize(path), peek.size, peek.dropped_bytes)
    peek.close()
    report["after_close"] = os.path.getsize(path)
    stale = module.Journal(path)  # its size is about to be stale
    for cid in pool[100:]:  # past the first page: a SIGBUS had the file been cut under it
        live.accept(cid, 2)
    live.close()
    report["closed"] = (os.path.getsize(path), live.size)
    stale.close()  # cuts no record it did not see
    report["stale_closed"] = (os.path.getsize(path), stale.size)
    conn.send(report)


def test_a_second_journal_reads_a_live_file_without_cutting_it(
    fast: ModuleType, tmp_path: Path
) -> None:
    """replay() and close() cut the file only where no other open Journal maps it, and close()
    only the zeros that end it."""
    path = tmp_path / "journal.bin"
    pool = ids(300)
    parent, child = FORK.Pipe(duplex=False)
    worker = FORK.Process(
        target=_second_journal_on_a_live_file, args=(fast.__name__, str(path), pool, child)
    )
    worker.start()
    child.close()
    report = parent.recv()  # EOFError if the child died (SIGBUS)
    worker.join(timeout=30)
    assert worker.exitcode == 0
    assert report["sizes"] == (16 + 40 * 100, 16 + 40 * 100, chunk(fast))
    assert report["peeked"] == [(1, cid, 1, 0, 0) for cid in pool[:100]]
    assert report["after_peek"] == (chunk(fast), 16 + 40 * 100, 0)
    assert report["after_close"] == chunk(fast)
    assert report["closed"] == (chunk(fast), 16 + 40 * 300)  # not cut: stale still has it
    assert report["stale_closed"] == (16 + 40 * 300, 16 + 40 * 100)  # the zeros, no record
    records, _, dropped = replay_file(fast, path)
    assert records == [(1, cid, 1 if n < 100 else 2, 0, 0) for n, cid in enumerate(pool)]
    assert dropped == 0


def _accept_until_killed(module_name: str, path: str, pool: list[str], conn) -> None:
    module = importlib.import_module(module_name)
    journal = module.Journal(path)
    for n, cid in enumerate(pool):
        journal.attempt(cid, n, n % 2, n)
        journal.accept(cid, n)
        conn.send_bytes(struct.pack("<I", n))  # only once accept has returned
    conn.send_bytes(b"")
    signal.pause()


def test_accepts_outlive_a_sigkill(fast: ModuleType, tmp_path: Path) -> None:
    """Killed at any moment, maybe in the middle of copying a record: every accept that
    returned is replayed, with no flush or close before the kill."""
    path = tmp_path / "journal.bin"
    pool = ids(200_000)
    parent, child = FORK.Pipe(duplex=False)
    worker = FORK.Process(target=_accept_until_killed, args=(fast.__name__, str(path), pool, child))
    worker.start()
    child.close()
    reported = []
    past_a_chunk = chunk(fast) // 80 + 1000  # 80 bytes per payment
    while len(reported) < past_a_chunk:
        message = parent.recv_bytes()
        assert message, "the child wrote every accept before it could be killed"
        reported.append(struct.unpack("<I", message)[0])
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(timeout=30)
    assert worker.exitcode == -signal.SIGKILL
    while True:
        try:
            reported.append(struct.unpack("<I", parent.recv_bytes())[0])
        except EOFError:
            break
    assert path.stat().st_size % chunk(fast) == 0  # left as mapped: zeros past the records
    records, _, _ = replay_file(fast, path)
    expected = []
    for n, cid in enumerate(pool[: len(reported) + 1]):
        expected += [(2, cid, n, n % 2, n), (1, cid, n, 0, 0)]
    assert records == expected[: len(records)]  # a prefix of what was written, in order
    accepted = [r[1] for r in records if r[0] == 1]
    assert len(accepted) >= len(reported) == reported[-1] + 1  # every returned accept is there


def _accept_then_die(module_name: str, path: str, pool: list[str]) -> None:
    module = importlib.import_module(module_name)
    journal = module.Journal(path)
    for n, cid in enumerate(pool):
        journal.attempt(cid, n, n % 2, n)
        journal.accept(cid, n)
    os.kill(os.getpid(), signal.SIGKILL)  # no flush, no close


def test_a_killed_journal_is_reopened_at_its_logical_end(fast: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    pool = ids(chunk(fast) // 80 + 100, seed=6)  # two chunks
    worker = FORK.Process(target=_accept_then_die, args=(fast.__name__, str(path), pool))
    worker.start()
    worker.join(timeout=60)
    assert worker.exitcode == -signal.SIGKILL
    expected = []
    for n, cid in enumerate(pool):
        expected += [(2, cid, n, n % 2, n), (1, cid, n, 0, 0)]
    size = 16 + 40 * len(expected)
    raw = path.read_bytes()
    assert len(raw) == 2 * chunk(fast) and any(raw[size - 40 : size]) and not any(raw[size:])
    replayed = tmp_path / "replayed.bin"
    shutil.copy(path, replayed)
    records, _, dropped = replay_file(fast, replayed)
    assert records == expected and dropped == 0  # the zeros are no damage
    assert replayed.stat().st_size == size  # and the replay cut them off
    journal = fast.Journal(str(path))  # reopened without a replay
    assert journal.size == size
    journal.finished(pool[0], 0)  # appended at the logical end, not after the zeros
    journal.close()
    assert path.stat().st_size == size + 40
    records, _, dropped = replay_file(fast, path)
    assert records == [*expected, (5, pool[0], 0, 0, 0)] and dropped == 0


def _write_past_the_limit(module_name: str, path: str, pool: list[str], conn) -> None:
    module = importlib.import_module(module_name)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so that extending fails with EFBIG instead
    journal = module.Journal(path)
    size = module._JOURNAL_CHUNK
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))  # one chunk, as a full disk would
    fits = len(pool) - 3
    report = {"accepted": 0}
    for n in range(fits + 1):
        try:
            journal.accept(pool[n], n)
            report["accepted"] += 1
        except OSError as exc:
            report["accept_error"] = exc.errno
    report["after_accept"] = (os.path.getsize(path), journal.size, journal.pending_bytes)
    journal.attempt(pool[fits + 1], 1, 1, 11)  # no room: held in memory, no error
    journal.stored(pool[fits + 1], 1, 1, 11)
    report["after_attempt"] = (os.path.getsize(path), journal.size, journal.pending_bytes)
    try:
        journal.flush()
    except OSError as exc:
        report["flush_error"] = exc.errno
    report["after_flush"] = (os.path.getsize(path), journal.size, journal.pending_bytes)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    journal.accept(pool[fits + 2], 2)  # the held records go first
    report["after_retry"] = (os.path.getsize(path), journal.size, journal.pending_bytes)
    journal.close()
    conn.send(report)


def test_a_full_disk_is_an_error_when_the_file_grows_never_a_sigbus(
    fast: ModuleType, tmp_path: Path
) -> None:
    """The file is allocated (posix_fallocate) before records are copied into a new chunk: no
    room is an OSError from accept (503), while the other kinds are held until there is."""
    path = tmp_path / "journal.bin"
    fits = (chunk(fast) - 16) // 40
    pool = ids(fits + 3, seed=8)
    parent, child = FORK.Pipe(duplex=False)
    worker = FORK.Process(
        target=_write_past_the_limit, args=(fast.__name__, str(path), pool, child)
    )
    worker.start()
    child.close()
    report = parent.recv()  # EOFError if the child died first (SIGBUS, SIGXFSZ)
    worker.join(timeout=60)
    assert worker.exitcode == 0
    full = 16 + 40 * fits
    assert report["accepted"] == fits and report["accept_error"] == errno.EFBIG
    assert report["after_accept"] == (chunk(fast), full, 0)
    assert report["after_attempt"] == (chunk(fast), full, 80)
    assert report["flush_error"] == errno.EFBIG
    assert report["after_flush"] == (chunk(fast), full, 80)  # and the records stay held
    assert report["after_retry"] == (2 * chunk(fast), full + 120, 0)
    assert path.stat().st_size == full + 120
    records, _, dropped = replay_file(fast, path)
    assert dropped == 0
    assert records == [
        *[(1, pool[n], n, 0, 0) for n in range(fits)],
        (2, pool[fits + 1], 1, 1, 11),
        (3, pool[fits + 1], 1, 1, 11),
        (1, pool[fits + 2], 2, 0, 0),
    ]
