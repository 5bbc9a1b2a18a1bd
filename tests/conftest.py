"""Event loops for async tests: our protocol tests run on both uvloop and stdlib asyncio
(the service must not depend on either's quirks); the integration tests on uvloop, as in
production."""

from __future__ import annotations

import asyncio

import uvloop

BOTH_LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}
UVLOOP_ONLY = {"uvloop": uvloop.new_event_loop}


def pytest_asyncio_loop_factories(config, item):
    path = str(item.path)
    if "/tests/unit/" in path:
        return BOTH_LOOPS
    if "/tests/integration/" in path:
        return UVLOOP_ONLY
    return {"asyncio": asyncio.new_event_loop}
