"""CPU and wake-ups per payment of one instance at a steady arrival rate, code against code.

p99 on this shared 2-core VM follows the other guests on the host (steal time); what one
instance spends per payment moves far less, and it is measured here without k6 or Nginx.
This starts two emulated processors and, for each variant in turn, one instance on a unix
socket; a uvloop client in this process sends POST /payments at `--rate` over
`--connections` keep-alive connections, one request out per connection at a time (as
Nginx's upstream pool does, with the headers Nginx forwards from k6). Once every payment is
answered and processed, it reads from /proc (rinha.tools.procfs) what the instance used
meanwhile:

- on-CPU time, the scheduler's nanosecond count (`/proc/PID/schedstat`);
- the user / system split (`/proc/PID/stat`: sampled at each 4 ms tick on this kernel, so
  only roughly right for a process that runs in short bursts);
- voluntary context switches: how often it went to sleep and was woken.

A variant is `NAME=PATH[:VAR=value,...]`: the instance runs with PYTHONPATH=PATH (a git
worktree with its extension built in place, or `.`) and those settings; `wait=0` does not
wait for the backlog (processors unreachable). `--floor` adds the bench's no-op upstream
(rinha.tools.bench.noop): receiving and answering, nothing else. Each run has a fresh journal
in a temp dir and a fresh id table on tmpfs (/dev/shm), where `rinha up` and Compose put it;
`RINHA_IDS_PATH=` (empty) in a variant puts the table beside the journal, on disk, as a bare
`rinha serve` does. Variants alternate `--rounds` times; medians last. `--wrap 'valgrind
--tool=callgrind ...'` runs the instance under a tool (counts instructions, whatever the
neighbours do; the times are then meaningless).

    python bench/instance_cpu.py --variant new=. --variant old=/tmp/wt-old --floor \\
        [--rate 500] [--seconds 20] [--connections 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from payment_path import nginx_request  # bench/, this script's own folder

from rinha.tools import procfs
from rinha.tools.stack import free_port
from rinha.tools.stack.config import SHM

MEASURES = ("on_cpu_us", "user_us", "system_us", "wakeups", "faults", "syscalls")


def usage(pid: int) -> tuple[float, float, float, int, int, int]:
    """(on-CPU s, user s, system s, voluntary context switches, minor page faults, read and
    write system calls) of a process so far."""
    on_cpu, times = procfs.on_cpu_seconds(pid), procfs.cpu_times(pid)
    woken, faults = procfs.voluntary_switches(pid), procfs.minor_faults(pid)
    syscalls = procfs.io_syscalls(pid)
    if on_cpu is None or times is None or woken is None or faults is None or syscalls is None:
        raise SystemExit(f"the instance (pid {pid}) is gone")
    return on_cpu, times[0], times[1], woken, faults, syscalls


class Client(asyncio.Protocol):
    """One keep-alive connection, one request out at a time."""

    def __init__(self, idle: asyncio.Queue[Client]) -> None:
        self.idle = idle
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.bad = 0  # answers other than 202

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.buffer.endswith(b"\r\n\r\n"):  # a 202 has no body
            if not self.buffer.startswith(b"HTTP/1.1 202"):
                self.bad += 1
            self.buffer = b""
            self.idle.put_nowait(self)

    def send(self) -> None:
        assert self.transport is not None
        self.transport.write(nginx_request())


async def metric(path: str, name: str) -> float:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await reader.read()
    writer.close()
    for line in data.split(b"\r\n\r\n", 1)[1].decode().splitlines():
        key, _, value = line.rpartition(" ")
        if key == name:
            return float(value)
    raise KeyError(name)


async def drive(path: str, rate: int, seconds: float, connections: int) -> tuple[int, int]:
    """Send rate × seconds payments, paced every 2 ms; (sent, answers that were not 202)."""
    loop = asyncio.get_running_loop()
    idle: asyncio.Queue[Client] = asyncio.Queue()
    clients = []
    for _ in range(connections):
        _, client = await loop.create_unix_connection(lambda: Client(idle), path)
        clients.append(client)
        idle.put_nowait(client)
    total = int(rate * seconds)
    started = loop.time()
    sent = 0
    while sent < total:
        due = min(total, int((loop.time() - started) * rate))
        while sent < due:
            (await idle.get()).send()
            sent += 1
        await asyncio.sleep(0.002)
    while idle.qsize() < connections:
        await asyncio.sleep(0.01)
    for client in clients:
        assert client.transport is not None
        client.transport.close()
    return sent, sum(c.bad for c in clients)


async def settled(path: str) -> None:
    while await metric(path, "rinha_backlog") or await metric(path, "rinha_in_flight"):
        await asyncio.sleep(0.05)


def run_variant(
    name: str, spec: str, processors: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    path_part, _, settings = spec.partition(":")
    run_dir = tempfile.mkdtemp(prefix="rinha-cpu-")
    # a fresh id table each run, on tmpfs as `rinha up` and Compose put it (on a disk file
    # system a claim takes a page fault after each writeback)
    ids_dir = tempfile.mkdtemp(prefix="rinha-cpu-ids-", dir=SHM if os.path.isdir(SHM) else None)
    sock = os.path.join(run_dir, "api.sock")
    env = {
        **os.environ,
        "PYTHONPATH": os.path.abspath(path_part),
        "RINHA_BIND": f"unix:{sock}",
        "RINHA_DATA_DIR": os.path.join(run_dir, "data"),  # a fresh journal each run
        "RINHA_IDS_PATH": os.path.join(ids_dir, "ids.bin"),
        "RINHA_LOG_LEVEL": "WARNING",
        "RINHA_DEFAULT_URL": processors[0],
        "RINHA_FALLBACK_URL": processors[1],
    }
    wait = name != "floor"  # the no-op has no backlog to wait for
    for item in filter(None, settings.split(",")):
        key, _, value = item.partition("=")
        if key == "wait":
            wait = value != "0"
        else:
            env[key] = value
    cmd = (
        [sys.executable, "-m", "rinha.tools.bench.noop", "serve"]
        if name == "floor"
        else [sys.executable, "-m", "rinha", "serve"]
    )
    proc = subprocess.Popen(args.wrap.split() + cmd, env=env, cwd=tempfile.gettempdir())
    try:
        while not os.path.exists(sock):
            if proc.poll() is not None:
                raise SystemExit(f"{name}: the instance exited with {proc.returncode}")
            time.sleep(0.05)
        time.sleep(0.5)
        before = usage(proc.pid)
        wall = time.monotonic()
        sent, bad = asyncio.run(drive(sock, args.rate, args.seconds, args.connections))
        if wait:
            asyncio.run(settled(sock))
        after = usage(proc.pid)
        wall = time.monotonic() - wall
    finally:
        proc.terminate()
        proc.wait(120)  # a --wrap tool may take a while to write its output
        shutil.rmtree(run_dir, ignore_errors=True)  # its journal
        shutil.rmtree(ids_dir, ignore_errors=True)
    per_payment = [(a - b) / sent for a, b in zip(after, before, strict=True)]
    return {
        "name": name,
        "sent": sent,
        "bad": bad,
        "wall_s": wall,
        "on_cpu_us": per_payment[0] * 1e6,
        "user_us": per_payment[1] * 1e6,
        "system_us": per_payment[2] * 1e6,
        "wakeups": per_payment[3],
        "faults": per_payment[4],
        "syscalls": per_payment[5],
    }


def line(name: str, r: dict[str, Any]) -> str:
    return (
        f"{name:>10}: {r['on_cpu_us']:6.1f} µs on CPU per payment (ticks: user "
        f"{r['user_us']:.0f}, system {r['system_us']:.0f}), {r['wakeups']:.2f} wake-ups, "
        f"{r['faults']:.2f} page faults, {r['syscalls']:.2f} read/write calls"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=PATH[:VAR=v,...]")
    parser.add_argument("--floor", action="store_true", help="add the no-op upstream")
    parser.add_argument("--rate", type=int, default=500, help="payments per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--wrap",
        default="",
        help="command prefix for the instance, e.g. "
        "'valgrind --tool=callgrind' (instruction counts, not seconds)",
    )
    args = parser.parse_args()
    variants = [tuple(v.split("=", 1)) for v in args.variant] or [("current", ".")]
    if args.floor:
        variants.append(("floor", "."))
    ports = [free_port(), free_port()]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "rinha", "processor", "--port", str(port), "--fee", fee],
            stdout=subprocess.DEVNULL,
        )
        for port, fee in zip(ports, ("0.05", "0.15"), strict=True)
    ]
    processors = [f"http://127.0.0.1:{port}" for port in ports]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
    try:
        time.sleep(1.0)
        for round_ in range(args.rounds):
            for name, spec in variants:
                r = run_variant(name, spec, processors, args)
                results[name].append(r)
                print(
                    f"round {round_ + 1} {line(name, r)}; {r['sent']} sent, "
                    f"{r['bad']} not 202, {r['wall_s']:.1f} s",
                    flush=True,
                )
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    print(
        f"\nmedians of {args.rounds} rounds, {args.rate}/s for {args.seconds:g} s over "
        f"{args.connections} connections:"
    )
    for name, runs in results.items():
        print("  " + line(name, {k: statistics.median(r[k] for r in runs) for k in MEASURES}))


if __name__ == "__main__":
    main()
