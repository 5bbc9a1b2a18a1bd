"""Fixtures for the Payment Processor emulator tests: a running emulator and an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from emu_helpers import WINDOW

from rinha.tools.emulator import start_processor
from rinha.tools.emulator.app import RunningProcessor


@pytest.fixture
async def proc() -> AsyncIterator[RunningProcessor]:
    processor = await start_processor(rate_limit_seconds=WINDOW, shutdown_timeout=0.5)
    try:
        yield processor
    finally:
        await processor.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
