"""A faithful local Payment Processor (SPEC §3): `rinha processor`, and an in-process API.

CLI::

    rinha processor [--host 127.0.0.1] [--port 8001] [--fee 0.05] [--token 123]
                    [--rate-limit-seconds 5] [--delay-ms 0] [--failure | --no-failure]

serves until SIGINT/SIGTERM, then exits 0 (1 if the address cannot be bound). `--port 0`
picks a free port; the one-line JSON startup log on stdout (``{"event": "processor_started",
"url": ..., "port": ...}``) tells which.

In-process API (tests, benchmarks)::

    proc = await start_processor(port=0, fee=0.05, delay_ms=0, failure=False)
    proc.url, proc.port                 # "http://127.0.0.1:PORT", PORT
    proc.state.delay_ms = 100           # int ms, read by every POST /payments as it arrives
    proc.state.failure = True           # bool, read after the delay
    proc.state.token                    # str, the admin X-Rinha-Token
    proc.state.fee                      # Decimal fee per transaction
    proc.state.payments                 # int: how many payments are stored
    proc.state.store                    # PaymentStore: .get(cid) -> (requestedAt ms, cents)
    proc.summary(from_ms, to_ms)        # (count, cents) as GET /admin/payments-summary
    proc.limiter, proc.health_limiter   # ConcurrencyLimiter(800, 500), FixedWindowLimiter
    await proc.close()                  # or: async with await start_processor() as proc:

`start_processor(host="127.0.0.1", port=0, *, fee=0.05, token="123", rate_limit_seconds=5.0,
delay_ms=0, failure=False, concurrency_limit=800, concurrency_queue=500,
shutdown_timeout=1.0)`.

Where the emulator chooses (the real service is ASP.NET over PostgreSQL):

- Amounts are rounded to 2 dp half-to-even when stored. `totalFee` is the *exact* decimal
  product totalAmount × fee, unrounded (e.g. 19.90 × 0.05 → 0.9950), because the real
  service computes `totalAmount * transactionFee` in .NET `decimal` and serializes it as is.
- requestedAt is kept in epoch milliseconds (sub-ms digits floored); a timestamp without an
  offset is taken as UTC; `GET /payments/{id}` answers it as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
- JSON bodies need `Content-Type: application/json` (else 415, as ASP.NET's body binding).
- `PUT /admin/configurations/delay` refuses a negative delay with 400.
- Both limiters refuse with 429, `Retry-After: <window seconds>` (ceil, ≥ 1), as the real
  service's shared rejection handler does.

Importing this package is cheap: aiohttp is loaded only by `run` / `start_processor`.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rinha.tools.emulator.app import RunningProcessor, start_processor

__all__ = ["RunningProcessor", "add_parser", "run", "start_processor"]


def _fee(text: str) -> Decimal:
    try:
        fee = Decimal(text)
    except ArithmeticError:  # decimal.InvalidOperation is not a ValueError
        raise argparse.ArgumentTypeError(f"not a decimal number: {text!r}") from None
    if not fee.is_finite() or fee < 0:
        raise argparse.ArgumentTypeError(f"fee must be a non-negative number: {text!r}")
    return fee


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def add_parser(subparsers: Any) -> None:
    """Register the `processor` subcommand."""
    parser = subparsers.add_parser(
        "processor",
        help="run a local Payment Processor emulator",
        description="Serve the Payment Processor API (SPEC §3) until SIGINT/SIGTERM.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8001, help="0 = any free port (default: %(default)s)"
    )
    parser.add_argument(
        "--fee",
        type=_fee,
        default=Decimal("0.05"),
        help="fee per transaction (default: %(default)s)",
    )
    parser.add_argument(
        "--token", default="123", help="initial X-Rinha-Token (default: %(default)s)"
    )
    parser.add_argument(
        "--rate-limit-seconds",
        type=_positive,
        default=5.0,
        help="service-health window (default: %(default)s)",
    )
    parser.add_argument(
        "--delay-ms",
        type=int,
        default=0,
        help="initial delay of POST /payments (default: %(default)s)",
    )
    parser.add_argument(
        "--failure",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="start failing (default: %(default)s)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve on uvloop until SIGINT/SIGTERM; the exit code."""
    try:
        from rinha.tools.emulator.app import serve
    except ModuleNotFoundError as exc:  # aiohttp: the tools extra
        print(
            f"rinha processor: {exc.name} is missing: pip install 'rinha[tools]'", file=sys.stderr
        )
        return 2

    return serve(args)


def __getattr__(name: str) -> Any:
    """`start_processor` and `RunningProcessor` load aiohttp: import them on first use."""
    if name in ("start_processor", "RunningProcessor"):
        from rinha.tools.emulator import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
