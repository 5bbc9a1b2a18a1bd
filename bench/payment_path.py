"""One payment's whole path through an instance, in-process, without sockets: time and instructions.

Drives the real classes (HttpProtocol and its intake, routes, Dispatcher, HttpPool's
connection) with fake transports: a client request is fed to the protocol, the dispatcher's
pump runs once for it (one payment per tick), and the processor's answer is fed to the
connection that carries its call. What is left out is the kernel: no system call, no
wake-up. The GC is set up as `rinha serve` sets it.

    python bench/payment_path.py all|request|gen [-n 20000]

prints µs per payment (hot caches: a lower bound). For instruction counts, which the
neighbours on this VM cannot move, run it under callgrind at two sizes and subtract (start-up
cancels out), then subtract the same for `gen` (making the request bytes, uuid4 included):

    PY=$(python -c 'import sys; print(sys.executable)')   # not the pyenv shim
    for n in 2000 6000; do valgrind --tool=callgrind --callgrind-out-file=cg.all.$n \\
        $PY bench/payment_path.py all -n $n; done
    callgrind_annotate cg.all.6000 | grep TOTALS; callgrind_annotate cg.all.2000 | grep TOTALS
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
import uuid

import uvloop

from rinha import fast
from rinha.app import App
from rinha.config import Config
from rinha.protocol import HttpProtocol

try:
    from rinha.http_client import Connection
except ImportError:  # code from before the compiled connection (an A/B against an older commit)
    from rinha.http_client import _Connection as Connection  # type: ignore[attr-defined,no-redef]

# what Nginx forwards for one k6 payment (proxy_http_version 1.1, Connection ""), and what
# the emulated processor answers
REQUEST = (
    b"POST /payments HTTP/1.1\r\nHost: rinha\r\nContent-Length: %d\r\n"
    b"User-Agent: k6/1.1.0 (https://k6.io/)\r\nContent-Type: application/json\r\n\r\n%s"
)


def nginx_request() -> bytes:
    """One k6 payment (fresh UUID, 19.90) as Nginx forwards it to an instance."""
    body = b'{"correlationId":"%s","amount":19.90}' % str(uuid.uuid4()).encode()
    return REQUEST % (len(body), body)


_ANSWER_BODY = b'{"message":"payment processed successfully"}'
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/json; "
    b"charset=utf-8\r\nDate: Tue, 01 Dec 2026 22:00:00 GMT\r\nServer: Python/3.11 "
    b"aiohttp/3.12\r\n\r\n%s" % (len(_ANSWER_BODY), _ANSWER_BODY)
)


class NullTransport:
    """Takes every write and drops it. Its methods are C builtins, as a uvloop transport's are:
    the harness adds no Python frame to the path it measures."""

    write = staticmethod(len)  # write(data): dropped
    is_closing = staticmethod(bool)  # is_closing() -> False
    abort = staticmethod(bool)  # abort(): nothing to close
    get_extra_info = staticmethod({}.get)  # get_extra_info(name) -> None


async def run(mode: str, n: int) -> None:
    os.environ.setdefault("RINHA_DEFAULT_URL", "http://127.0.0.1:1")  # never connected to
    os.environ.setdefault("RINHA_FALLBACK_URL", "http://127.0.0.1:2")
    os.environ.setdefault("RINHA_DATA_DIR", tempfile.mkdtemp(prefix="rinha-path-"))  # journal
    app = App(Config.from_env(), fast)
    dispatcher = app.dispatcher
    # as rinha serve's clients' listener: the compiled intake first (RINHA_INTAKE=off: none;
    # code from before the intake has neither)
    if getattr(app.config, "intake", "off") == "on":
        protocol = HttpProtocol(app, intake=app.intake)
    else:
        protocol = HttpProtocol(app)
    protocol.connection_made(NullTransport())  # type: ignore[arg-type]
    pool = app.processors[0].pool
    for _ in range(4):  # idle keep-alive connections to the default processor
        conn = Connection(pool)
        conn.connection_made(NullTransport())  # type: ignore[arg-type]
        pool._open.add(conn)
        pool.release(conn)
    requests = [nginx_request() for _ in range(n)]
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)  # as rinha serve
    started = time.perf_counter()
    if mode == "request":  # receive, check, queue and answer: the pump never runs
        dispatcher._closed = True
        for request in requests:
            protocol.data_received(request)
    elif mode == "all":  # + the pump's tick for it, its call, the processor's answer
        for request in requests:
            protocol.data_received(request)
            assert dispatcher._pump_timer is not None
            dispatcher._pump_timer.cancel()
            dispatcher._pump()
            (busy,) = pool._out  # the one connection with the payment's call out
            busy.data_received(ANSWER)
        assert dispatcher.backlog == 0 and len(dispatcher.ledgers[0]) == n
    elapsed = time.perf_counter() - started
    print(f"{mode}: {elapsed / n * 1e6:.2f} µs per payment over {n}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("all", "request", "gen"))
    parser.add_argument("-n", type=int, default=20_000)
    args = parser.parse_args()
    uvloop.run(run(args.mode, args.n))


if __name__ == "__main__":
    main()
