"""Resident memory of one instance after N payments (default 1,000,000) went all the way through.

Starts two emulated processors and one `rinha serve`, pushes N payments through
POST /payments (pipelined, several connections) no faster than they are processed (each
sender waits while the backlog is above --max-backlog: the steady state of a service that
keeps up, not a queue of a million), waits until every one is processed, and prints the
instance's VmRSS / VmHWM (peak) from /proc (rinha.tools.procfs), with the ledger size from /metrics.

    python bench/memory_1m.py [-n 1000000] [--connections 4] [--pipeline 64]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from rinha.tools import procfs
from rinha.tools.stack import free_port


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM (peak), RssAnon and RssFile of the instance, MB, from one read."""
    status = procfs.status_bytes(pid)
    if status is None:
        raise SystemExit(f"the instance (pid {pid}) is gone")
    return {f: status.get(f, 0) / 2**20 for f in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}


def metrics(path: str) -> dict[str, float]:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    body = data.split(b"\r\n\r\n", 1)[1].decode()
    return {
        k: float(v)
        for k, v in (
            line.rsplit(" ", 1) for line in body.splitlines() if line and not line.startswith("#")
        )
    }


def push(path: str, count: int, pipeline: int, max_backlog: int) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        sent = 0
        while sent < count:
            if sent % (pipeline * 16) == 0:
                while metrics(path)["rinha_backlog"] > max_backlog:
                    time.sleep(0.01)
            batch = min(pipeline, count - sent)
            parts = []
            for _ in range(batch):
                body = b'{"correlationId":"%s","amount":19.90}' % str(uuid.uuid4()).encode()
                parts.append(
                    b"POST /payments HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body)
                )
            s.sendall(b"".join(parts))
            answers = 0
            buffer = b""
            while answers < batch:
                buffer += s.recv(65536)
                answers = buffer.count(b"HTTP/1.1 202")
            sent += batch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--pipeline", type=int, default=64)
    parser.add_argument("--max-backlog", type=int, default=5_000)
    args = parser.parse_args()
    ports = [free_port(), free_port()]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "rinha", "processor", "--port", str(port), "--fee", fee],
            stdout=subprocess.DEVNULL,
        )
        for port, fee in zip(ports, ("0.05", "0.15"), strict=True)
    ]
    run_dir = tempfile.mkdtemp()
    sock = os.path.join(run_dir, "api.sock")
    env = {
        **os.environ,
        "RINHA_BIND": f"unix:{sock}",
        "RINHA_LOG_LEVEL": "WARNING",
        "RINHA_DATA_DIR": os.path.join(run_dir, "data"),
        "RINHA_MAX_IDS": str(max(args.n, 1_000_000)),
        "RINHA_DEFAULT_URL": f"http://127.0.0.1:{ports[0]}",
        "RINHA_FALLBACK_URL": f"http://127.0.0.1:{ports[1]}",
    }
    server = subprocess.Popen([sys.executable, "-m", "rinha", "serve"], env=env)
    procs.append(server)
    try:
        while not os.path.exists(sock):
            time.sleep(0.05)
        time.sleep(0.5)
        rss_start = memory_mb(server.pid)["VmRSS"]
        started = time.monotonic()
        share = args.n // args.connections
        push_args = (sock, share, args.pipeline, args.max_backlog)
        threads = [threading.Thread(target=push, args=push_args) for _ in range(args.connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = share * args.connections
        while True:
            m = metrics(sock)
            if m["rinha_ledger_entries"] >= total and m["rinha_backlog"] == 0:
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        print(
            f"payments processed: {int(m['rinha_ledger_entries'])} in {elapsed:.0f} s "
            f"({total / elapsed:.0f}/s end to end)"
        )
        mb = memory_mb(server.pid)
        print(
            f"instance RSS: at start {rss_start:.1f} MB, after {mb['VmRSS']:.1f} MB, peak (VmHWM) "
            f"{mb['VmHWM']:.1f} MB; of which the process's own (RssAnon) {mb['RssAnon']:.1f} MB"
            f" and mapped files (RssFile: the id table shared by the cluster) "
            f"{mb['RssFile']:.1f} MB"
        )
        print(f"journal: {m['rinha_journal_bytes'] / 2**20:.1f} MiB")
    finally:  # (Ctrl-C reaches here; a plain SIGTERM would orphan the children)
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
