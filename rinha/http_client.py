"""A small keep-alive HTTP/1.1 client over uvloop + httptools, for processors and peers.

aiohttp's client costs several hundred µs of CPU per call; this one writes prebuilt request
bytes on a pooled connection and parses the answer with httptools — tens of µs. One request
per connection at a time (no pipelining: a slow answer must not hold up the next one).
"""

from __future__ import annotations

import asyncio
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


class _Connection(asyncio.Protocol):
    """One keep-alive connection; `request()` returns a future of (status, body)."""

    __slots__ = ("transport", "parser", "waiter", "body", "closed", "keep_alive")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.closed = False
        self.keep_alive = True

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(OutcomeUnknown(f"bad response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(OutcomeUnknown("connection lost before the answer"))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        waiter, self.waiter = self.waiter, None
        body = b"".join(self.body)
        self.body.clear()
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), body))

    # used by the pool
    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None and self.waiter is None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def timed_out(self) -> None:
        self._fail(OutcomeUnknown("no answer in time"))
        self.close()

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class HttpPool:
    """Keep-alive connections to one address; at most one request per connection."""

    def __init__(self, address: Address | str) -> None:
        self.address = Address.parse(address) if isinstance(address, str) else address
        self._idle: list[_Connection] = []

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            if self.address.unix_path:
                _, conn = await loop.create_unix_connection(_Connection, self.address.unix_path)
            else:
                _, conn = await loop.create_connection(
                    _Connection, self.address.host or "", self.address.port or 0)
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {self.address}: {exc}") from exc
        return conn

    async def request(self, data: bytes, timeout_s: float) -> tuple[int, bytes]:
        """Send prebuilt request bytes; (status, body).

        Raises ConnectFailed (nothing sent) or OutcomeUnknown (sent, no answer).
        """
        conn = None
        while self._idle:
            candidate = self._idle.pop()
            if not candidate.closed:
                conn = candidate
                break
        if conn is None:
            conn = await self._connect()
        loop = asyncio.get_running_loop()
        timer = loop.call_later(timeout_s, conn.timed_out)
        try:
            result = await conn.request(data)
        except BaseException:
            conn.close()
            raise
        finally:
            timer.cancel()
        if conn.keep_alive and not conn.closed:
            self._idle.append(conn)
        else:
            conn.close()
        return result

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
