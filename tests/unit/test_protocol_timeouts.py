"""Header/body and keep-alive idle timeouts of the client connections, on uvloop and stdlib
asyncio: through a fake transport, and once through a real socket."""

from __future__ import annotations

import asyncio
import re

import pytest
from fake_transport import FakeTransport

from rinha import fast
from rinha import protocol as protocol_module
from rinha.app import App
from rinha.config import Config
from rinha.protocol import HttpProtocol

# small timeouts: the sweep then runs every 50 ms (a quarter of the smallest)
HEADER_MS = 200
IDLE_MS = 300
QUIET = {"dispatch_tick_ms": 3_600_000}  # the dispatcher never sends: no processor needed
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def make_app(tmp_path, **settings) -> App:  # type: ignore[no-untyped-def]
    # one implementation of the hot paths is enough here: these tests are about time
    values = {"header_timeout_ms": HEADER_MS, "idle_timeout_ms": IDLE_MS, **QUIET, **settings}
    values.setdefault("max_ids", 10_000)  # a small id table file per App
    return App(Config(data_dir=str(tmp_path), **values), fast)


@pytest.fixture
async def app(tmp_path):
    app = make_app(tmp_path)
    yield app
    await app.close()


def connect(app: App) -> tuple[HttpProtocol, FakeTransport, float]:
    protocol = HttpProtocol(app)
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport, asyncio.get_running_loop().time()


def statuses(transport: FakeTransport) -> list[bytes]:
    return re.findall(rb"HTTP/1\.1 (\d{3}) ", bytes(transport.data))


async def wait_closed(transport: FakeTransport, within_s: float = 2.0) -> None:
    async with asyncio.timeout(within_s):
        while transport.closed_at is None:
            await asyncio.sleep(0.01)


async def test_half_a_header_then_silence_gets_408_and_a_close(app):
    protocol, transport, start = connect(app)
    protocol.data_received(HEALTHZ[:20])
    await asyncio.sleep(0.15)
    assert transport.data == b"" and transport.closed_at is None  # not yet
    await wait_closed(transport)
    assert statuses(transport) == [b"408"]
    assert b"request not received in time" in transport.data
    # never early; late by at most two sweep periods (the coarse clock's and the sweep's)
    assert HEADER_MS / 1000 <= transport.closed_at - start < HEADER_MS / 1000 + 0.3
    protocol.data_received(HEALTHZ)  # the rest, too late: ignored
    assert statuses(transport) == [b"408"]


async def test_a_body_that_never_completes_gets_408(app):
    protocol, transport, _ = connect(app)
    protocol.data_received(b'POST /payments HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{"a')
    await wait_closed(transport)
    assert statuses(transport) == [b"408"]
    assert app.dispatcher.backlog == 0


async def test_the_timeout_is_per_request_not_per_byte(app):
    protocol, transport, start = connect(app)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40 + b"\r\n\r\n"
    for i in range(len(head)):  # one byte every 50 ms: 3 s for the whole head
        protocol.data_received(head[i : i + 1])
        await asyncio.sleep(0.05)
        if transport.closed_at is not None:
            break
    assert statuses(transport) == [b"408"]
    assert transport.closed_at - start < HEADER_MS / 1000 + 0.35


async def test_an_idle_keep_alive_connection_is_closed_without_an_answer(app):
    protocol, transport, _ = connect(app)
    protocol.data_received(HEALTHZ)
    answered = asyncio.get_running_loop().time()
    assert statuses(transport) == [b"200"]
    await wait_closed(transport)
    assert statuses(transport) == [b"200"]  # an idle close writes nothing
    assert IDLE_MS / 1000 <= transport.closed_at - answered < IDLE_MS / 1000 + 0.3
    assert not transport.aborted


async def test_a_connection_that_never_sends_is_idle(app):
    _, transport, start = connect(app)
    await wait_closed(transport)
    assert transport.data == b""
    assert IDLE_MS / 1000 <= transport.closed_at - start < IDLE_MS / 1000 + 0.3


async def test_requests_in_turn_keep_a_connection_open(app):
    protocol, transport, _ = connect(app)
    for _ in range(10):  # 1 s in all, longer than both timeouts; never idle that long
        protocol.data_received(HEALTHZ)
        await asyncio.sleep(0.1)
    assert transport.closed_at is None
    assert statuses(transport) == [b"200"] * 10


async def test_a_pending_deferred_answer_is_not_idle(tmp_path):
    app = make_app(tmp_path, peers=("unix:/nonexistent",))
    release = asyncio.Event()

    async def slow_peer_counts(from_ms, to_ms):  # type: ignore[no-untyped-def]
        await release.wait()
        return (1, 100, 0, 0)

    app.cluster.peer_counts = slow_peer_counts  # type: ignore[method-assign]
    protocol, transport, _ = connect(app)
    protocol.data_received(b"GET /payments-summary HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(3 * IDLE_MS / 1000)
    assert transport.closed_at is None and transport.data == b""
    release.set()
    await asyncio.sleep(0.01)
    answered = asyncio.get_running_loop().time()
    assert statuses(transport) == [b"200"]
    await wait_closed(transport)  # idle from the answer on
    assert IDLE_MS / 1000 - 0.02 <= transport.closed_at - answered < IDLE_MS / 1000 + 0.3
    await app.close()


async def test_a_client_that_never_reads_its_last_answer_is_aborted(app):
    protocol, transport, _ = connect(app)
    protocol.data_received(HEALTHZ[:-2] + b"Connection: close\r\n\r\n")
    assert transport.closed_at is not None and not transport.aborted
    # connection_lost never comes (the client does not read): the socket is let go anyway
    await asyncio.sleep(HEADER_MS / 1000 + 0.4)
    assert transport.aborted


async def test_one_sweep_for_all_connections_and_none_when_they_are_gone(app):
    loop = asyncio.get_running_loop()
    conns = [connect(app) for _ in range(50)]
    watch = protocol_module._WATCHES[loop]
    assert watch.connections == {p for p, _, _ in conns}
    assert watch.period == pytest.approx(min(HEADER_MS, IDLE_MS) / 4000)
    first_timer = watch.timer
    assert first_timer is not None
    for protocol, _, _ in conns:
        protocol.connection_lost(None)
    assert watch.timer is None and loop not in protocol_module._WATCHES


async def test_timeouts_through_a_real_socket(app):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpProtocol(app), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    writers: list[asyncio.StreamWriter] = []
    try:
        # keep-alive, then idle: answered, then closed (EOF)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
        writer.write(HEALTHZ)
        start = loop.time()
        data = await asyncio.wait_for(reader.read(), 2.0)  # until EOF
        assert data.startswith(b"HTTP/1.1 200 ") and data.count(b"HTTP/1.1") == 1
        assert loop.time() - start >= IDLE_MS / 1000
        # half a header: 408, then EOF
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
        writer.write(HEALTHZ[:10])
        data = await asyncio.wait_for(reader.read(), 2.0)
        assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        await asyncio.sleep(0.05)
        assert loop not in protocol_module._WATCHES  # both gone: no sweep left running
    finally:
        for writer in writers:  # else, on a failure, wait_closed would wait for them
            writer.transport.abort()
        server.close()
        await asyncio.wait_for(server.wait_closed(), 2.0)
