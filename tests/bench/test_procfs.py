"""rinha.tools.procfs, the one reader of /proc for the tools: against live child processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import namedtuple
from collections.abc import Iterator

import pytest

from rinha.tools import procfs

# a child that does one round of work per line on stdin, answering "done" after each
WORKER = """
import os, sys, time
devnull = os.open(os.devnull, os.O_WRONLY)
print("ready", flush=True)
for _ in sys.stdin:
    for _ in range(200):  # 200 write calls, 200 sleeps
        os.write(devnull, b"x")
        time.sleep(0.001)
    block = b"x" * (8 << 20)  # 8 MiB touched: 2,048 pages faulted in
    del block
    end = time.process_time() + 0.1  # 0.1 s on a CPU
    while time.process_time() < end:
        pass
    print("done", flush=True)
"""


@pytest.fixture
def worker() -> Iterator[subprocess.Popen[str]]:
    with subprocess.Popen(
        [sys.executable, "-c", WORKER, "rinha", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:  # closes the pipes and waits on the way out
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield proc
        proc.kill()


def _round(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == "done\n"


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_counters_of_a_process_grow_with_what_it_does(worker: subprocess.Popen[str]) -> None:
    pid = worker.pid
    before = (
        procfs.cpu_seconds(pid),
        procfs.on_cpu_seconds(pid),
        procfs.minor_faults(pid),
        procfs.voluntary_switches(pid),
        procfs.io_syscalls(pid),
    )
    assert None not in before
    _round(worker)
    after = (
        procfs.cpu_seconds(pid),
        procfs.on_cpu_seconds(pid),
        procfs.minor_faults(pid),
        procfs.voluntary_switches(pid),
        procfs.io_syscalls(pid),
    )
    cpu, on_cpu, faults, switches, syscalls = (
        a - b  # type: ignore[operator]
        for a, b in zip(after, before, strict=True)
    )
    assert 0.05 <= cpu <= 2.0  # s: the 0.1 s spin, sampled at each tick
    assert 0.05 <= on_cpu <= 2.0  # s: the scheduler's own count
    assert faults >= 1000  # the 8 MiB touched
    assert switches >= 100  # the sleeps
    assert syscalls >= 200  # the writes
    user, system = procfs.cpu_times(pid)  # type: ignore[misc]
    assert procfs.cpu_seconds(pid) == pytest.approx(user + system)


def test_rss_and_peak_rss(worker: subprocess.Popen[str]) -> None:
    pid = worker.pid
    _round(worker)  # 8 MiB allocated, then freed
    rss, peak = procfs.rss_bytes(pid), procfs.peak_rss_bytes(pid)
    assert rss is not None and peak is not None
    assert rss > 1 << 20 and peak >= rss + (6 << 20)  # bytes: the freed block still in the peak
    status = procfs.status_bytes(pid)
    assert status is not None and status["VmHWM"] == peak and "RssAnon" in status
    me = procfs.rss_bytes(os.getpid())
    assert me is not None
    # the gone one counts nothing
    assert procfs.total_rss_bytes([pid, os.getpid(), _gone_pid()]) == pytest.approx(
        rss + me, rel=0.05
    )


def test_cmdline_children_and_descendants(worker: subprocess.Popen[str]) -> None:
    assert procfs.cmdline(worker.pid) == [sys.executable, "-c", WORKER, "rinha", "serve"]
    # a child of ours that has a child of its own
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys; subprocess.run(['sleep', '30'])"]
    )
    try:
        deadline = time.monotonic() + 10
        while not (grandchildren := procfs.children(parent.pid)):
            assert time.monotonic() < deadline, "the grandchild did not start"
            time.sleep(0.02)
        mine = procfs.children(os.getpid())
        assert worker.pid in mine and parent.pid in mine and mine == sorted(mine)
        assert grandchildren[0] not in mine
        below = procfs.descendants([parent.pid])
        assert below[0] == parent.pid and grandchildren[0] in below
        everything = procfs.descendants([os.getpid(), parent.pid])
        assert len(everything) == len(set(everything)), "each PID once"
        assert {worker.pid, parent.pid, grandchildren[0]} <= set(everything)
    finally:
        parent.kill()
        parent.wait()


def test_a_gone_process_reads_as_none() -> None:
    pid = _gone_pid()
    for read in (
        procfs.cpu_times,
        procfs.cpu_seconds,
        procfs.rss_bytes,
        procfs.peak_rss_bytes,
        procfs.status_bytes,
        procfs.cmdline,
        procfs.on_cpu_seconds,
        procfs.minor_faults,
        procfs.voluntary_switches,
        procfs.io_syscalls,
    ):
        assert read(pid) is None, read.__name__
    assert procfs.children(pid) == [] and procfs.descendants([pid]) == []
    assert procfs.cgroups(pid) == {}


def test_own_cgroups_name_every_controller_of_the_file() -> None:
    mine = procfs.cgroups()
    with open("/proc/self/cgroup") as f:
        lines = f.read().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if not controllers:  # cgroup v2: `0::/path`
            assert mine[""] == path
        for controller in filter(None, controllers.split(",")):
            assert mine[controller] == path


def test_machine_cpu_times_advance() -> None:
    first = procfs.machine_cpu_times()
    time.sleep(0.1)
    second = procfs.machine_cpu_times()
    assert first is not None and second is not None
    assert 0 <= first[0] <= first[1] and second[1] > first[1]


def test_steal_and_total_from_psutil_cpu_times() -> None:
    # s: user nice system idle iowait irq softirq steal guest guest_nice
    Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")
    assert procfs.steal_and_total(Times(1.0, 0, 0.5, 8.0, 0, 0, 0, 0.5, 0.3, 0)) == (0.5, 10.0)
    # an old kernel without the steal column: psutil has no such field
    Old = namedtuple("Old", "user nice system idle")
    assert procfs.steal_and_total(Old(0.1, 0.2, 0.3, 0.4)) == (0.0, pytest.approx(1.0))


def test_importing_procfs_loads_no_psutil() -> None:
    code = "import sys, rinha.tools.procfs; print('psutil' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
