"""HTTP/1.1 server protocol: asyncio.Protocol + httptools callbacks -> routes -> transport.write.

Keep-alive and pipelining: responses leave in request order. Most handlers answer at once
with bytes; a handler that must wait (cluster summary) returns an awaitable, and answers
queued behind it wait their turn in `_pending`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from typing import Any

import httptools

from .app import App
from .routes import METHOD_NOT_ALLOWED, NOT_FOUND, ROUTES, error

log = logging.getLogger("rinha.protocol")

MAX_HEADER_BYTES = 8192  # request line + headers
BAD_REQUEST = error(400, "malformed HTTP request")
HEADERS_TOO_LARGE = error(431, "request headers too large")
_CLOSE = object()  # in `pending`: close the connection here


class HttpProtocol(asyncio.Protocol):
    __slots__ = ("app", "transport", "parser", "url", "body", "header_bytes", "body_bytes",
                 "pending", "closing", "paused")

    def __init__(self, app: App) -> None:
        self.app = app
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.header_bytes = 0
        self.body_bytes = 0
        # answers waiting for an earlier awaitable one: bytes, or a Future of bytes
        self.pending: deque[Any] = deque()
        self.closing = False
        self.paused = False

    # ---------------------------------------------------------------- asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._final(error(400, "protocol upgrades are not supported"))
        except httptools.HttpParserError:
            self._final(HEADERS_TOO_LARGE if self.header_bytes > MAX_HEADER_BYTES
                            else BAD_REQUEST)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        for item in self.pending:
            if isinstance(item, asyncio.Future):
                item.cancel()
        self.pending.clear()
        # break the protocol <-> parser and protocol <-> transport cycles: freed now by
        # reference counting, not whenever the (frozen, high-threshold) GC next runs
        self.transport = None
        self.parser = None  # type: ignore[assignment]

    def pause_writing(self) -> None:  # the client is not reading its answers: stop reading
        self.paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.transport is not None and not self.closing:
            self.transport.resume_reading()

    # ---------------------------------------------------------------- httptools
    def on_message_begin(self) -> None:
        self.url = b""
        self.body.clear()
        self.header_bytes = 0
        self.body_bytes = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_header(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header(len(name) + len(value) + 4)

    def _count_header(self, n: int) -> None:
        self.header_bytes += n
        if self.header_bytes > MAX_HEADER_BYTES:
            raise httptools.HttpParserError("headers too large")  # handled in data_received

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > self.app.config.max_body_bytes:
            self._final(error(413, f"body larger than {self.app.config.max_body_bytes} bytes"))
            raise httptools.HttpParserError("body too large")
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.closing:
            return
        url = self.url
        query = b""
        mark = url.find(b"?")
        if mark >= 0:
            url, query = url[:mark], url[mark + 1:]
        methods = ROUTES.get(url)
        if methods is None:
            answer: Any = NOT_FOUND
        else:
            handler = methods.get(self.parser.get_method())
            if handler is None:
                answer = METHOD_NOT_ALLOWED[url]
            else:
                body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
                try:
                    answer = handler(self.app, query, body)
                except Exception:  # a bug must cost one answer, never the process
                    log.exception("handler for %r failed", url)
                    answer = error(500, "internal error")
        keep_alive = self.parser.should_keep_alive()
        if isinstance(answer, bytes):
            self._send(answer)
        else:
            self._send_later(answer)
        if not keep_alive:
            self.closing = True
            self._send(_CLOSE)

    # ---------------------------------------------------------------- writing
    def _send(self, data: Any) -> None:
        """`data`: response bytes, or _CLOSE to close once everything before it is out."""
        if self.pending:
            self.pending.append(data)
        elif data is _CLOSE:
            self._close()
        elif self.transport is not None:
            self.transport.write(data)

    def _send_later(self, awaitable: Any) -> None:
        future = asyncio.ensure_future(awaitable)
        self.pending.append(future)
        future.add_done_callback(self._flush)

    def _flush(self, _: Any = None) -> None:
        while self.pending and self.transport is not None:
            head = self.pending[0]
            if isinstance(head, asyncio.Future):
                if not head.done():
                    return
                if head.cancelled():
                    data = b""
                elif head.exception() is not None:
                    log.error("deferred handler failed", exc_info=head.exception())
                    data = error(500, "internal error")
                else:
                    data = head.result()
            else:
                data = head
            self.pending.popleft()
            if data is _CLOSE:
                self._close()
                return
            self.transport.write(data)

    def _close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()
        self.pending.clear()

    def _final(self, data: bytes) -> None:
        """Answer after everything queued, then close: the stream cannot be trusted."""
        if self.closing:
            return
        self.closing = True  # read nothing more
        self._send(data)
        self._send(_CLOSE)
