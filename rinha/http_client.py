"""A small keep-alive HTTP/1.1 client over uvloop + httptools, for processors and peers.

Not aiohttp's client: this one writes prebuilt request bytes on a pooled connection and frames
the answer in C (`Connection`, compiled in rinha._fast, with httptools for anything unusual), a
fraction of the CPU per call (docs/PERFORMANCE.md). One request per connection at a time (no
pipelining: a slow answer must not hold up the next one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .address import Address
from .errors import ConnectFailed, OutcomeUnknown
from .fast import Connection, PoolCore

FRAME_ANSWERS = True  # False: every answer through httptools (the tests run both)

__all__ = ["Address", "ConnectFailed", "Connection", "HttpPool", "OutcomeUnknown", "build_request"]


def build_request(
    method: str, path: str, address: Address, body: bytes = b"", headers: str = ""
) -> bytes:
    """Request bytes; `headers` are extra `Name: value\\r\\n` lines."""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {address.host_header}\r\n{headers}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


# done(status, body, error): the answer (error None), or (0, b"", ConnectFailed | OutcomeUnknown)
Done = Callable[[int, bytes, "ConnectionError | None"], None]


class HttpPool(PoolCore):
    """Keep-alive connections to one address; at most one request per connection.

    `send()` is the call path of the dispatcher: no coroutine, Task, Future or timer per call,
    just the request write and the `done` callback; it, `watch` and `release` are compiled
    (PoolCore, rinha._fast), the rest is here. `request()` is the awaitable form.

    max_connections > 0 caps the connections open (or being opened): a request that finds
    them all busy waits in a FIFO of at most max_waiting (default 4 per connection) for the
    next one freed; its timeout counts from send(), waiting included. idle_close_s > 0 closes
    a connection idle that long. 0 means no cap / never: the processors' pools need neither
    (the dispatcher bounds their calls in flight) and keep the shortest path.
    """

    def __init__(
        self,
        address: Address | str,
        max_connections: int = 0,
        idle_close_s: float = 0.0,
        max_waiting: int | None = None,
    ) -> None:
        super().__init__()  # PoolCore: the idle connections, those out, the waiting line, the timer
        self.address = Address.parse(address) if isinstance(address, str) else address
        if max_connections < 0 or idle_close_s < 0:
            raise ValueError("max_connections and idle_close_s must not be negative")
        self.max_connections = max_connections
        self.idle_close_s = idle_close_s
        self.max_waiting = 4 * max_connections if max_waiting is None else max_waiting
        self._open: set[Connection] = set()  # every open connection, idle or busy
        self._connecting: set[asyncio.Task[None]] = set()

    @property
    def open_connections(self) -> int:
        """Connections open or being opened (each holds a file descriptor)."""
        return len(self._open) + len(self._connecting)

    @property
    def waiting(self) -> int:
        """Requests waiting for a connection to be free."""
        return len(self._waiting)

    # send(data, timeout_s, done) (PoolCore): prebuilt request bytes on an idle connection, or
    # through _send_new; `done` is called later (never from within send) with the answer, or
    # with ConnectFailed (nothing sent) / OutcomeUnknown (sent, no complete answer in timeout_s)

    def _send_new(self, data: bytes, timeout_s: float, done: Done) -> None:
        """No idle connection: a new one, or (capped, all busy) wait for one."""
        cap = self.max_connections
        if cap and (self._waiting or len(self._open) + len(self._connecting) >= cap):
            self._wait(data, timeout_s, done)
            return
        self._connect(data, timeout_s, done, 0.0)

    def _connect(self, data: bytes, timeout_s: float, done: Done, deadline: float) -> None:
        task = asyncio.get_running_loop().create_task(
            self._connect_and_send(data, timeout_s, done, deadline)
        )
        self._connecting.add(task)
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task[None]) -> None:
        self._connecting.discard(task)
        if self._waiting:  # a connect that failed frees its place for the next in line
            self._serve_waiting()

    async def _connect_and_send(
        self, data: bytes, timeout_s: float, done: Done, deadline: float
    ) -> None:
        """Connect, then send. deadline 0: connecting may take timeout_s, and the answer
        timeout_s more; else (a request that waited) both must be done by deadline."""
        loop = asyncio.get_running_loop()
        if deadline and loop.time() >= deadline:
            done(0, b"", ConnectFailed(f"no connection to {self.address} free in time"))
            return
        try:
            async with asyncio.timeout_at(deadline) if deadline else asyncio.timeout(timeout_s):
                if self.address.unix_path:
                    _, conn = await loop.create_unix_connection(
                        lambda: Connection(self, FRAME_ANSWERS), self.address.unix_path
                    )
                else:
                    _, conn = await loop.create_connection(
                        lambda: Connection(self, FRAME_ANSWERS),
                        self.address.host or "",
                        self.address.port or 0,
                    )
        except (OSError, TimeoutError) as exc:
            done(0, b"", ConnectFailed(f"cannot connect to {self.address}: {exc!r}"))
            return
        except asyncio.CancelledError:
            done(0, b"", ConnectFailed(f"connecting to {self.address} was cancelled"))
            raise
        # counted in _open from here on, not twice until this task's done callback runs
        self._connecting.discard(asyncio.current_task())  # type: ignore[arg-type]
        if not conn.writable:
            # lost between the connect and this task's turn: nothing was written
            done(0, b"", ConnectFailed(f"connection to {self.address} closed before use"))
            return
        self._open.add(conn)
        if deadline:
            timeout_s = deadline - loop.time()
            if timeout_s <= 0:  # connected too late to send: the connection serves others
                self.release(conn)
                done(0, b"", ConnectFailed(f"no connection to {self.address} in time"))
                return
        conn.send(data, timeout_s, done)

    def _wait(self, data: bytes, timeout_s: float, done: Done) -> None:
        """Queue a request until a connection is free (capped pool, all busy)."""
        loop = asyncio.get_running_loop()
        if len(self._waiting) >= self.max_waiting:
            # bounded memory under a flood; failed on the next loop turn, never within send()
            loop.call_soon(
                done,
                0,
                b"",
                ConnectFailed(f"too many requests waiting for a connection to {self.address}"),
            )
            return
        deadline = loop.time() + timeout_s
        self._waiting.append((data, deadline, done))
        self._due(loop, deadline)
        self._serve_waiting()  # a place may be free (the queue was not empty)

    def _serve_waiting(self) -> None:
        """Open connections for the requests waiting, while under the cap."""
        waiting = self._waiting
        cap = self.max_connections
        while waiting and len(self._open) + len(self._connecting) < cap:
            data, deadline, done = waiting.popleft()
            self._connect(data, 0.0, done, deadline)

    def _hand_over(self, conn: Connection) -> bool:
        """Send the first waiting request still in time on conn; False if none is."""
        loop = conn.loop
        now_s = loop.time()
        waiting = self._waiting
        while waiting:
            data, deadline, done = waiting.popleft()
            if deadline > now_s:
                conn.send(data, deadline - now_s, done)
                return True
            # past its deadline, the sweep not yet run: never sent, so ConnectFailed
            loop.call_soon(
                done, 0, b"", ConnectFailed(f"no connection to {self.address} free in time")
            )
        return False

    def forget(self, conn: Connection) -> None:
        self._out.discard(conn)
        self._open.discard(conn)
        if self._waiting:  # its place is free: a new connection for the next in line
            self._serve_waiting()

    def _due(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        """The sweep must run by `at` (loop time)."""
        if self._sweep_timer is None or at < self._sweep_timer.when():
            self._arm(loop, at)

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
        self._sweep_timer = loop.call_at(at, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Fail the requests past their deadline (sent: OutcomeUnknown; still waiting:
        ConnectFailed), close the connections idle too long; wake again at the next of these
        times. With one timeout for all (the dispatcher's), that is about once per timeout,
        not per call."""
        self._sweep_timer = None
        now_s = loop.time() + 0.001  # timers may fire up to a millisecond early
        for conn in [c for c in self._out if c.deadline <= now_s]:
            conn.fail(OutcomeUnknown("no answer in time"))
        if self._waiting:
            late = [w for w in self._waiting if w[1] <= now_s]
            if late:
                kept = [w for w in self._waiting if w[1] > now_s]
                self._waiting.clear()
                self._waiting.extend(kept)
                for _, _, done in late:
                    done(0, b"", ConnectFailed(f"no connection to {self.address} free in time"))
        if self.idle_close_s and self._idle:
            cutoff = now_s - self.idle_close_s
            stale = [c for c in self._idle if c.idle_since <= cutoff or not c.writable]
            if stale:
                self._idle[:] = [c for c in self._idle if c.idle_since > cutoff and c.writable]
                for conn in stale:
                    conn.close()
        dues = []
        if self._out:
            dues.append(min(c.deadline for c in self._out))
        if self._waiting:
            dues.append(min(w[1] for w in self._waiting))
        if self.idle_close_s and self._idle:
            dues.append(min(c.idle_since for c in self._idle) + self.idle_close_s)
        if dues:
            self._arm(loop, min(dues))  # also replaces any timer a `done` above armed

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
        """Close every connection; requests still out fail at once with OutcomeUnknown,
        those waiting for a connection with ConnectFailed (those still connecting, with
        ConnectFailed, when their task is cancelled)."""
        waiting = list(self._waiting)
        self._waiting.clear()  # before the connections close: no new one opened for them
        for task in self._connecting:
            task.cancel()
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        self._idle.clear()
        for conn in list(self._open):
            conn.fail(OutcomeUnknown("connection closed by us"))
        for _, _, done in waiting:
            done(0, b"", ConnectFailed(f"pool for {self.address} closed before sending"))
