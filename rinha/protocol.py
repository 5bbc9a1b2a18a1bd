"""HTTP/1.1 server protocol: asyncio.Protocol + httptools callbacks -> routes -> transport.write.

`data_received` is compiled (`ProtocolCore`, the base class): at a request boundary, received
bytes go first to the compiled intake (`App.intake`, given only on the clients' listener), which
answers the whole, plain `POST /payments` requests at their start in C; what it leaves (any
other request, anything unusual) goes to `_parse`, httptools, as before. A plain POST runs no
Python frame from its bytes in to its 202 out.

Keep-alive and pipelining: responses leave in request order. Most handlers answer at once
with bytes; a handler that must wait (cluster summary) returns an awaitable, and answers
queued behind it wait their turn in `pending`.

Timeouts (RINHA_HEADER_TIMEOUT_MS, RINHA_IDLE_TIMEOUT_MS) cost no timer per request or per
connection: the open connections of an event loop sit in one `_Watch`, whose one periodic
sweep compares their timestamps with its own clock.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from typing import Any

import httptools

from .answers import NOT_FOUND, UNAUTHORIZED, error
from .app import App
from .fast import PaymentIntake, ProtocolCore
from .routes import (
    METHOD_NOT_ALLOWED,
    ROUTES,
    TOKEN_REQUIRED,
    Routes,
    method_not_allowed,
)

log = logging.getLogger("rinha.protocol")

MAX_HEADER_BYTES = 8192  # request line + headers
BAD_REQUEST = error(400, "malformed HTTP request")
HEADERS_TOO_LARGE = error(431, "request headers too large")
REQUEST_TIMEOUT = error(408, "request not received in time")
_CLOSE = object()  # in `pending`: close the connection here

SWEEP_MAX_S = 1.0  # the timeout sweep runs at least this often (s)
SWEEP_MIN_S = 0.005  # and at most this often (s), however small the timeouts


def _sweep_period(config: Any) -> float:
    """A quarter of the smallest timeout (s), within [SWEEP_MIN_S, SWEEP_MAX_S]: a timeout
    fires at most half of itself late."""
    limits = [ms for ms in (config.header_timeout_ms, config.idle_timeout_ms) if ms > 0]
    if not limits:
        return SWEEP_MAX_S
    return max(SWEEP_MIN_S, min(SWEEP_MAX_S, min(limits) / 4000))


class _Watch:
    """The open connections of one event loop and the one periodic sweep that times them out.

    Its `now_s` is a coarse clock: the loop time of the last sweep (or connection). A request's
    start is stamped with it, so data_received makes no clock call at all; a stamp is early
    by at most one period, so a timeout counts that period on top and never fires early.
    """

    __slots__ = ("loop", "connections", "now_s", "period", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.connections: set[HttpProtocol] = set()
        self.now_s = loop.time()
        self.period = SWEEP_MAX_S
        self.timer: asyncio.TimerHandle | None = None

    def add(self, conn: HttpProtocol, period: float) -> None:
        self.connections.add(conn)
        self.now_s = self.loop.time()  # once per connection: its idle time starts exact
        if self.timer is None or period < self.period:
            self.period = min(self.period, period)
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_later(self.period, self.sweep)

    def remove(self, conn: HttpProtocol) -> None:
        self.connections.discard(conn)
        if not self.connections:  # no sweep while there is nothing to watch
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            if _WATCHES.get(self.loop) is self:
                del _WATCHES[self.loop]

    def sweep(self) -> None:
        self.now_s = now_s = self.loop.time()
        # the next sweep first: a failure below must not end the timeouts for good
        self.timer = self.loop.call_later(self.period, self.sweep)
        for conn in list(self.connections):
            try:
                conn.expire(now_s, self.period)
            except Exception:
                log.exception("timeout check failed")


_WATCHES: dict[asyncio.AbstractEventLoop, _Watch] = {}  # per event loop, while it has connections


def _watch_for(loop: asyncio.AbstractEventLoop) -> _Watch:
    watch = _WATCHES.get(loop)
    if watch is None:
        for old in [other for other in _WATCHES if other.is_closed()]:
            del _WATCHES[old]  # closed with connections never lost (tests): nothing to sweep
        watch = _WATCHES[loop] = _Watch(loop)
    return watch


class HttpProtocol(ProtocolCore, asyncio.Protocol):
    """One client connection. Its hot half, `data_received` (ProtocolCore, compiled in
    rinha._fast), hands the plain POSTs to the intake and the rest to `_parse`; the connection's
    state that both halves read (transport, closing, started, idle_since, pending, watch,
    intake, dispatcher, max_backlog) is declared there."""

    __slots__ = (
        "app",
        "routes",
        "not_allowed",
        "parser",
        "url",
        "body",
        "header_bytes",
        "body_bytes",
        "closing_since",
        "token",
    )

    def __init__(
        self,
        app: App,
        routes: Routes = ROUTES,
        not_allowed: dict[bytes, bytes] = METHOD_NOT_ALLOWED,
        intake: PaymentIntake | None = None,
    ) -> None:
        """`routes`: path -> {method: handler} of this listener; `not_allowed`: path -> its
        prebuilt 405 answer; `intake`: answers POST /payments in C (None: httptools alone)."""
        super().__init__()
        self.app = app
        self.routes = routes
        self.not_allowed = not_allowed
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.header_bytes = 0
        self.body_bytes = 0
        # answers waiting for an earlier awaitable one: bytes, or a Future of bytes
        self.pending: deque[Any] = deque()
        self.closing = False
        self.watch: _Watch | None = None
        # timestamps on the watch's clock (loop time, s)
        self.started = 0.0  # the current request's first byte; 0.0: no request in progress
        self.idle_since = 0.0  # the end of the last request (or answer, if deferred)
        self.closing_since = 0.0  # set by the sweep once it sees the connection closing
        # X-Rinha-Token of the current request; None: not looked for (RINHA_ADMIN_TOKEN unset)
        self.token: bytes | None = b"" if app.config.admin_token else None
        self.intake = intake
        self.dispatcher = app.dispatcher
        self.max_backlog = app.config.max_backlog  # payments queued per instance at most

    # ---------------------------------------------------------------- asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        watch = self.watch = _watch_for(asyncio.get_running_loop())
        watch.add(self, _sweep_period(self.app.config))
        self.idle_since = watch.now_s

    # data_received(data) is ProtocolCore's: the intake first, then what it leaves here
    def _parse(self, data: bytes) -> None:
        """Bytes the intake did not take (or all, without one): httptools and the routes."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._final(error(400, "protocol upgrades are not supported"))
        except httptools.HttpParserError:
            self._final(HEADERS_TOO_LARGE if self.header_bytes > MAX_HEADER_BYTES else BAD_REQUEST)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        for item in self.pending:
            if isinstance(item, asyncio.Future):
                item.cancel()
        self.pending.clear()
        if self.watch is not None:
            self.watch.remove(self)
            self.watch = None
        # break the protocol <-> parser and protocol <-> transport cycles: freed now by
        # reference counting, not whenever the (frozen, high-threshold) GC next runs
        self.transport = None
        self.parser = None  # type: ignore[assignment]

    def pause_writing(self) -> None:  # the client is not reading its answers: stop reading
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.closing:
            self.transport.resume_reading()

    # ---------------------------------------------------------------- timeouts
    def expire(self, now_s: float, slack: float) -> None:
        """Called by the sweep at loop time `now_s`; slack: how early a stamp may be (s)."""
        if self.transport is None:
            return
        config = self.app.config
        if self.closing:
            # answered and closing: a client that never reads the rest holds the socket
            # open; it gets the header timeout to take it, then the connection is aborted
            if not self.closing_since:
                self.closing_since = now_s
            elif (
                config.header_timeout_ms
                and now_s - self.closing_since >= config.header_timeout_ms / 1000
            ):
                self.transport.abort()
            return
        if self.started:
            if (
                config.header_timeout_ms
                and now_s - self.started >= config.header_timeout_ms / 1000 + slack
            ):
                self._final(REQUEST_TIMEOUT)
        elif not self.pending:  # a deferred answer still due is not idle
            if (
                config.idle_timeout_ms
                and now_s - self.idle_since >= config.idle_timeout_ms / 1000 + slack
            ):
                self._close()

    # ---------------------------------------------------------------- httptools
    def on_message_begin(self) -> None:
        self.started = self.watch.now_s  # type: ignore[union-attr]
        self.url = b""
        self.body.clear()
        self.header_bytes = 0
        self.body_bytes = 0
        if self.token is not None:
            self.token = b""

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_header(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header(len(name) + len(value) + 4)
        if self.token is not None and name.lower() == b"x-rinha-token":
            self.token = value

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
        self.started = 0.0
        self.idle_since = self.watch.now_s  # type: ignore[union-attr]
        if self.closing:
            return
        url = self.url
        query = b""
        mark = url.find(b"?")
        if mark >= 0:
            url, query = url[:mark], url[mark + 1 :]
        methods = self.routes.get(url)
        if methods is None:
            answer: Any = NOT_FOUND
        else:
            handler = methods.get(self.parser.get_method())
            if handler is None:
                answer = self.not_allowed.get(url) or method_not_allowed(methods)
            elif url in TOKEN_REQUIRED and not self.app.token_ok(self.token):
                answer = UNAUTHORIZED
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
        if not self.pending and self.watch is not None:
            self.idle_since = self.watch.now_s  # idle from the last deferred answer out

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
