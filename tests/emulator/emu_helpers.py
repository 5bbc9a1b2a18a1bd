"""Helpers shared by the emulator tests (a module of its own: `conftest` names clash)."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp

from rinha.tools.emulator.app import RunningProcessor

TOKEN = "123"
ADMIN = {"X-Rinha-Token": TOKEN}
WINDOW = 0.3  # service-health window for tests, seconds


def payment(
    amount: Any = "19.90", requested_at: str = "2025-07-15T12:34:56.000Z", cid: str | None = None
) -> bytes:
    """A POST /payments body; `amount` is inserted as raw JSON text."""
    cid = cid or str(uuid.uuid4())
    return f'{{"correlationId":"{cid}","amount":{amount},"requestedAt":"{requested_at}"}}'.encode()


async def post(http: aiohttp.ClientSession, proc: RunningProcessor, body: bytes) -> tuple[int, Any]:
    """POST /payments with a JSON content type: (status, JSON body, or text if not JSON)."""
    async with http.post(
        proc.url + "/payments", data=body, headers={"Content-Type": "application/json"}
    ) as resp:
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.text()
