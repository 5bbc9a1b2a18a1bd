"""Throughput of the Payment Processor emulator: POST /payments from N keep-alive connections.

    # the emulator pinned to core 1, this client to core 0, 64 connections, 5 s:
    python bench/emulator_bench.py --spawn --server-cpu 1 --client-cpu 0 -c 64 -d 5

    # against an emulator already running:
    python bench/emulator_bench.py --url http://127.0.0.1:18001 -c 64 -d 5

The client is a raw asyncio protocol on uvloop (one request in flight per connection, fresh
correlationId per request), so that it costs far less CPU per request than the server.
After the load it times `GET /admin/payments-summary` (with and without bounds) over the
payments just stored.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast
from urllib.parse import urlsplit

from rinha.tools import procfs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _now_iso() -> bytes:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z").encode()


def _content_length(head: bytes) -> int:
    """Content-Length of a response head (without the blank line); 0 if absent."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


class _Client(asyncio.Protocol):
    """One keep-alive connection sending request after request until `stop` is set."""

    transport: asyncio.Transport

    def __init__(
        self, host: str, make_request: Callable[[], bytes], stats: dict, stop: asyncio.Event
    ) -> None:
        self._host = host
        self._make = make_request
        self._stats = stats
        self._stop = stop
        self._buf = b""
        self._sent = 0.0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._send()

    def _send(self) -> None:
        self._sent = time.perf_counter()
        self.transport.write(self._make())

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buf[:end]
            length = _content_length(head)
            if len(self._buf) < end + 4 + length:
                return
            self._buf = self._buf[end + 4 + length :]
            status = int(head[9:12])
            stats = self._stats
            stats["latencies"].append(time.perf_counter() - self._sent)
            stats["status"][status] = stats["status"].get(status, 0) + 1
            if self._stop.is_set():
                self.transport.close()
                return
            self._send()

    def connection_lost(self, exc) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)


async def _load(host: str, port: int, connections: int, duration: float) -> dict:
    loop = asyncio.get_running_loop()
    stats: dict = {"latencies": [], "status": {}}
    stop = asyncio.Event()
    iso_at, iso = 0.0, _now_iso()

    def make_request() -> bytes:
        nonlocal iso_at, iso
        now = time.monotonic()
        if now - iso_at > 0.001:  # requestedAt moves with the clock, one string per ms
            iso_at, iso = now, _now_iso()
        body = b'{"correlationId":"%s","amount":19.90,"requestedAt":"%s"}' % (
            str(uuid.uuid4()).encode(),
            iso,
        )
        return (
            b"POST /payments HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (host.encode(), len(body), body)
        )

    clients = []
    for _ in range(connections):
        _, proto = await loop.create_connection(
            lambda: _Client(host, make_request, stats, stop), host, port
        )
        clients.append(proto)
    await asyncio.sleep(min(1.0, duration / 5))  # warm-up, not counted
    stats["latencies"].clear()
    stats["status"].clear()
    started = time.perf_counter()
    await asyncio.sleep(duration)
    elapsed = time.perf_counter() - started
    done = dict(stats["status"])
    latencies = sorted(stats["latencies"])
    stop.set()
    await asyncio.wait([c.closed for c in clients], timeout=5)
    return {"elapsed": elapsed, "status": done, "latencies": latencies}


async def _summary_latency(host: str, port: int, token: str, count: int) -> dict:
    reader, writer = await asyncio.open_connection(host, port)
    out = {}
    far = "from=2000-01-01T00:00:00.000Z&to=2100-01-01T00:00:00.000Z"
    for label, query in (("unbounded", ""), ("bounded", "?" + far)):
        samples = []
        body = b""
        for _ in range(count):
            t0 = time.perf_counter()
            writer.write(
                b"GET /admin/payments-summary%s HTTP/1.1\r\nHost: %s\r\nX-Rinha-Token: %s\r\n\r\n"
                % (query.encode(), host.encode(), token.encode())
            )
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.readexactly(_content_length(head[:-4]))
            samples.append(time.perf_counter() - t0)
        samples.sort()
        out[label] = (samples[len(samples) // 2], samples[int(len(samples) * 0.99) - 1], body)
    writer.close()
    await writer.wait_closed()
    return out


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process."""
    seconds = procfs.cpu_seconds(pid)
    if seconds is None:
        raise SystemExit(f"the emulator (pid {pid}) is gone")
    return seconds


def _spawn(port: int, cpu: str | None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "rinha.tools.emulator", "--port", str(port)]
    if cpu is not None:
        cmd = ["taskset", "-c", cpu, *cmd]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the startup log line
    if "processor_started" not in line:
        proc.kill()
        raise SystemExit(f"emulator did not start: {line!r}")
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:18001")
    parser.add_argument("-c", "--connections", type=int, default=64)
    parser.add_argument("-d", "--duration", type=float, default=5.0)
    parser.add_argument("--spawn", action="store_true", help="start the emulator on --url's port")
    parser.add_argument("--server-cpu", default="1", help="taskset core for --spawn ('' = none)")
    parser.add_argument(
        "--client-cpu", type=int, default=0, help="core for this client (-1 = none)"
    )
    parser.add_argument("--summary-calls", type=int, default=200)
    parser.add_argument("--token", default="123")
    args = parser.parse_args()

    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    if args.client_cpu >= 0:
        os.sched_setaffinity(0, {args.client_cpu})
    server = _spawn(port, args.server_cpu or None) if args.spawn else None
    try:
        import uvloop

        cpu0, wall0 = (_cpu_seconds(server.pid) if server else 0.0), time.perf_counter()
        result = uvloop.run(_load(host, port, args.connections, args.duration))
        if server is not None:
            busy = (_cpu_seconds(server.pid) - cpu0) / (time.perf_counter() - wall0)
            result["server_cpu"] = busy
        summary = uvloop.run(_summary_latency(host, port, args.token, args.summary_calls))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)

    total = sum(result["status"].values())
    lat = result["latencies"]
    pct = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] * 1000 if lat else float("nan")  # noqa: E731
    print(
        f"POST /payments: {total / result['elapsed']:,.0f} req/s over {result['elapsed']:.1f} s, "
        f"{args.connections} connections, statuses {result['status']}, "
        f"latency p50 {pct(0.5):.2f} ms p99 {pct(0.99):.2f} ms"
        + (f", emulator CPU {result['server_cpu']:.0%}" if "server_cpu" in result else "")
    )
    for label, (p50, p99, body) in summary.items():
        print(
            f"GET /admin/payments-summary ({label}): p50 {p50 * 1000:.3f} ms "
            f"p99 {p99 * 1000:.3f} ms (round trip) -> {body.decode()}"
        )
    return 0 if total and set(result["status"]) <= {200} else 1


if __name__ == "__main__":
    sys.exit(main())
