"""The service on the pure-Python reference (RINHA_NO_EXTENSIONS=1): the clients' protocol and
the dispatcher's hot halves, the pool, the connection, the processor's state and the filing of
answers run on the twins in rinha._reference, and their suites pass there too (the rest of the
suite runs them compiled)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITES = [
    "tests/unit/test_protocol.py",
    "tests/unit/test_protocol_timeouts.py",
    "tests/unit/test_intake.py",
    "tests/unit/test_http_client.py",
    "tests/unit/test_http_pool_limits.py",
    "tests/unit/test_dispatcher.py",
    "tests/unit/test_routing.py",
]


def _reference_env() -> dict[str, str]:
    return dict(os.environ, RINHA_NO_EXTENSIONS="1")


def test_the_reference_build_puts_the_twins_under_the_service() -> None:
    code = (
        "from rinha import _reference, dispatcher, http_client, processors, protocol\n"
        "assert issubclass(protocol.HttpProtocol, _reference.ProtocolCore)\n"
        "assert issubclass(dispatcher.Dispatcher, _reference.DispatcherCore)\n"
        "assert issubclass(http_client.HttpPool, _reference.PoolCore)\n"
        "assert http_client.Connection is _reference.Connection\n"
        "assert issubclass(processors.Processor, _reference.ProcessorState)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        env=_reference_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr


def test_the_call_path_suites_pass_on_the_reference() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITES],
        cwd=ROOT,
        env=_reference_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
