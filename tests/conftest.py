"""Event loops for async tests: our protocol tests run on both uvloop and stdlib asyncio
(the service must not depend on either's quirks); the integration tests on uvloop, as in
production."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

BOTH_LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}
UVLOOP_ONLY = {"uvloop": uvloop.new_event_loop}


def pytest_asyncio_loop_factories(config, item):
    path = str(item.path)
    if "/tests/unit/" in path:
        return BOTH_LOOPS
    if "/tests/integration/" in path or "/tests/faults/" in path:
        return UVLOOP_ONLY
    return {"asyncio": asyncio.new_event_loop}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-soak",
        action="store_true",
        help="also run the long fault scenarios (make test-faults)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-soak"):
        return
    skip = pytest.mark.skip(reason="long fault scenario: make test-faults (--run-soak)")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)
