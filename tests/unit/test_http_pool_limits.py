"""HttpPool with a connection cap, a bounded FIFO of waiting requests and idle closes, against
real loopback servers that count what they see."""

from __future__ import annotations

import asyncio
import socket

import pytest
from loopback import Handler, Server, answers_read_by  # noqa: F401  (an autouse fixture)

from rinha.http_client import ConnectFailed, HttpPool, OutcomeUnknown, build_request

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


def answering(delay_s: float = 0.0, response: bytes = OK) -> Handler:
    """Answers each request on the connection after delay_s."""

    async def handler(
        server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            await server.read_request(reader)
            if delay_s:
                await asyncio.sleep(delay_s)
            writer.write(response)
            await writer.drain()
            if b"Connection: close" in response:
                return

    return handler


async def never_answering(
    server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await server.read_request(reader)
    await reader.read()  # returns at EOF, when the client gives up
    server.eofs += 1


def get(pool: HttpPool, path: str = "/x") -> bytes:
    return build_request("GET", path, pool.address)


class Outcomes:
    """done callbacks that record (name, status, error type) in the order they were called."""

    def __init__(self) -> None:
        self.items: list[tuple[str, int, type | None]] = []

    def done(self, name: str):  # type: ignore[no-untyped-def]
        def done(status: int, body: bytes, error: ConnectionError | None) -> None:
            self.items.append((name, status, None if error is None else type(error)))

        return done

    async def wait_for(self, n: int, timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.items) < n:
                await asyncio.sleep(0.005)


async def test_the_cap_holds_under_200_concurrent_requests():
    async with Server(answering(delay_s=0.01)) as server:
        pool = HttpPool(server.url, max_connections=8, max_waiting=200)
        most_waiting = 0

        async def one(i: int) -> tuple[int, bytes]:
            return await pool.request(get(pool, f"/{i}"), 10.0)

        tasks = [asyncio.ensure_future(one(i)) for i in range(200)]
        while not all(t.done() for t in tasks):
            assert pool.open_connections <= 8
            most_waiting = max(most_waiting, pool.waiting)
            await asyncio.sleep(0.002)
        assert [t.result() for t in tasks] == [(200, b"hello")] * 200
        assert server.most_open <= 8 and server.connections == 8  # each kept and reused
        assert most_waiting > 100 and pool.waiting == 0
        assert len(server.requests) == 200
        pool.close()


async def test_waiting_requests_are_sent_in_fifo_order():
    async with Server(answering(delay_s=0.005)) as server:
        pool = HttpPool(server.url, max_connections=1)
        outcomes = Outcomes()
        for i in range(4):  # the default queue: 4 per connection
            pool.send(get(pool, f"/{i}"), 5.0, outcomes.done(str(i)))
        assert pool.waiting == 3  # the first is connecting
        pool.send(get(pool, "/4"), 5.0, outcomes.done("4"))
        await outcomes.wait_for(5)
        assert outcomes.items == [(str(i), 200, None) for i in range(5)]
        assert server.requests == [f"GET /{i} HTTP/1.1".encode() for i in range(5)]
        assert server.connections == 1
        pool.close()


async def test_a_request_still_waiting_at_its_deadline_fails_unsent():
    loop = asyncio.get_running_loop()
    async with Server(never_answering) as server:
        pool = HttpPool(server.url, max_connections=1)
        outcomes = Outcomes()
        pool.send(get(pool, "/held"), 5.0, outcomes.done("held"))
        start = loop.time()
        waiter = asyncio.ensure_future(pool.request(get(pool, "/waits"), 0.1))
        with pytest.raises(ConnectFailed, match="free in time"):
            await waiter
        assert 0.09 <= loop.time() - start < 0.5
        assert pool.waiting == 0
        await asyncio.sleep(0.05)
        assert server.requests == [b"GET /held HTTP/1.1"]  # nothing of the waiter was sent
        assert outcomes.items == []  # the request out still has its own deadline
        pool.close()
        assert outcomes.items == [("held", 0, OutcomeUnknown)]


async def test_a_request_that_waited_keeps_its_deadline_once_sent():
    loop = asyncio.get_running_loop()
    async with Server(answering(delay_s=0.15)) as server:
        pool = HttpPool(server.url, max_connections=1)
        outcomes = Outcomes()
        pool.send(get(pool, "/1"), 5.0, outcomes.done("first"))
        start = loop.time()
        # waits ~0.15 s for the connection, is sent, then has ~0.1 s left for a 0.15 s answer
        with pytest.raises(OutcomeUnknown, match="no answer in time"):
            await pool.request(get(pool, "/2"), 0.25)
        assert 0.24 <= loop.time() - start < 0.4
        assert outcomes.items == [("first", 200, None)]
        assert server.requests == [b"GET /1 HTTP/1.1", b"GET /2 HTTP/1.1"]
        pool.close()


async def test_a_full_queue_fails_at_once_but_never_within_send():
    async with Server(never_answering) as server:
        pool = HttpPool(server.url, max_connections=1, max_waiting=2)
        outcomes = Outcomes()
        pool.send(get(pool), 5.0, outcomes.done("out"))
        while not server.requests:  # connected and sent
            await asyncio.sleep(0.005)
        for name in ("w1", "w2"):
            pool.send(get(pool), 5.0, outcomes.done(name))
        pool.send(get(pool), 5.0, outcomes.done("over"))
        assert outcomes.items == [] and pool.waiting == 2
        await asyncio.sleep(0)
        assert outcomes.items == [("over", 0, ConnectFailed)]
        with pytest.raises(ConnectFailed, match="too many requests waiting"):
            await pool.request(get(pool), 5.0)
        assert pool.waiting == 2
        pool.close()  # the waiters fail as unsent, the request out as unknown
        assert sorted(outcomes.items) == [
            ("out", 0, OutcomeUnknown),
            ("over", 0, ConnectFailed),
            ("w1", 0, ConnectFailed),
            ("w2", 0, ConnectFailed),
        ]
        assert pool.waiting == 0 and pool._sweep_timer is None


async def test_a_waiter_gets_a_new_connection_when_one_closes():
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    async with Server(answering(delay_s=0.02, response=closing)) as server:
        pool = HttpPool(server.url, max_connections=1)
        results = await asyncio.gather(*(pool.request(get(pool), 5.0) for _ in range(3)))
        assert results == [(200, b"ok")] * 3
        assert server.connections == 3 and server.most_open == 1
        pool.close()


async def test_failed_connects_let_the_waiters_through_to_their_own_failure():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    pool = HttpPool(f"http://127.0.0.1:{port}", max_connections=2)
    results = await asyncio.wait_for(
        asyncio.gather(*(pool.request(get(pool), 5.0) for _ in range(8)), return_exceptions=True),
        3.0,
    )
    assert all(isinstance(r, ConnectFailed) for r in results)
    assert pool.open_connections == 0 and pool.waiting == 0


async def test_idle_connections_close_after_idle_close_s():
    async with Server(answering()) as server:
        pool = HttpPool(server.url, max_connections=4, idle_close_s=0.2)
        for _ in range(6):  # in use every 0.05 s: never idle long enough
            assert await pool.request(get(pool), 1.0) == (200, b"hello")
            await asyncio.sleep(0.05)
        assert server.connections == 1 and server.eofs == 0 and pool.open_connections == 1
        await asyncio.sleep(0.35)
        assert server.eofs == 1 and server.open == 0  # the server saw us close it
        assert pool.open_connections == 0 and pool._idle == []
        assert pool._sweep_timer is None  # nothing left to watch: no wake-ups
        assert await pool.request(get(pool), 1.0) == (200, b"hello")  # reconnects
        assert server.connections == 2
        pool.close()


async def test_an_unlimited_pool_opens_a_connection_per_concurrent_request_and_keeps_them():
    async with Server(answering(delay_s=0.05)) as server:
        pool = HttpPool(server.url)
        assert pool.max_connections == 0 and pool.idle_close_s == 0
        results = await asyncio.gather(*(pool.request(get(pool), 0.3) for _ in range(20)))
        assert results == [(200, b"hello")] * 20
        assert server.connections == 20 and pool.waiting == 0
        await asyncio.sleep(0.4)  # past the deadlines: the sweep ran, and found nothing out
        assert pool.open_connections == 20 and len(pool._idle) == 20 and server.eofs == 0
        assert pool._sweep_timer is None  # idle connections cost no timer
        pool.close()
