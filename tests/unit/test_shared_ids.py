"""SharedIdSet: the cluster's correlationIds in one file mapped by every instance. Most tests run
against both modules through the `fast` fixture; the concurrent race is the compiled module's."""

from __future__ import annotations

import importlib
import multiprocessing
import os
import random
import signal
import stat
import struct
import uuid
from pathlib import Path
from types import ModuleType

import pytest

from rinha.errors import FileFormatError

ID = "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"
HEADER = struct.Struct("<8sIIQ16sQ16x")  # magic, version, header bytes, slots, key, used
FORK = multiprocessing.get_context("fork")


def ids(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(n)]


def header(path: Path) -> tuple:
    return HEADER.unpack(path.read_bytes()[:64])


def expected_slots(capacity: int) -> int:
    slots = 1
    while slots * 3 < capacity * 4:  # the smallest power of two >= capacity * 4 / 3
        slots *= 2
    return slots


# -- claims -------------------------------------------------------------------------------------


def test_every_claim_outcome(fast: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "ids.bin"
    mine = fast.SharedIdSet(str(path), 100, 1)
    other = fast.SharedIdSet(str(path), 100, 2)
    assert mine.claim(ID, 1990) == fast.CLAIM_NEW
    assert mine.claim(ID.upper(), 1990) == fast.CLAIM_MINE  # either case is the same id
    assert mine.claim(ID, 1991) == fast.CLAIM_CONFLICT
    assert other.claim(ID, 1990) == fast.CLAIM_OTHER
    assert other.claim(ID, 1) == fast.CLAIM_CONFLICT
    assert mine.owner_of(ID) == other.owner_of(ID.upper()) == 1
    assert ID in mine and ID.upper() in other
    assert len(mine) == len(other) == 1
    second = ids(1)[0]
    assert other.owner_of(second) is None and second not in mine
    assert other.claim(second, 0) == fast.CLAIM_NEW  # 0 cents is an amount like any other
    assert mine.claim(second, 0) == fast.CLAIM_OTHER
    assert mine.owner_of(second) == 2
    assert len(mine) == 2
    mine.close()
    other.close()


def test_two_owners_see_each_others_claims(fast: ModuleType, tmp_path: Path) -> None:
    path = str(tmp_path / "ids.bin")
    tables = [fast.SharedIdSet(path, 1000, 0), fast.SharedIdSet(path, 1000, 254)]
    pool = ids(600)
    for n, cid in enumerate(pool):
        assert tables[n % 2].claim(cid, n) == fast.CLAIM_NEW
    for n, cid in enumerate(pool):
        owner = tables[n % 2].owner
        assert [t.owner_of(cid) for t in tables] == [owner, owner]
        assert tables[(n + 1) % 2].claim(cid, n) == fast.CLAIM_OTHER
        assert tables[n % 2].claim(cid, n) == fast.CLAIM_MINE
        assert tables[n % 2].claim(cid, n + 1) == fast.CLAIM_CONFLICT
    assert len(tables[0]) == len(tables[1]) == 600
    assert header(Path(path))[5] == 600


def test_clear_is_seen_by_the_other(fast: ModuleType, tmp_path: Path) -> None:
    path = str(tmp_path / "ids.bin")
    a, b = fast.SharedIdSet(path, 100, 1), fast.SharedIdSet(path, 100, 2)
    pool = ids(50)
    for cid in pool:
        a.claim(cid, 100)
    assert len(b) == 50
    b.clear()
    assert len(a) == len(b) == 0
    assert not any(cid in a for cid in pool)
    assert a.owner_of(pool[0]) is None
    assert b.claim(pool[0], 100) == fast.CLAIM_NEW
    assert a.claim(pool[0], 100) == fast.CLAIM_OTHER


def test_full_at_capacity(fast: ModuleType, tmp_path: Path) -> None:
    path = str(tmp_path / "ids.bin")
    table = fast.SharedIdSet(path, 10, 3)
    assert table.capacity == 12 and table.nbytes == 64 + 16 * 8  # 16 slots at load 0.75
    pool = ids(20)
    assert [table.claim(cid, 5) for cid in pool[:12]] == [fast.CLAIM_NEW] * 12
    assert table.claim(pool[12], 5) == fast.CLAIM_FULL
    assert pool[12] not in table and len(table) == 12
    # ids already there are still told apart: full only refuses new ones
    assert table.claim(pool[0], 5) == fast.CLAIM_MINE
    assert table.claim(pool[0], 6) == fast.CLAIM_CONFLICT
    other = fast.SharedIdSet(path, 10, 4)
    assert other.claim(pool[1], 5) == fast.CLAIM_OTHER
    assert other.claim(pool[13], 5) == fast.CLAIM_FULL
    other.clear()
    assert table.claim(pool[12], 5) == fast.CLAIM_NEW


@pytest.mark.parametrize("capacity", [1, 2, 3, 4, 6, 7, 12, 13, 1000, 1_000_000])
def test_slots_hold_the_capacity_at_three_quarters(
    fast: ModuleType, tmp_path: Path, capacity: int
) -> None:
    path = tmp_path / "ids.bin"
    table = fast.SharedIdSet(str(path), capacity, 0)
    slots = expected_slots(capacity)
    assert table.nbytes == path.stat().st_size == 64 + 8 * slots
    assert table.capacity == slots * 3 // 4 >= capacity
    magic, version, size, file_slots, key, used = header(path)
    assert (magic, version, size, file_slots, used) == (b"RINHAIDS", 1, 64, slots, 0)
    assert key != bytes(16)
    table.close()


def test_slot_word_layout(fast: ModuleType, reference: ModuleType, tmp_path: Path) -> None:
    """fingerprint (top 48 bits of SipHash-2-4 of the id's bytes, file key) << 16 | owner << 8 |
    amount tag, at its home slot (fingerprint mod slots) or the next free one."""
    path = tmp_path / "ids.bin"
    table = fast.SharedIdSet(str(path), 1000, 9)
    pool = ids(200)
    for n, cid in enumerate(pool):
        table.claim(cid.upper(), n * 1000 + 3)
    table.close()
    raw = path.read_bytes()
    key, slots = raw[24:40], header(path)[3]
    words = struct.unpack(f"<{slots}Q", raw[64:])
    for n, cid in enumerate(pool):
        fp = (reference._siphash24(key, uuid.UUID(cid).bytes) >> 16) or 1
        tag = (((n * 1000 + 3) * 0x9E3779B97F4A7C15) % 2**64) >> 56
        i = fp % slots
        while words[i] >> 16 != fp:
            assert words[i] != 0
            i = (i + 1) % slots
        assert words[i] == (fp << 16) | (9 << 8) | tag
    assert sum(1 for w in words if w) == 200


def test_reopening_keeps_key_and_contents(fast: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "ids.bin"  # directories made as needed
    table = fast.SharedIdSet(str(path), 100, 5)
    pool = ids(40)
    for cid in pool:
        table.claim(cid, 7)
    before = header(path)
    table.close()
    again = fast.SharedIdSet(str(path), 5000, 6)  # capacity ignored: the file keeps its size
    assert header(path) == before
    assert again.nbytes == table.nbytes and again.capacity == 192  # 256 slots
    assert len(again) == 40
    assert all(again.owner_of(cid) == 5 for cid in pool)
    assert again.claim(pool[0], 7) == fast.CLAIM_OTHER
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert os.listdir(path.parent) == ["ids.bin"]  # the temporary file is gone


@pytest.mark.parametrize("writer_name", ["compiled", "reference"])
def test_files_are_shared_between_implementations(
    compiled: ModuleType, reference: ModuleType, tmp_path: Path, writer_name: str
) -> None:
    writer, reader = (compiled, reference) if writer_name == "compiled" else (reference, compiled)
    path = str(tmp_path / "ids.bin")
    first = writer.SharedIdSet(path, 300, 1)
    pool = ids(250)
    for n, cid in enumerate(pool[:200]):
        assert first.claim(cid, n) == writer.CLAIM_NEW
    second = reader.SharedIdSet(path, 300, 2)
    assert len(second) == 200
    for n, cid in enumerate(pool[:200]):
        assert second.owner_of(cid) == 1
        assert second.claim(cid, n) == reader.CLAIM_OTHER
        assert second.claim(cid, n + 1) == reader.CLAIM_CONFLICT
    for n, cid in enumerate(pool[200:]):
        assert second.claim(cid, n) == reader.CLAIM_NEW
        assert first.claim(cid, n) == writer.CLAIM_OTHER
    assert len(first) == len(second) == 250
    second.clear()
    assert len(first) == 0 and pool[0] not in first


# -- misuse -------------------------------------------------------------------------------------


def test_bad_arguments(fast: ModuleType, tmp_path: Path) -> None:
    path = str(tmp_path / "ids.bin")
    for owner in (-1, 255, 2**70):
        with pytest.raises((ValueError, OverflowError)):
            fast.SharedIdSet(path, 10, owner)
    for capacity in (0, -5, 2**41):
        with pytest.raises(ValueError, match="capacity"):
            fast.SharedIdSet(path, capacity, 0)
    assert not os.path.exists(path)
    table = fast.SharedIdSet(path, 10, 0)
    for bad in ("", ID[:-1], ID + "0", ID.replace("-", ""), ID[:-1] + "g", ID[:-1] + "\u00e9"):
        with pytest.raises(ValueError, match="not a canonical UUID"):
            table.claim(bad, 1)
        with pytest.raises(ValueError, match="not a canonical UUID"):
            table.owner_of(bad)
        assert bad not in table
    for wrong in (None, 5, ID.encode(), uuid.UUID(ID)):
        with pytest.raises(TypeError):
            table.claim(wrong, 1)
        assert wrong not in table
    with pytest.raises(ValueError, match="cents"):
        table.claim(ID, -1)
    with pytest.raises(TypeError):
        table.claim(ID, 19.9)
    assert len(table) == 0


def test_closed_table(fast: ModuleType, tmp_path: Path) -> None:
    with fast.SharedIdSet(str(tmp_path / "ids.bin"), 10, 0) as table:
        table.claim(ID, 1)
    table.close()  # idempotent
    for use in (
        lambda: table.claim(ID, 1),
        lambda: table.owner_of(ID),
        lambda: ID in table,
        lambda: len(table),
        table.clear,
    ):
        with pytest.raises(ValueError, match="closed"):
            use()
    assert fast.SharedIdSet(str(tmp_path / "ids.bin"), 10, 1).owner_of(ID) == 0


def test_bad_files_are_refused(fast: ModuleType, tmp_path: Path) -> None:
    good = tmp_path / "good.bin"
    fast.SharedIdSet(str(good), 10, 0).close()
    raw = good.read_bytes()
    cases = {
        "magic": b"NOTRINHA" + raw[8:],
        "empty": b"",
        "short": raw[:40],
        "version": raw[:8] + struct.pack("<I", 2) + raw[12:],
        "size": raw[:-8],
        "slots": raw[:16] + struct.pack("<Q", 24) + raw[24:],
    }
    messages = {
        "magic": "bad magic",
        "empty": "bad magic",
        "short": "bad magic",
        "version": "version 2",
        "size": "corrupt",
        "slots": "corrupt",
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}.bin"
        path.write_bytes(content)
        with pytest.raises(FileFormatError, match=messages[name]) as info:
            fast.SharedIdSet(str(path), 10, 0)
        assert isinstance(info.value, ValueError) and str(path) in str(info.value)
        assert path.read_bytes() == content  # left alone


# -- several processes --------------------------------------------------------------------------


def _race(module_name: str, path: str, owner: int, pool: list[str], barrier, results) -> None:
    module = importlib.import_module(module_name)
    order = list(range(len(pool)))
    random.Random(owner).shuffle(order)
    barrier.wait()
    table = module.SharedIdSet(path, len(pool), owner)  # all four race to create the file too
    outcomes = [0] * len(pool)
    for i in order:
        outcomes[i] = table.claim(pool[i], 1990)
    results.put((owner, bytes(outcomes)))


def test_concurrent_claims_from_four_processes(compiled: ModuleType, tmp_path: Path) -> None:
    path = str(tmp_path / "ids.bin")
    pool = ids(20_000, seed=5)
    barrier, results = FORK.Barrier(4), FORK.Queue()
    workers = [
        FORK.Process(target=_race, args=("rinha._fast", path, owner, pool, barrier, results))
        for owner in range(1, 5)
    ]
    for worker in workers:
        worker.start()
    outcomes = dict(results.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    new_by = [[o for o in outcomes if outcomes[o][i] == compiled.CLAIM_NEW] for i in range(20_000)]
    assert all(len(winners) == 1 for winners in new_by)
    assert all(
        outcomes[o][i] == compiled.CLAIM_OTHER
        for i in range(20_000)
        for o in outcomes
        if o != new_by[i][0]
    )
    table = compiled.SharedIdSet(path, 1, 0)
    assert len(table) == 20_000
    assert all(table.owner_of(cid) == new_by[i][0] for i, cid in enumerate(pool))
    assert sorted(os.listdir(tmp_path)) == ["ids.bin"]
    wins = [sum(1 for w in new_by if w[0] == o) for o in outcomes]
    print("NEW per process:", wins)  # how interleaved the race was (pytest -s)


def _claim_then_die(module_name: str, path: str, pool: list[str], conn) -> None:
    module = importlib.import_module(module_name)
    table = module.SharedIdSet(path, 1000, 7)
    for cid in pool:
        table.claim(cid, 250)
    conn.send(len(table))
    os.kill(os.getpid(), signal.SIGKILL)


def test_claims_outlive_a_sigkill(fast: ModuleType, tmp_path: Path) -> None:
    path = str(tmp_path / "ids.bin")
    pool = ids(300)
    parent, child = FORK.Pipe()
    worker = FORK.Process(target=_claim_then_die, args=(fast.__name__, path, pool, child))
    worker.start()
    child.close()
    assert parent.recv() == 300  # EOFError if the child died first
    worker.join(timeout=30)
    assert worker.exitcode == -signal.SIGKILL
    table = fast.SharedIdSet(path, 1000, 8)
    assert len(table) == 300
    assert all(table.owner_of(cid) == 7 for cid in pool)
    assert table.claim(pool[0], 250) == fast.CLAIM_OTHER
