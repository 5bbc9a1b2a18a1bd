"""The rendered Nginx config, run for real in front of scripted upstreams on unix sockets:
the summaries' cap, and an instance that refuses connections (down, restarting)."""

from __future__ import annotations

import os
import select
import socket
import socketserver
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rinha.tools.stack import NginxNotFound, find_nginx, free_port, render_nginx_conf

SUMMARY = (
    b'{"default":{"totalRequests":0,"totalAmount":0},'
    b'"fallback":{"totalRequests":0,"totalAmount":0}}'
)


class _Handler(socketserver.StreamRequestHandler):
    """HTTP/1.1 keep-alive, just enough: POST → 202; GET /payments-summary waits for
    `release`, then 200."""

    server: _Server

    def handle(self) -> None:
        while True:
            head = self.rfile.readline()
            if not head:
                return
            method, path, _ = head.decode().split(" ", 2)
            length = 0
            while (line := self.rfile.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            self.rfile.read(length)
            owner = self.server.owner
            with owner.lock:
                owner.requests.append((method, path))
            if path.startswith("/payments-summary"):
                with owner.lock:
                    owner.held += 1
                owner.release.wait(30)
                self.wfile.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(SUMMARY), SUMMARY)
                )
            else:
                self.wfile.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    request_queue_size = 512  # Nginx opens dozens at once: a full backlog refuses connect()
    owner: Upstream

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client gone at teardown (broken pipe) is no failure of the test


class Upstream:
    """A stand-in instance on a unix socket, in threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self.held = 0
        self.release = threading.Event()
        self.server: _Server | None = None

    def start(self) -> None:
        if self.path.exists():
            self.path.unlink()  # a stale socket, as an instance's listen() does
        self.server = _Server(str(self.path), _Handler)
        self.server.owner = self
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def posts(self) -> int:
        with self.lock:
            return sum(1 for method, _ in self.requests if method == "POST")


def _stale_socket(path: Path) -> None:
    """A socket file nobody listens on (an instance killed): connect() is refused."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))


@pytest.fixture
def nginx_in_front(tmp_path: Path) -> Iterator[tuple[str, list[Upstream]]]:
    try:
        nginx = find_nginx()
    except NginxNotFound as exc:
        pytest.skip(f"{exc} (CI installs it)")
    ups = [Upstream(tmp_path / "api1.sock"), Upstream(tmp_path / "api2.sock")]
    port = free_port()
    (tmp_path / "temp").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        render_nginx_conf(
            [f"unix:{u.path}" for u in ups],
            listen=f"127.0.0.1:{port}",
            pid=str(tmp_path / "nginx.pid"),
            temp=str(tmp_path / "temp"),
            user="root" if os.geteuid() == 0 else None,
        ),
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [nginx, "-e", "stderr", "-p", str(tmp_path), "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "nginx did not listen"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", ups
    finally:
        for u in ups:
            u.stop()
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


def post(url: str) -> int:
    req = urllib.request.Request(
        url + "/payments",
        data=b'{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3","amount":19.9}',
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code


def test_a_summary_flood_is_capped_and_payments_still_pass(
    nginx_in_front: tuple[str, list[Upstream]],
) -> None:
    url, ups = nginx_in_front
    for u in ups:
        u.start()
    port = int(url.rsplit(":", 1)[1])
    flood = 80
    clients = []
    try:
        for _ in range(flood):
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            c.sendall(b"GET /payments-summary HTTP/1.1\r\nHost: x\r\n\r\n")
            clients.append(c)
        deadline = time.monotonic() + 10
        while sum(u.held for u in ups) < 64 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # any 65th would have arrived by now
        assert sum(u.held for u in ups) == 64, "64 summaries at once reach the instances"
        # the rest were answered 503 at once, while the 64 are still held
        answered = set(select.select(clients, [], [], 0.5)[0])
        held = [c for c in clients if c not in answered]
        for c in answered:
            answer = c.recv(4096)
            assert answer.startswith(b"HTTP/1.1 503"), answer[:40]
        assert len(held) == 64, f"{flood - len(held)} answered 503 at once, not {flood - 64}"
        # the payments' path is untouched by the flood
        for _ in range(20):
            assert post(url) == 202
        assert sum(u.posts() for u in ups) == 20
        for u in ups:
            u.release.set()
        ok = 0
        for c in held:
            c.settimeout(5)
            ok += c.recv(4096).startswith(b"HTTP/1.1 200")
        assert ok == 64
    finally:
        for c in clients:
            c.close()


def test_an_instance_refusing_connections_loses_no_post_and_is_used_again_soon(
    nginx_in_front: tuple[str, list[Upstream]],
) -> None:
    url, (down, up) = nginx_in_front
    _stale_socket(down.path)  # api1: killed, its socket file left behind
    up.start()
    for _ in range(50):
        assert post(url) == 202, "a refused connect() goes to the other instance, POST or not"
    assert up.posts() == 50
    down.start()  # api1 restarted: back in use after fail_timeout (1 s), not 10 s
    deadline = time.monotonic() + 3
    while down.posts() == 0:
        assert time.monotonic() < deadline, "the restarted instance got no request in 3 s"
        assert post(url) == 202
        time.sleep(0.02)
