"""`rinha serve`: one instance on uvloop: listen, dispatch, take health turns, stop cleanly."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable

from .address import Address
from .config import SETTINGS, Config, help_table

log = logging.getLogger("rinha.server")


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "serve",
        help="run one service instance",
        description="Run one rinha instance. All settings come from the environment.",
        epilog=help_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=run)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (RINHA_LOG_FORMAT=json), for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        import orjson

        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def setup_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s pid=%(process)d %(message)s")
    )
    logging.basicConfig(level=level.upper(), handlers=[handler])


async def listen(
    bind: str, protocol_factory: Callable[[], asyncio.Protocol], mode: int = 0o660
) -> asyncio.Server:
    """Serve `protocol_factory` on RINHA_BIND's address: `unix:/path.sock` (file mode `mode`)
    or `host:port`. Shared with the bench's no-op stand-in (rinha.tools.bench.noop), so that the
    floor it measures listens exactly as an instance does."""
    loop = asyncio.get_running_loop()
    address = Address.parse(bind)
    if address.unix_path:
        path = address.unix_path
        if os.path.exists(path):
            os.unlink(path)  # a stale socket from a previous run
        # created with no access for others, then opened up to `mode`: never world-writable
        # in between
        old_umask = os.umask(0o177)
        try:
            server = await loop.create_unix_server(protocol_factory, path, backlog=4096)
        finally:
            os.umask(old_umask)
        os.chmod(path, mode)
        return server
    return await loop.create_server(
        protocol_factory, address.host, address.port or 0, backlog=4096, reuse_address=True
    )


async def start(config: Config, fast_module=None):  # type: ignore[no-untyped-def]
    """Start an instance in the running loop: recover from the journal, then listen for the
    peers and for the clients. Returns (app, servers, background tasks)."""
    from .app import App
    from .health import run_poller
    from .protocol import HttpProtocol
    from .routes import INTERNAL_METHOD_NOT_ALLOWED, INTERNAL_ROUTES

    if fast_module is None:
        from . import fast as fast_module
    app = App(config, fast_module)
    app.recover()  # before listening: a peer asking for our summary meanwhile gets no answer
    loop = asyncio.get_running_loop()
    internal = await listen(
        config.internal_address,
        lambda: HttpProtocol(app, INTERNAL_ROUTES, INTERNAL_METHOD_NOT_ALLOWED),
        mode=0o600,
    )
    intake = app.intake if config.intake == "on" else None
    public = await listen(
        config.bind, lambda: HttpProtocol(app, intake=intake), mode=int(config.socket_mode, 8)
    )
    servers = (public, internal)
    if app.dispatcher.backlog:
        app.dispatcher.wake()
    tasks = [
        loop.create_task(say_if_unreachable(app.processors)),
        loop.create_task(
            run_poller(
                app.processors,
                app.cluster,
                config.instance_id,
                config.cluster_size,
                config.health_interval_ms,
            )
        ),
        loop.create_task(app.watch_loop_lag()),
    ]
    return app, servers, tasks


async def say_if_unreachable(processors) -> None:  # type: ignore[no-untyped-def]
    """A processor we cannot even connect to at start is said at once (a wrong URL would
    otherwise only show as a growing backlog)."""
    for p in processors:
        address = p.pool.address
        try:
            if address.unix_path:
                connecting = asyncio.open_unix_connection(address.unix_path)
            else:
                connecting = asyncio.open_connection(address.host, address.port)
            _, writer = await asyncio.wait_for(connecting, 2.0)
            writer.close()
        except (OSError, TimeoutError) as exc:
            log.warning("processor %s unreachable at %s: %s", p.name, address, exc)


async def stop(app, servers, tasks, drain_s: float | None = None) -> int:  # type: ignore[no-untyped-def]
    """Stop accepting, let queued payments and calls in flight finish within `drain_s`;
    return how many were left (they stay in the journal for the next start)."""
    for server in servers:
        server.close()
    for task in tasks:
        task.cancel()
    if drain_s is None:
        drain_s = app.config.drain_ms / 1000
    left = await app.dispatcher.drain(drain_s)
    await app.close()
    for bind in (app.config.bind, app.config.internal_address):
        path = Address.parse(bind).unix_path
        if path:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    return left


async def serve(config: Config) -> int:
    # signal handlers first: a SIGTERM that arrives while starting must still stop cleanly
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    log.info(
        "config %s",
        " ".join(
            f"{env}={getattr(config, name)!r}"
            for name, env, _, _ in SETTINGS
            if name != "admin_token"
        )
        + f" RINHA_ADMIN_TOKEN={'(set)' if config.admin_token else '(unset)'}",
    )
    try:
        app, servers, tasks = await start(config)
    except OSError as exc:  # a busy port, a path we may not use, an unreadable journal
        print(f"rinha serve: cannot start: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a journal or id table that is not ours (FileFormatError)
        print(f"rinha serve: {exc}", file=sys.stderr)
        return 2
    # Long-lived start-up objects never need collecting again; payments are acyclic and
    # freed by reference counting, so the cyclic GC can run rarely (it stalls the loop).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    log.info(
        "listening bind=%s internal=%s implementation=%s peers=%d instance_id=%d "
        "default=%s fallback=%s journal=%s fsync=%s",
        config.bind,
        config.internal_address,
        app.fast.IMPLEMENTATION,
        len(config.peers),
        config.instance_id,
        config.default_url,
        config.fallback_url,
        config.journal_path,
        config.journal_fsync,
    )
    await stopping.wait()
    log.info("stopping: backlog=%d in_flight=%d", app.dispatcher.backlog, app.dispatcher.in_flight)
    left = await stop(app, servers, tasks)
    if left:
        log.warning(
            "stopped with %d payments not settled: they stay in the journal %s for the next start",
            left,
            config.journal_path,
        )
    log.info(
        "stopped accepted=%d processed_default=%d processed_fallback=%d",
        app.accepted,
        app.processors[0].processed,
        app.processors[1].processed,
    )
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        config = Config.from_env()
    except ValueError as exc:
        print(f"rinha serve: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level, config.log_format)
    try:
        from . import fast  # noqa: F401  refuse to start without the compiled module
    except ImportError as exc:
        print(f"rinha serve: {exc}", file=sys.stderr)
        return 2
    import uvloop

    return uvloop.run(serve(config))
