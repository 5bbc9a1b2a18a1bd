"""The emulator's HTTP surface on aiohttp's low-level server: routing, the endpoints, start/stop.

aiohttp.web's router and middleware chain are skipped: one handler dispatches on the path,
and constant answers are pre-encoded.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from rinha.tools.emulator.limits import ConcurrencyLimiter, FixedWindowLimiter
from rinha.tools.emulator.store import (
    InvalidValue,
    PaymentStore,
    canonical_uuid,
    cents_to_json,
    decimal_to_json,
    iso_to_ms,
    ms_to_iso,
    to_cents,
)

__all__ = ["ProcessorState", "RunningProcessor", "serve", "start_processor"]

_JSON = "application/json"
_OK_PAYMENT = b'{"message":"payment processed successfully"}'
_FAILURE = b'{"message":"Simulated failure: the payment was not processed."}'
_PURGED = b'{"message":"All payments purged."}'
_TOO_MANY = b"Calm down, bitch. Try again later."  # the real service's 429 body, verbatim


class ProcessorState:
    """What the admin endpoints configure, and the payments."""

    __slots__ = ("fee", "token", "delay_ms", "failure", "store")

    def __init__(self, *, fee: Decimal, token: str, delay_ms: int, failure: bool) -> None:
        self.fee = fee  # per transaction, exact decimal
        self.token = token  # admin X-Rinha-Token
        self.delay_ms = delay_ms  # sleep before answering POST /payments
        self.failure = failure  # POST /payments answers 500, stores nothing
        self.store = PaymentStore()

    @property
    def payments(self) -> int:
        """How many payments are stored."""
        return len(self.store)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _load_json(body: bytes) -> Any:
    # Decimal keeps the amount's digits exactly as sent; orjson would go through float
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise InvalidValue("unreadable JSON body") from None


def _parse_payment(body: bytes) -> tuple[str, int, int]:
    """(correlationId, requestedAt ms, cents) from a POST /payments body."""
    obj = _load_json(body)
    if not isinstance(obj, dict):
        raise InvalidValue("body must be a JSON object")
    cid = canonical_uuid(obj.get("correlationId"))
    cents = to_cents(obj.get("amount"))
    ms = iso_to_ms(obj.get("requestedAt"))
    return cid, ms, cents


def _is_json(request: web.BaseRequest) -> bool:
    media = request.headers.get("Content-Type", "").partition(";")[0].strip().lower()
    return media == _JSON or media.endswith("+json")


def _json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type=_JSON)


def _bad_request(reason: str) -> web.Response:
    return _json(orjson.dumps({"title": "Bad Request", "status": 400, "detail": reason}), 400)


def _status(status: int) -> web.Response:
    return web.Response(status=status)


class _Handler:
    """The request handler given to aiohttp's low-level `web.Server`."""

    __slots__ = ("state", "limiter", "health", "_loop", "_admin")

    def __init__(
        self,
        state: ProcessorState,
        limiter: ConcurrencyLimiter,
        health: FixedWindowLimiter,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.state = state
        self.limiter = limiter
        self.health = health
        self._loop = loop
        self._admin = {
            "/admin/payments-summary": ("GET", self._summary),
            "/admin/configurations/token": ("PUT", self._set_token),
            "/admin/configurations/delay": ("PUT", self._set_delay),
            "/admin/configurations/failure": ("PUT", self._set_failure),
            "/admin/purge-payments": ("POST", self._purge),
        }

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        method = request.method
        if path == "/payments":
            if method == "POST":
                return await self._post_payment(request)
            return _status(405)
        if path.startswith("/payments/"):
            if method != "GET":
                return _status(405)
            if path == "/payments/service-health":
                return await self._service_health()
            return self._get_payment(path[10:])
        route = self._admin.get(path)
        if route is None:
            return _status(404)
        if route[0] != method:
            return _status(405)
        if request.headers.get("X-Rinha-Token") != self.state.token:
            return _status(401)
        return await route[1](request)

    def _too_many(self) -> web.Response:
        return web.Response(
            body=_TOO_MANY,
            status=429,
            content_type="text/plain",
            headers={"Retry-After": self.health.retry_after},
        )

    # -- the service endpoints --------------------------------------------------------------

    async def _post_payment(self, request: web.BaseRequest) -> web.StreamResponse:
        # order as in the real service: limiter → body binding → delay → failure → insert
        limiter = self.limiter
        if limiter.in_flight < limiter.limit:
            limiter.in_flight += 1
        elif not await limiter.wait():
            return self._too_many()
        try:
            if not _is_json(request):
                return _status(415)
            try:
                cid, ms, cents = _parse_payment(await request.read())
            except InvalidValue as exc:
                return _bad_request(str(exc))
            state = self.state
            delay_ms = state.delay_ms
            if delay_ms > 0:
                await asyncio.sleep(delay_ms / 1000)
            if state.failure:
                return _json(_FAILURE, 500)
            if state.store.add(cid, ms, cents):
                return _json(_OK_PAYMENT)
            message = f"Payment could not be processed. CorrelationId already exists: {cid}."
            return _json(orjson.dumps({"message": message}), 422)
        finally:
            limiter.release()

    async def _service_health(self) -> web.StreamResponse:
        wait = self.health.reserve(self._loop.time())
        if wait is None:
            return self._too_many()
        if wait > 0:
            await asyncio.sleep(wait)
        state = self.state  # read once the permit is held, as the real handler runs then
        return _json(orjson.dumps({"failing": state.failure, "minResponseTime": state.delay_ms}))

    def _get_payment(self, raw_id: str) -> web.StreamResponse:
        try:
            cid = canonical_uuid(raw_id)
        except InvalidValue as exc:  # a route value that does not bind to a Guid
            return _bad_request(str(exc))
        record = self.state.store.get(cid)
        if record is None:
            return _status(404)
        ms, cents = record
        body = (
            f'{{"correlationId":"{cid}","amount":{cents_to_json(cents)},'
            f'"requestedAt":"{ms_to_iso(ms)}"}}'
        )
        return _json(body.encode())

    # -- admin ------------------------------------------------------------------------------

    async def _summary(self, request: web.BaseRequest) -> web.StreamResponse:
        query = request.query
        try:
            bounds = [query.get(name) or None for name in ("from", "to")]
            from_ms, to_ms = (None if b is None else iso_to_ms(b) for b in bounds)
        except InvalidValue as exc:
            return _bad_request(str(exc))
        count, cents = self.state.store.summary(from_ms, to_ms)
        fee = self.state.fee
        total_fee = Decimal(cents).scaleb(-2) * fee  # exact, as .NET decimal multiplication
        body = (
            f'{{"totalRequests":{count},"totalAmount":{cents_to_json(cents)},'
            f'"totalFee":{decimal_to_json(total_fee)},'
            f'"feePerTransaction":{decimal_to_json(fee)}}}'
        )
        return _json(body.encode())

    async def _config_value(
        self, request: web.BaseRequest, key: str, valid: Callable[[Any], bool], message: str
    ) -> Any:
        """The valid value of `key` in a JSON object body, or the error response to send."""
        if not _is_json(request):
            return _status(415)
        try:
            obj = _load_json(await request.read())
        except InvalidValue as exc:
            return _bad_request(str(exc))
        if not isinstance(obj, dict) or key not in obj:
            return _bad_request(f"body must be a JSON object with {key!r}")
        if not valid(obj[key]):
            return _bad_request(message)
        return obj[key]

    async def _set_token(self, request: web.BaseRequest) -> web.StreamResponse:
        token = await self._config_value(
            request, "token", lambda v: isinstance(v, str), "token must be a string"
        )
        if isinstance(token, web.StreamResponse):
            return token
        self.state.token = token
        return _status(204)

    async def _set_delay(self, request: web.BaseRequest) -> web.StreamResponse:
        delay = await self._config_value(
            request,
            "delay",
            lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            "delay must be a non-negative integer (ms)",
        )
        if isinstance(delay, web.StreamResponse):
            return delay
        was, self.state.delay_ms = self.state.delay_ms, delay
        return _json(orjson.dumps({"config": "delay", "was": was, "is": delay}))

    async def _set_failure(self, request: web.BaseRequest) -> web.StreamResponse:
        failure = await self._config_value(
            request, "failure", lambda v: isinstance(v, bool), "failure must be a boolean"
        )
        if isinstance(failure, web.StreamResponse):
            return failure
        was, self.state.failure = self.state.failure, failure
        return _json(orjson.dumps({"config": "failure", "was": was, "is": failure}))

    async def _purge(self, request: web.BaseRequest) -> web.StreamResponse:
        self.state.store.clear()
        return _json(_PURGED)


class RunningProcessor:
    """A started emulator; see the package docstring for what tests may touch."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        state: ProcessorState,
        limiter: ConcurrencyLimiter,
        health_limiter: FixedWindowLimiter,
        runner: web.ServerRunner,
    ) -> None:
        self.host = host
        self.port = port
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"
        self.state = state
        self.limiter = limiter
        self.health_limiter = health_limiter
        self._runner = runner

    def summary(self, from_ms: int | None = None, to_ms: int | None = None) -> tuple[int, int]:
        """(count, cents) with requestedAt in [from_ms, to_ms]; a missing bound = everything."""
        return self.state.store.summary(from_ms, to_ms)

    async def close(self) -> None:
        """Stop listening; requests still running get `shutdown_timeout` s, then are cancelled."""
        await self._runner.cleanup()

    async def __aenter__(self) -> RunningProcessor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _decimal_fee(fee: float | str | Decimal) -> Decimal:
    # str() of a float is its shortest repr, so 0.05 becomes exactly Decimal("0.05")
    return fee if isinstance(fee, Decimal) else Decimal(str(fee))


async def start_processor(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    fee: float | str | Decimal = 0.05,
    token: str = "123",
    rate_limit_seconds: float = 5.0,
    delay_ms: int = 0,
    failure: bool = False,
    concurrency_limit: int = 800,
    concurrency_queue: int = 500,
    shutdown_timeout: float = 1.0,
) -> RunningProcessor:
    """Start serving on the running loop; see the package docstring."""
    loop = asyncio.get_running_loop()
    state = ProcessorState(fee=_decimal_fee(fee), token=token, delay_ms=delay_ms, failure=failure)
    limiter = ConcurrencyLimiter(concurrency_limit, concurrency_queue)
    health = FixedWindowLimiter(rate_limit_seconds, origin=loop.time())
    server = web.Server(_Handler(state, limiter, health, loop), access_log=None)
    runner = web.ServerRunner(server, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        # backlog: the real service admits 1,300 concurrent requests
        await web.TCPSite(runner, host, port, backlog=2048).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = runner.addresses[0][1]
    return RunningProcessor(
        host=host,
        port=bound_port,
        state=state,
        limiter=limiter,
        health_limiter=health,
        runner=runner,
    )


def _log(event: str, **fields: Any) -> None:
    print(orjson.dumps({"event": event, **fields}).decode(), flush=True)


def serve(args: Any) -> int:
    """`rinha processor`: serve on uvloop until SIGINT/SIGTERM."""
    import uvloop

    async def main() -> int:
        try:
            proc = await start_processor(
                args.host,
                args.port,
                fee=args.fee,
                token=args.token,
                rate_limit_seconds=args.rate_limit_seconds,
                delay_ms=args.delay_ms,
                failure=args.failure,
            )
        except OSError as exc:
            print(
                f"rinha processor: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
            )
            return 1
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        _log(
            "processor_started",
            url=proc.url,
            host=proc.host,
            port=proc.port,
            pid=os.getpid(),
            fee=str(proc.state.fee),
            delay_ms=proc.state.delay_ms,
            failure=proc.state.failure,
            rate_limit_seconds=args.rate_limit_seconds,
        )
        await stop.wait()
        await proc.close()
        _log("processor_stopped", payments=proc.state.payments)
        return 0

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())
