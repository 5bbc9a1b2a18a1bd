"""Every read of /proc the tools make, in one place: the stack (Nginx's workers), the bench (CPU,
memory and command line of the backend, the machine's steal, our own cgroups) and the scripts
of bench/.

psutil does the reading where it has the counter; the few it lacks on Linux are plain reads
here: peak RSS and the other `kB` lines of /proc/PID/status, the scheduler's on-CPU time
(/proc/PID/schedstat), minor page faults (/proc/PID/stat) and the cgroups of a process
(/proc/PID/cgroup). psutil is imported by the functions that use it: importing this module is
cheap, and the service never does.

A per-process function returns None for a process that is gone (or not ours to read).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

CpuTimes = tuple[float, float]  # (steal, total) seconds of all CPUs since boot


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:  # gone, or not ours
        return None


# -- one process, through psutil ------------------------------------------------------------


def _process_call(pid: int, method: str) -> Any:
    """psutil.Process(pid).<method>(), or None when the process is gone or not ours."""
    import psutil

    try:
        return getattr(psutil.Process(pid), method)()
    except psutil.Error:
        return None


def cpu_times(pid: int) -> tuple[float, float] | None:
    """(user, system) CPU seconds of a process so far (sampled at each scheduler tick)."""
    t = _process_call(pid, "cpu_times")
    return None if t is None else (t.user, t.system)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far."""
    t = cpu_times(pid)
    return None if t is None else t[0] + t[1]


def rss_bytes(pid: int) -> int | None:
    """Resident set size of a process now, bytes."""
    m = _process_call(pid, "memory_info")
    return None if m is None else int(m.rss)


def total_rss_bytes(pids: Iterable[int]) -> int:
    """Sum of the RSS of `pids` still alive (shared pages counted once per process: an upper
    bound), bytes."""
    return sum(r for pid in pids if (r := rss_bytes(pid)) is not None)


def cmdline(pid: int) -> list[str] | None:
    """The argv of a process."""
    argv = _process_call(pid, "cmdline")
    return None if argv is None else list(argv)


def voluntary_switches(pid: int) -> int | None:
    """How often the process went to sleep on its own (and was woken) so far."""
    c = _process_call(pid, "num_ctx_switches")
    return None if c is None else int(c.voluntary)


def io_syscalls(pid: int) -> int | None:
    """read and write system calls of the process so far."""
    io = _process_call(pid, "io_counters")
    return None if io is None else int(io.read_count + io.write_count)


def children(pid: int) -> list[int]:
    """PIDs whose parent is pid (Nginx workers of a master), sorted; [] if pid is gone."""
    procs = _process_call(pid, "children")
    return sorted(p.pid for p in procs or ())


def descendants(pids: Iterable[int]) -> list[int]:
    """`pids` still alive and every process below them (nginx workers, forked children)."""
    import psutil

    seen: list[int] = []
    for pid in pids:
        try:
            below = [p.pid for p in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            continue
        seen.extend(p for p in (pid, *below) if p not in seen)
    return seen


# -- one process, plain reads (psutil has no such counter on Linux) ------------------------


def status_bytes(pid: int) -> dict[str, int] | None:
    """The `kB` lines of /proc/PID/status (VmRSS, VmHWM, RssAnon, RssFile, …) in bytes."""
    text = _read(f"/proc/{pid}/status")
    if text is None:
        return None
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            out[key] = int(parts[0]) * 1024
    return out


def peak_rss_bytes(pid: int) -> int | None:
    """The highest RSS the process has had (VmHWM), bytes."""
    status = status_bytes(pid)
    return None if status is None else status.get("VmHWM")


def on_cpu_seconds(pid: int) -> float | None:
    """Time the process ran on a CPU, the scheduler's nanosecond count (not tick-sampled)."""
    text = _read(f"/proc/{pid}/schedstat")
    return None if text is None else int(text.split()[0]) / 1e9


def minor_faults(pid: int) -> int | None:
    """Minor page faults of the process so far."""
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    # pid (comm) state ppid …: comm may hold spaces, so split after the last ')'
    return int(text[text.rindex(")") + 2 :].split()[7])


def cgroups(pid: int | str = "self") -> dict[str, str]:
    """controller → path of the process's cgroups, from /proc/PID/cgroup: v1 lines
    `N:cpu,cpuacct:/path` give one entry per controller, the v2 line `0::/path` the key ""."""
    out: dict[str, str] = {}
    for line in (_read(f"/proc/{pid}/cgroup") or "").splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(","):  # the v2 line's empty list gives the one key ""
            out[c] = path
    return out


# -- the machine ---------------------------------------------------------------------------


def steal_and_total(times: Any) -> CpuTimes:
    """(steal, total) seconds from psutil.cpu_times(): total is user … steal (guest time is
    inside user already); a kernel without the steal column has none."""
    steal = float(getattr(times, "steal", 0.0))
    fields = ("user", "nice", "system", "idle", "iowait", "irq", "softirq")
    return steal, sum(float(getattr(times, f, 0.0)) for f in fields) + steal


def machine_cpu_times() -> CpuTimes | None:
    """(steal, total) CPU seconds of all CPUs since boot; None where they cannot be read."""
    import psutil

    try:
        return steal_and_total(psutil.cpu_times())
    except (OSError, psutil.Error):
        return None
