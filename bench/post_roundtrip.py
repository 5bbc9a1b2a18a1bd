"""POST /payments round trip on loopback: one keep-alive connection, sequential requests.

Starts two emulated processors and one `rinha serve` (TCP, or a unix socket with --unix) as
subprocesses, then times N requests from a blocking socket client (the client's own overhead
is a few µs). Prints median / p90 / p99 / max in µs.

    python bench/post_roundtrip.py [-n 20000] [--unix]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from rinha.tools.stack import free_port


def wait_connect(family: int, address: object, timeout: float = 10.0) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.connect(address)
            return sock
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--unix", action="store_true", help="serve on a unix socket")
    args = parser.parse_args()
    procs = []
    ports = [free_port(), free_port()]
    for port, fee in zip(ports, ("0.05", "0.15"), strict=True):
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "rinha", "processor", "--port", str(port), "--fee", fee],
                stdout=subprocess.DEVNULL,
            )
        )
    tmp = tempfile.mkdtemp()
    if args.unix:
        bind = f"unix:{tmp}/api.sock"
        family, address = socket.AF_UNIX, f"{tmp}/api.sock"
    else:
        port = free_port()
        bind = f"127.0.0.1:{port}"
        family, address = socket.AF_INET, ("127.0.0.1", port)
    env = {
        **os.environ,
        "RINHA_BIND": bind,
        "RINHA_LOG_LEVEL": "WARNING",
        "RINHA_DEFAULT_URL": f"http://127.0.0.1:{ports[0]}",
        "RINHA_FALLBACK_URL": f"http://127.0.0.1:{ports[1]}",
    }
    procs.append(subprocess.Popen([sys.executable, "-m", "rinha", "serve"], env=env))
    try:
        sock = wait_connect(family, address)
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        samples = []
        for i in range(args.n + 500):
            body = b'{"correlationId":"%s","amount":19.90}' % str(uuid.uuid4()).encode()
            request = (
                b"POST /payments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            started = time.perf_counter_ns()
            sock.sendall(request)
            answer = sock.recv(4096)
            elapsed = time.perf_counter_ns() - started
            assert answer.startswith(b"HTTP/1.1 202"), answer
            if i >= 500:  # warm-up excluded
                samples.append(elapsed / 1000)
        samples.sort()
        q = statistics.quantiles(samples, n=100)
        print(
            f"POST /payments round trip over {'unix socket' if args.unix else 'TCP'}, "
            f"n={args.n}: median {statistics.median(samples):.1f} µs, p90 {q[89]:.1f} µs, "
            f"p99 {q[98]:.1f} µs, max {samples[-1]:.1f} µs"
        )
    finally:
        for proc in reversed(procs):  # the service first: it drains into the processors
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
