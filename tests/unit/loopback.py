"""A loopback HTTP server for the client tests, and the fixture that runs each of them with the
answers framed by ResponseReader and by httptools alone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from rinha import _reference

Handler = Callable[["Server", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(autouse=True, params=["framed", "httptools", "reference"])
def answers_read_by(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test three times: answers framed by ResponseReader (as served), by httptools alone,
    and by the pure-Python Connection (rinha._reference) framing them."""
    monkeypatch.setattr("rinha.http_client.FRAME_ANSWERS", request.param != "httptools")
    if request.param == "reference":
        monkeypatch.setattr("rinha.http_client.Connection", _reference.Connection)
    return str(request.param)


class Server:
    """A loopback TCP server: connections accepted, open at once at most, closed by the client,
    and the request lines in the order they arrived."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.eofs = 0  # connections the client closed
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self.open += 1
            self.most_open = max(self.most_open, self.open)
            try:
                await self.handler(self, reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.eofs += 1
            finally:
                self.open -= 1
                writer.close()

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def read_request(self, reader: asyncio.StreamReader) -> None:
        head = await reader.readuntil(b"\r\n\r\n")  # our test requests have no body
        self.requests.append(head.split(b"\r\n", 1)[0])
