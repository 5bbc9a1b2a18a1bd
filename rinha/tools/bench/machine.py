"""The machine's own counters during a run: how much CPU time the host gave to other guests.

On a shared VM the hypervisor runs other guests on the same physical cores; the time a vCPU
was ready but not running is the guest's *steal* (`/proc/stat`, read by rinha.tools.procfs:
machine_cpu_times). The p99 of a run follows it whatever runs behind Nginx
(docs/PERFORMANCE.md, set F), so the bench prints it for the run and plots it per second: a
slow second with high steal is the host, not the service.
"""

from __future__ import annotations

import math

from rinha.tools.procfs import CpuTimes


def steal_share(before: CpuTimes | None, after: CpuTimes | None) -> float | None:
    """Share of all CPU time in between that went to other guests (None: nothing to tell)."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def steal_per_bucket(
    readings: list[tuple[float, CpuTimes]], t0: float, bucket_s: float, n: int
) -> list[float | None]:
    """Steal share per bucket of `bucket_s` from t0 (epoch s), from timed readings (epoch s,
    CPU seconds): each interval between two readings counts in the bucket of the later one."""
    steal = [0.0] * n  # s
    total = [0.0] * n  # s
    for (_, a), (t, b) in zip(readings, readings[1:], strict=False):
        i = math.floor((t - t0) / bucket_s)
        if 0 <= i < n and b[1] > a[1]:
            steal[i] += b[0] - a[0]
            total[i] += b[1] - a[1]
    return [s / tot if tot else None for s, tot in zip(steal, total, strict=True)]
