"""rinha.tools.bench.metrics: /metrics fetched over a unix socket and over TCP, as the bench
reaches the instances (addresses parsed by rinha.address.Address)."""

from __future__ import annotations

import http.server
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rinha.tools.bench.metrics import MetricsSampler, connection_for

BODY = (
    b'# TYPE rinha_backlog gauge\nrinha_backlog 3.0\nrinha_processed_total{processor="default"} 7\n'
)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the sampler uses it

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet; a unix peer has no address to print anyway


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _TcpServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """(unix socket path, TCP port) of two /metrics servers."""
    path = str(tmp_path / "m.sock")
    unix = _UnixServer(path, _Handler)
    tcp = _TcpServer(("127.0.0.1", 0), _Handler)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (unix, tcp)]
    for t in threads:
        t.start()
    yield path, tcp.server_address[1]
    for s in (unix, tcp):
        s.shutdown()
        s.server_close()


@pytest.mark.parametrize("form", ["unix:{path}", "http://127.0.0.1:{port}", "127.0.0.1:{port}"])
def test_connection_for_each_address_form(servers: tuple[str, int], form: str) -> None:
    path, port = servers
    conn = connection_for(form.format(path=path, port=port))
    try:
        for _ in range(2):  # the same connection, kept alive
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == BODY
    finally:
        conn.close()


@pytest.mark.parametrize("bad", ["", "unix:", "localhost", "http://h:port", "h:70000"])
def test_connection_for_refuses_what_is_no_address(bad: str) -> None:
    with pytest.raises(ValueError):
        connection_for(bad)


def test_sampler_reads_every_instance(servers: tuple[str, int]) -> None:
    path, port = servers
    sampler = MetricsSampler([f"unix:{path}", f"http://127.0.0.1:{port}"], interval=0.05)
    sampler.start()
    try:
        deadline = time.monotonic() + 5
        while len(sampler.latest()) < 2:
            assert time.monotonic() < deadline, f"no samples ({sampler.errors} errors)"
            time.sleep(0.02)
    finally:
        sampler.stop()
    latest = sampler.latest()
    assert latest[0]["rinha_backlog"] == 3.0 == latest[1]["rinha_backlog"]
    assert latest[1]['rinha_processed_total{processor="default"}'] == 7
    assert sampler.machine, "the machine's steal counters are read at the same pace"
