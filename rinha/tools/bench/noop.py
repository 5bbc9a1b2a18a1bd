"""`python -m rinha.tools.bench.noop serve`: a stand-in instance that does nothing but answer.

`rinha bench --floor` runs two of these behind the same Nginx config instead of `rinha serve`:
every request is answered at once (POST 202, GET 200 with an empty summary), nothing is
parsed, stored or sent to a processor. The p99 k6 measures through it is the floor of this
machine, this Nginx and this k6 scenario: what no instance can beat. Binds RINHA_BIND
(`unix:/path.sock` or `host:port`), like an instance.
"""

from __future__ import annotations

import asyncio
import os
import sys

import httptools
import uvloop

from rinha.server import listen

ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
_SUMMARY = (
    b'{"default":{"totalRequests":0,"totalAmount":0},'
    b'"fallback":{"totalRequests":0,"totalAmount":0}}'
)
EMPTY_SUMMARY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_SUMMARY), _SUMMARY)
)


class NoopProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_complete(self) -> None:
        self.transport.write(ACCEPTED if self.parser.get_method() == b"POST" else EMPTY_SUMMARY)

    def connection_lost(self, exc: Exception | None) -> None:
        self.parser = None  # type: ignore[assignment]  # break the cycle


async def serve(bind: str) -> None:
    server = await listen(bind, NoopProtocol)  # exactly as an instance listens
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    if argv[1:] != ["serve"]:
        print("usage: python -m rinha.tools.bench.noop serve   (binds RINHA_BIND)", file=sys.stderr)
        return 2
    uvloop.run(serve(os.environ.get("RINHA_BIND", "127.0.0.1:9999")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
