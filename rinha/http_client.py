"""A small keep-alive HTTP/1.1 client over uvloop + httptools, for processors and peers.

aiohttp's client costs several hundred µs of CPU per call; this one writes prebuilt request
bytes on a pooled connection and parses the answer with httptools — tens of µs. One request
per connection at a time (no pipelining: a slow answer must not hold up the next one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import httptools


class ConnectFailed(ConnectionError):
    """The request was never written: nothing can have reached the server."""


class OutcomeUnknown(ConnectionError):
    """The request was written but no complete answer came back (timeout or connection lost)."""


@dataclass(frozen=True, slots=True)
class Address:
    """`http://host:port`, `host:port` or `unix:/path.sock`."""

    host: str | None
    port: int | None
    unix_path: str | None

    @classmethod
    def parse(cls, text: str) -> Address:
        if text.startswith("unix:"):
            path = text[5:]
            if not path:
                raise ValueError(f"empty unix socket path in {text!r}")
            return cls(None, None, path)
        rest = text.removeprefix("http://").rstrip("/")
        host, sep, port = rest.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"address must be http://host:port or unix:/path, got {text!r}")
        return cls(host, int(port), None)

    @property
    def host_header(self) -> str:
        return "localhost" if self.unix_path else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"unix:{self.unix_path}" if self.unix_path else f"http://{self.host}:{self.port}"


def build_request(method: str, path: str, address: Address, body: bytes = b"",
                  headers: str = "") -> bytes:
    """Request bytes; `headers` are extra `Name: value\\r\\n` lines."""
    head = (f"{method} {path} HTTP/1.1\r\nHost: {address.host_header}\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


# done(status, body, error): the answer (error None), or (0, b"", ConnectFailed | OutcomeUnknown)
Done = Callable[[int, bytes, "ConnectionError | None"], None]


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time; the answer, or the failure,
    goes to that request's `done` callback, and the connection back to its pool."""

    __slots__ = ("pool", "loop", "transport", "parser", "done", "deadline", "body", "closed")

    def __init__(self, pool: HttpPool) -> None:
        self.pool: HttpPool | None = pool
        # the loop, looked up once: asyncio.get_running_loop() per send costs a getpid()
        # system call, once per payment (strace)
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.done: Done | None = None  # the request waiting for its answer
        self.deadline = 0.0  # loop time by which its answer must be in (see HttpPool._sweep)
        self.body: list[bytes] = []
        self.closed = False

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(OutcomeUnknown(f"bad response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.fail(OutcomeUnknown("connection lost before the answer"))
        # break the cycles (parser and transport call back into us): freed by reference
        # counting, not whenever the GC next runs
        self.transport = None
        self.parser = None  # type: ignore[assignment]
        self.pool = None

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        done, self.done = self.done, None
        if done is None:  # an answer nobody asked for: the stream is out of step
            self.fail(OutcomeUnknown("unexpected answer"))
            return
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body.clear()
        status = self.parser.get_status_code()
        if self.parser.should_keep_alive() and self.pool is not None:
            self.pool.release(self)
        else:
            self.close()
        done(status, body, None)

    # used by the pool
    @property
    def writable(self) -> bool:
        """Open, and not closing under us (a FIN read whose connection_lost is still due)."""
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def send(self, data: bytes, timeout_s: float, done: Done) -> None:
        assert self.transport is not None and self.done is None and self.pool is not None
        loop = self.loop
        self.done = done
        self.deadline = loop.time() + timeout_s
        self.pool.watch(self)
        try:
            self.transport.write(data)
        except Exception as exc:  # closed under us (e.g. the server's FIN, not yet delivered)
            # the outcome is unknown by the letter (a part may have left); fail on the next
            # loop turn: `done` never runs inside send()
            loop.call_soon(self.fail, OutcomeUnknown(f"write failed: {exc!r}"))

    def fail(self, exc: ConnectionError) -> None:
        """The request out (if any) fails with exc; this connection is done for."""
        self.close()
        done, self.done = self.done, None
        if done is not None:
            done(0, b"", exc)

    def close(self) -> None:
        self.closed = True
        if self.pool is not None:
            self.pool.forget(self)
        if self.transport is not None:
            self.transport.abort()


class HttpPool:
    """Keep-alive connections to one address; at most one request per connection.

    `send()` is the call path of the dispatcher: no coroutine, Task, Future or timer per call,
    just the request write and the `done` callback. `request()` is the awaitable form.
    """

    def __init__(self, address: Address | str) -> None:
        self.address = Address.parse(address) if isinstance(address, str) else address
        self._idle: list[_Connection] = []  # open, no request out
        self._open: set[_Connection] = set()  # every open connection, idle or busy
        self._out: set[_Connection] = set()  # a request out, waiting for its answer
        self._connecting: set[asyncio.Task[None]] = set()
        # one timer for every request's deadline, not one per request: a uvloop timer set
        # and cancelled per call cost ~0.7 µs, 3,900 of a payment's ~105,700 instructions
        # (callgrind, bench/payment_path.py)
        self._sweep_timer: asyncio.TimerHandle | None = None

    def send(self, data: bytes, timeout_s: float, done: Done) -> None:
        """Send prebuilt request bytes; `done` is called later (never from within send)
        with the answer, or with ConnectFailed (nothing sent) / OutcomeUnknown (sent, no
        complete answer in timeout_s)."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.writable:
                conn.send(data, timeout_s, done)
                return
        task = asyncio.get_running_loop().create_task(self._connect_and_send(data, timeout_s, done))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect_and_send(self, data: bytes, timeout_s: float, done: Done) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                if self.address.unix_path:
                    _, conn = await loop.create_unix_connection(
                        lambda: _Connection(self), self.address.unix_path)
                else:
                    _, conn = await loop.create_connection(
                        lambda: _Connection(self), self.address.host or "", self.address.port or 0)
        except (OSError, TimeoutError) as exc:
            done(0, b"", ConnectFailed(f"cannot connect to {self.address}: {exc!r}"))
            return
        except asyncio.CancelledError:
            done(0, b"", ConnectFailed(f"connecting to {self.address} was cancelled"))
            raise
        if not conn.writable:
            # lost between the connect and this task's turn: nothing was written
            done(0, b"", ConnectFailed(f"connection to {self.address} closed before use"))
            return
        self._open.add(conn)
        conn.send(data, timeout_s, done)

    def release(self, conn: _Connection) -> None:
        """conn's answer is in and it stays open: ready for the next request."""
        self._out.discard(conn)
        self._idle.append(conn)

    def forget(self, conn: _Connection) -> None:
        self._out.discard(conn)
        self._open.discard(conn)

    def watch(self, conn: _Connection) -> None:
        """conn has a request out until conn.deadline: fail it then if no answer came."""
        self._out.add(conn)
        if self._sweep_timer is None or conn.deadline < self._sweep_timer.when():
            self._arm(conn.loop, conn.deadline)

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
        self._sweep_timer = loop.call_at(at, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Fail the requests past their deadline; wake again at the next deadline. With one
        timeout for all (the dispatcher's), that is about once per timeout, not per call."""
        self._sweep_timer = None
        now = loop.time() + 0.001  # timers may fire up to a millisecond early
        for conn in [c for c in self._out if c.deadline <= now]:
            conn.fail(OutcomeUnknown("no answer in time"))
        if self._out:
            self._arm(loop, min(c.deadline for c in self._out))

    async def request(self, data: bytes, timeout_s: float) -> tuple[int, bytes]:
        """Send prebuilt request bytes; (status, body).

        Raises ConnectFailed (nothing sent) or OutcomeUnknown (sent, no answer).
        """
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()

        def done(status: int, body: bytes, error: ConnectionError | None) -> None:
            if future.done():
                return
            if error is None:
                future.set_result((status, body))
            else:
                future.set_exception(error)

        self.send(data, timeout_s, done)
        return await future

    def close(self) -> None:
        """Close every connection; requests still out fail at once with OutcomeUnknown
        (those still connecting, with ConnectFailed, when their task is cancelled)."""
        for task in self._connecting:
            task.cancel()
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        self._idle.clear()
        for conn in list(self._open):
            conn.fail(OutcomeUnknown("connection closed by us"))
