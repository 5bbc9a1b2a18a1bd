"""Journal: one instance's append-only, crash-surviving log of its payments. Every test runs
against both modules through the `fast` fixture, and each module replays the other's files."""

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
    assert journal.size == path.stat().st_size == 16 + 40 * len(expected)
    assert path.read_bytes()[:16] == HEADER
    journal.close()
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


def test_only_accept_writes_at_once(fast: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    journal = fast.Journal(str(path))
    a, b, c = ids(3)
    journal.attempt(a, 100, 0, 5)
    journal.stored(a, 100, 0, 5)
    assert journal.pending_bytes == 80 and journal.size == path.stat().st_size == 16
    journal.accept(b, 200)  # the buffer goes first, in the same write
    assert journal.pending_bytes == 0 and journal.size == path.stat().st_size == 16 + 120
    journal.released(b, 200, 1)
    journal.finished(c, 300)
    assert journal.pending_bytes == 80 and path.stat().st_size == 136
    journal.flush()
    assert journal.pending_bytes == 0 and path.stat().st_size == 216
    journal.finished(a, 100)
    journal.sync()
    assert path.stat().st_size == 256
    journal.attempt(c, 300, 1, 9)
    journal.close()  # flushes
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
    whole = tmp_path / "whole.bin"
    with fast.Journal(str(whole)) as journal:
        expected = write_every_kind(journal, ids(2))
    raw = whole.read_bytes()
    good = len(raw) - 40
    path = tmp_path / "torn.bin"
    for cut in range(good, len(raw)):
        path.write_bytes(raw[:cut])
        journal = fast.Journal(str(path))
        records = journal.replay(fresh(fast))
        assert records == expected[:-1], cut
        assert path.stat().st_size == journal.size == good
        assert journal.dropped_bytes == cut - good
        journal.finished(ids(3)[2], 5)  # new records follow good data
        journal.close()
        records, _, dropped = replay_file(fast, path)
        assert records == [*expected[:-1], (5, ids(3)[2], 5, 0, 0)] and dropped == 0


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
        assert records == [] and dropped == cut - second
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


# -- crashes and write errors -------------------------------------------------------------------


def _accept_until_killed(module_name: str, path: str, pool: list[str], conn) -> None:
    module = importlib.import_module(module_name)
    journal = module.Journal(path)
    for n, cid in enumerate(pool):
        journal.attempt(cid, n, n % 2, n)  # buffered: it goes out with the next accept
        journal.accept(cid, n)
        conn.send_bytes(struct.pack("<I", n))  # only once accept has returned
    conn.send_bytes(b"")
    signal.pause()


def test_accepts_outlive_a_sigkill(fast: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    pool = ids(200_000)
    parent, child = FORK.Pipe(duplex=False)
    worker = FORK.Process(target=_accept_until_killed, args=(fast.__name__, str(path), pool, child))
    worker.start()
    child.close()
    reported = []
    while len(reported) < 2000:
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
    records, _, _ = replay_file(fast, path)
    expected = []
    for n, cid in enumerate(pool[: len(reported) + 1]):
        expected += [(2, cid, n, n % 2, n), (1, cid, n, 0, 0)]
    assert records == expected[: len(records)]  # a prefix of what was written, in order
    accepted = [r[1] for r in records if r[0] == 1]
    assert len(accepted) >= len(reported) == reported[-1] + 1  # every returned accept is there


def _write_past_the_limit(module_name: str, path: str, pool: list[str], conn) -> None:
    module = importlib.import_module(module_name)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so write(2) fails with EFBIG instead
    journal = module.Journal(path)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # room for 10 accepts and 25 bytes: the 11th write is short, then the rest fails
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 + 40 * 10 + 25, hard))
    report = {"accepted": 0}
    for n in range(11):
        try:
            journal.accept(pool[n], n)
            report["accepted"] += 1
        except OSError as exc:
            report["accept_error"] = exc.errno
    report["size_after_accept"] = (os.path.getsize(path), journal.size, journal.pending_bytes)
    journal.attempt(pool[11], 11, 1, 11)
    journal.attempt(pool[12], 12, 0, 12)
    try:
        journal.flush()
    except OSError as exc:
        report["flush_error"] = exc.errno
    report["size_after_flush"] = (os.path.getsize(path), journal.size, journal.pending_bytes)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    journal.accept(pool[13], 13)
    journal.close()
    conn.send(report)


def test_a_failed_write_leaves_no_torn_record(fast: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "journal.bin"
    pool = ids(14)
    parent, child = FORK.Pipe(duplex=False)
    worker = FORK.Process(
        target=_write_past_the_limit, args=(fast.__name__, str(path), pool, child)
    )
    worker.start()
    child.close()
    report = parent.recv()  # EOFError if the child died first
    worker.join(timeout=30)
    assert worker.exitcode == 0
    assert report["accepted"] == 10 and report["accept_error"] == errno.EFBIG
    assert report["size_after_accept"] == (416, 416, 0)  # the short write was cut back
    assert report["flush_error"] == errno.EFBIG
    assert report["size_after_flush"] == (416, 416, 80)  # and the records stay buffered
    records, _, dropped = replay_file(fast, path)
    assert dropped == 0
    assert records == [
        *[(1, pool[n], n, 0, 0) for n in range(10)],
        (2, pool[11], 11, 1, 11),
        (2, pool[12], 12, 0, 12),
        (1, pool[13], 13, 0, 0),
    ]
