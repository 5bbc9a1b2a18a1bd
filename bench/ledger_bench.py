"""Ledger and IdSet micro-benchmark: compiled `rinha._fast` vs the pure-Python reference and a
linear scan. Not a test; run `python bench/ledger_bench.py [--entries N]`.

The ledger gets nearly sorted inserts (most in order, 5 % a few ms late, 0.1 % seconds late), as
concurrent completions deliver them. The linear scan is a plain Python loop over two lists
(time, cents) that hold the same entries, i.e. what a summary costs without the index.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable

from rinha import _fast, _reference


def nearly_sorted(n: int, rng: random.Random) -> list[tuple[int, int]]:
    entries = []
    now = 1_752_582_896_000
    for _ in range(n):
        now += rng.choice((0, 0, 1, 1, 2))  # ~1 payment per ms, many sharing a ms
        late = rng.random()
        ms = now - rng.randint(1, 50) if late < 0.05 else now
        if late < 0.001:
            ms = now - rng.randint(1000, 5000)
        entries.append((ms, 1990))
    return entries


def per_op_ns(run: Callable[[], object], ops: int) -> float:
    gc.disable()
    try:
        start = time.perf_counter_ns()
        run()
        return (time.perf_counter_ns() - start) / ops
    finally:
        gc.enable()


def median_query_us(
    summary: Callable[[int, int], object], ranges: list[tuple[int, int]], batch: int
) -> float:
    """Median over batches of the mean time per query (a batch amortises the timer)."""
    samples = []
    gc.disable()
    try:
        for i in range(0, len(ranges), batch):
            chunk = ranges[i : i + batch]
            start = time.perf_counter_ns()
            for lo, hi in chunk:
                summary(lo, hi)
            samples.append((time.perf_counter_ns() - start) / len(chunk) / 1000)
    finally:
        gc.enable()
    return statistics.median(samples)


def linear_scan(times: list[int], cents: list[int]) -> Callable[[int, int], tuple[int, int]]:
    def summary(lo: int, hi: int) -> tuple[int, int]:
        count = total = 0
        for ms, c in zip(times, cents, strict=True):
            if lo <= ms <= hi:
                count += 1
                total += c
        return count, total

    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    n = args.entries
    rows: list[tuple[str, str, str]] = []

    entries = nearly_sorted(n, rng)
    out_of_order = sum(1 for a, b in zip(entries, entries[1:], strict=False) if b[0] < a[0])
    compiled, reference = _fast.Ledger(), _reference.Ledger()

    def fill(ledger: _fast.Ledger | _reference.Ledger) -> None:
        for ms, c in entries:
            ledger.add(ms, c)

    rows.append(
        (
            "Ledger.add",
            f"{per_op_ns(lambda: fill(compiled), n):,.0f} ns",
            f"{per_op_ns(lambda: fill(reference), n):,.0f} ns",
        )
    )
    rows.append(
        ("bytes per entry", f"{compiled.nbytes / n:.1f}", f"{reference.nbytes / n:.1f} (approx.)")
    )

    first, last = min(e[0] for e in entries), max(e[0] for e in entries)
    ranges = [
        tuple(sorted((rng.randint(first, last), rng.randint(first, last))))
        for _ in range(args.queries)
    ]
    for lo, hi in ranges[:200]:
        assert compiled.summary(lo, hi) == reference.summary(lo, hi)
    us = median_query_us
    fast_range = us(compiled.summary, ranges, 100)
    ref_range = us(reference.summary, ranges[:200], 10)
    rows.append(("summary, random range", f"{fast_range:.3f} µs", f"{ref_range:,.0f} µs"))
    window = [
        (t - 15_000, t - 1_500)
        for t in (rng.randint(first + 15_000, last) for _ in range(args.queries))
    ]
    fast_window = us(compiled.summary, window, 100)
    ref_window = us(reference.summary, window[:200], 10)
    rows.append(("summary, 13.5 s window", f"{fast_window:.3f} µs", f"{ref_window:,.0f} µs"))
    times = sorted(e[0] for e in entries)
    scan = linear_scan(times, [e[1] for e in entries])
    assert scan(*ranges[0]) == compiled.summary(*ranges[0])
    rows.append(("linear scan (Python loop)", "", f"{us(scan, ranges[:7], 1):,.0f} µs"))

    ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(n)]
    misses = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(n)]
    idset, pyset = _fast.IdSet(), _reference.IdSet()

    def add_all(target: _fast.IdSet | _reference.IdSet) -> None:
        for cid in ids:
            target.add(cid)

    def probe(target: _fast.IdSet | _reference.IdSet, keys: list[str]) -> None:
        for cid in keys:
            cid in target  # noqa: B015 - timing membership

    rows.append(
        (
            "IdSet.add",
            f"{per_op_ns(lambda: add_all(idset), n):,.0f} ns",
            f"{per_op_ns(lambda: add_all(pyset), n):,.0f} ns",
        )
    )
    rows.append(
        (
            "IdSet contains (hit)",
            f"{per_op_ns(lambda: probe(idset, ids), n):,.0f} ns",
            f"{per_op_ns(lambda: probe(pyset, ids), n):,.0f} ns",
        )
    )
    rows.append(
        (
            "IdSet contains (miss)",
            f"{per_op_ns(lambda: probe(idset, misses), n):,.0f} ns",
            f"{per_op_ns(lambda: probe(pyset, misses), n):,.0f} ns",
        )
    )
    rows.append(
        (
            "bytes per id",
            f"{idset.nbytes / len(idset):.1f}",
            f"{pyset.nbytes / len(pyset):.1f} (approx.)",
        )
    )
    baseline = per_op_ns(lambda: probe(set(), ids[:1000]), 1000)  # loop + call overhead
    print(
        f"Python {sys.version.split()[0]}, {n:,} entries, {out_of_order:,} inserted out of "
        f"order; times are per operation, Python loop overhead (~{baseline:.0f} ns) included"
    )
    print(f"{'operation':<28}{'compiled _fast':>18}{'reference':>22}")
    for name, ours, theirs in rows:
        print(f"{name:<28}{ours:>18}{theirs:>22}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
