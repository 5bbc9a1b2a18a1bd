"""The keep-alive client against a real socket server whose behaviour each test scripts."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Awaitable, Callable

import loopback
import pytest
from loopback import answers_read_by  # noqa: F401  (an autouse fixture)

from rinha import http_client
from rinha.http_client import (
    Address,
    ConnectFailed,
    HttpPool,
    OutcomeUnknown,
    build_request,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


def Server(handler: Handler) -> loopback.Server:  # noqa: N802  (used as the class was)
    """The shared loopback server, with this module's (reader, writer) handlers."""
    return loopback.Server(lambda _server, reader, writer: handler(reader, writer))


async def read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")  # our test requests have no body


async def answer_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()


def answer_once(response: bytes) -> Handler:
    """A handler that answers one request with `response` (which closes the connection)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response)
        await writer.drain()

    return handler


def get(pool: HttpPool) -> bytes:
    return build_request("GET", "/x", pool.address)


async def test_answers_and_reuses_the_connection():
    async with Server(answer_each) as server:
        pool = HttpPool(server.url)
        for _ in range(3):
            assert await pool.request(get(pool), 1.0) == (200, b"hello")
        assert server.connections == 1
        pool.close()


async def test_connection_close_answer_is_not_reused():
    async with Server(
        answer_once(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
    ) as server:
        pool = HttpPool(server.url)
        assert await pool.request(get(pool), 1.0) == (204, b"")
        assert await pool.request(get(pool), 1.0) == (204, b"")
        assert server.connections == 2
        pool.close()


async def test_no_answer_in_time_is_unknown_and_the_connection_is_dropped():
    calls = 0

    async def silent_first(reader, writer):
        nonlocal calls
        calls += 1
        if calls == 1:
            await read_request(reader)
            await reader.read()  # never answers; returns at EOF when the client gives up
            return
        await answer_each(reader, writer)

    async with Server(silent_first) as server:
        pool = HttpPool(server.url)
        with pytest.raises(OutcomeUnknown, match="no answer in time"):
            await pool.request(get(pool), 0.05)
        assert await pool.request(get(pool), 1.0) == (200, b"hello")
        assert server.connections == 2  # the timed-out connection was not reused
        pool.close()


async def test_each_request_times_out_at_its_own_deadline_on_one_shared_timer():
    async def never_answers(reader, writer):
        await reader.read()  # returns at EOF, when the client gives up

    loop = asyncio.get_running_loop()
    async with Server(never_answers) as server:
        pool = HttpPool(server.url)
        outcomes: dict[str, float] = {}

        def recorder(name: str):  # type: ignore[no-untyped-def]
            def done(status: int, body: bytes, error: object) -> None:
                assert isinstance(error, OutcomeUnknown) and "no answer in time" in str(error)
                outcomes[name] = loop.time() - start

            return done

        start = loop.time()
        pool.send(get(pool), 0.30, recorder("long"))
        pool.send(get(pool), 0.30, recorder("long too"))
        while len(pool._out) < 2:  # both connected and written
            await asyncio.sleep(0.005)
        first_timer = pool._sweep_timer
        pool.send(get(pool), 0.05, recorder("short"))  # due earlier: the one timer moves up
        while len(pool._out) < 3:
            await asyncio.sleep(0.005)
        assert pool._sweep_timer is not first_timer
        await asyncio.sleep(0.15)
        assert set(outcomes) == {"short"} and 0.04 <= outcomes["short"] < 0.15
        await asyncio.sleep(0.3)
        assert set(outcomes) == {"short", "long", "long too"}
        assert all(0.29 <= outcomes[k] < 0.45 for k in ("long", "long too"))
        assert pool._out == set() and pool._sweep_timer is None  # nothing out: no timer left
        pool.close()


async def test_connection_lost_mid_answer_is_unknown():
    async with Server(answer_once(OK[:-2])) as server:
        pool = HttpPool(server.url)
        with pytest.raises(OutcomeUnknown, match="connection lost"):
            await pool.request(get(pool), 1.0)
        pool.close()


async def test_refused_connection_is_connect_failed_and_never_synchronous():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    pool = HttpPool(f"http://127.0.0.1:{port}")
    outcomes: list[tuple[int, bytes, object]] = []
    pool.send(get(pool), 1.0, lambda *outcome: outcomes.append(outcome))
    assert outcomes == []  # the callback never runs inside send()
    with pytest.raises(ConnectFailed):
        await pool.request(get(pool), 1.0)
    assert len(outcomes) == 1 and isinstance(outcomes[0][2], ConnectFailed)


async def test_close_fails_the_requests_out_at_once():
    async def never_answer(reader, writer):
        await reader.read()

    async with Server(never_answer) as server:
        pool = HttpPool(server.url)
        warm = asyncio.ensure_future(pool.request(get(pool), 5.0))
        while not pool._open:  # connected and sent
            await asyncio.sleep(0.01)
        outcomes: list[tuple[int, bytes, object]] = []
        pool.close()
        with pytest.raises(OutcomeUnknown, match="closed by us"):
            await warm
        pool.send(get(pool), 5.0, lambda *outcome: outcomes.append(outcome))  # reconnects
        await asyncio.sleep(0.05)
        pool.close()
        assert [type(error) for _, _, error in outcomes] == [OutcomeUnknown]


async def test_unexpected_answer_drops_the_connection():
    async def answer_twice(reader, writer):
        await read_request(reader)
        writer.write(OK + OK)  # the second answer belongs to no request
        await writer.drain()
        await reader.read()

    async with Server(answer_twice) as server:
        pool = HttpPool(server.url)
        assert await pool.request(get(pool), 1.0) == (200, b"hello")
        await asyncio.sleep(0.05)
        assert pool._open == set() and all(c.closed for c in pool._idle)
        pool.close()


async def test_closed_connections_are_freed_without_the_gc():
    def live() -> int:
        return sum(1 for o in gc.get_objects() if type(o) is http_client.Connection)

    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    async with Server(answer_once(closing)) as server:
        pool = HttpPool(server.url)
        gc.collect()
        gc.disable()
        try:
            before = live()
            for _ in range(10):
                assert await pool.request(get(pool), 1.0) == (200, b"")
            await asyncio.sleep(0.05)  # connection_lost callbacks
            assert live() == before
        finally:
            gc.enable()
        pool.close()


def test_address_forms():
    assert Address.parse("unix:/tmp/a.sock").unix_path == "/tmp/a.sock"
    assert Address.parse("http://h:81/") == Address("h", 81, None)
    assert str(Address.parse("h:81")) == "http://h:81"
    for bad in ("unix:", "http://h", "h:x", ":80"):
        with pytest.raises(ValueError):
            Address.parse(bad)


async def test_a_write_that_fails_is_unknown_and_never_synchronous():
    class ClosedUnderUs(asyncio.Transport):
        def write(self, data: bytes) -> None:  # type: ignore[override]
            raise RuntimeError("unable to perform operation: the handler is closed")

        def is_closing(self) -> bool:  # the close has not been noticed yet
            return False

        def abort(self) -> None:
            pass

    pool = HttpPool("http://127.0.0.1:9")
    conn = http_client.Connection(pool)
    conn.connection_made(ClosedUnderUs())
    pool._open.add(conn)
    pool.release(conn)
    outcomes: list[tuple[int, bytes, object]] = []
    pool.send(get(pool), 1.0, lambda *outcome: outcomes.append(outcome))
    assert outcomes == []
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(outcomes) == 1 and isinstance(outcomes[0][2], OutcomeUnknown)
    assert conn.closed and pool._open == set()


async def test_an_idle_connection_already_closing_is_not_used():
    async with Server(answer_each) as server:
        pool = HttpPool(server.url)
        assert await pool.request(get(pool), 1.0) == (200, b"hello")
        (idle,) = pool._idle
        assert idle.transport is not None
        idle.transport.close()  # closing, connection_lost not delivered yet
        assert await pool.request(get(pool), 1.0) == (200, b"hello")
        assert server.connections == 2
        pool.close()


async def test_a_connection_lost_before_its_first_request_is_connect_failed():
    async def close_at_once(reader, writer):
        writer.transport.abort()  # RST before the client writes anything

    async with Server(close_at_once) as server:
        pool = HttpPool(server.url)
        real_connect = asyncio.get_running_loop().create_connection

        async def slow_connect(*args, **kwargs):  # let the RST arrive before our task resumes
            result = await real_connect(*args, **kwargs)
            await asyncio.sleep(0.05)
            return result

        asyncio.get_running_loop().create_connection = slow_connect  # type: ignore[method-assign]
        try:
            with pytest.raises(ConnectFailed, match="closed before use"):
                # bounded: a request whose outcome is never reported would hang here
                await asyncio.wait_for(pool.request(get(pool), 1.0), 3.0)
        finally:
            del asyncio.get_running_loop().create_connection
        assert pool._open == set()
        pool.close()
