"""Real servers on loopback: two emulated processors and N instances of the service.

Instances run in the test's event loop (uvloop), talking over unix sockets to each other and
over TCP to the emulators, exactly as in production.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from rinha import fast
from rinha.config import Config
from rinha.server import start, stop
from rinha.tools.emulator import start_processor

TOKEN = {"X-Rinha-Token": "123"}


@dataclasses.dataclass
class Instance:
    config: Config
    app: object
    server: object
    tasks: list
    session: aiohttp.ClientSession
    running: bool = True

    async def post_payment(self, correlation_id: str | None = None, amount: float = 19.90):
        body = {"correlationId": correlation_id or str(uuid.uuid4()), "amount": amount}
        async with self.session.post("http://rinha/payments", json=body) as response:
            return response.status

    async def summary(self, from_ms: int | None = None, to_ms: int | None = None):
        params = {}
        if from_ms is not None:
            params["from"] = fast.ms_to_iso(from_ms)
        if to_ms is not None:
            params["to"] = fast.ms_to_iso(to_ms)
        async with self.session.get("http://rinha/payments-summary", params=params) as r:
            return r.status, await r.json()

    async def stop(self) -> None:
        if self.running:
            self.running = False
            await stop(self.app, self.server, self.tasks, drain_s=0.5)


class Stack:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.instances: list[Instance] = []
        self.processors: list = []
        self.client = aiohttp.ClientSession()

    async def start_processors(self, **kwargs) -> None:
        self.processors = [
            await start_processor(fee=0.05, rate_limit_seconds=0.2, **kwargs),
            await start_processor(fee=0.15, rate_limit_seconds=0.2, **kwargs),
        ]

    @property
    def default(self):
        return self.processors[0]

    @property
    def fallback(self):
        return self.processors[1]

    @property
    def data_dir(self) -> str:
        return str(self.tmp_path / "data")

    def instance_config(self, i: int, n: int, **settings) -> Config:
        """Instance i of n, as `rinha up` configures it: one data dir, peers' internal sockets."""
        settings.setdefault("health_interval_ms", 300)
        internal = [f"unix:{self.data_dir}/internal-{j}.sock" for j in range(n)]
        return Config(
            bind=f"unix:{self.tmp_path}/api{i}.sock",
            data_dir=self.data_dir,
            peers=tuple(s for j, s in enumerate(internal) if j != i),
            instance_id=i,
            default_url=self.default.url,
            fallback_url=self.fallback.url,
            **settings,
        )

    async def start_instance(self, config: Config) -> Instance:
        app, server, tasks = await start(config, fast)
        session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=config.bind[5:]))
        instance = Instance(config, app, server, tasks, session)
        self.instances.append(instance)
        return instance

    async def start_instances(self, n: int = 2, **settings) -> list[Instance]:
        for i in range(n):
            await self.start_instance(self.instance_config(i, n, **settings))
        return self.instances

    async def admin_summary(
        self, processor, from_ms: int | None = None, to_ms: int | None = None
    ) -> tuple[int, float]:
        params = {}
        if from_ms is not None and to_ms is not None:
            params = {"from": fast.ms_to_iso(from_ms), "to": fast.ms_to_iso(to_ms)}
        async with self.client.get(
            f"{processor.url}/admin/payments-summary", params=params, headers=TOKEN
        ) as r:
            assert r.status == 200
            data = await r.json()
        return data["totalRequests"], data["totalAmount"]

    async def configure(
        self, processor, *, delay: int | None = None, failure: bool | None = None
    ) -> None:
        if delay is not None:
            async with self.client.put(
                f"{processor.url}/admin/configurations/delay", json={"delay": delay}, headers=TOKEN
            ) as r:
                assert r.status == 200
        if failure is not None:
            async with self.client.put(
                f"{processor.url}/admin/configurations/failure",
                json={"failure": failure},
                headers=TOKEN,
            ) as r:
                assert r.status == 200

    async def wait_settled(self, timeout_s: float = 15.0) -> None:
        """Until no instance has anything queued or in flight."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(
                i.app.dispatcher.backlog == 0 and i.app.dispatcher.in_flight == 0
                for i in self.instances
                if i.running
            ):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(
            "payments still pending: "
            + ", ".join(
                f"backlog={i.app.dispatcher.backlog} in_flight={i.app.dispatcher.in_flight}"
                for i in self.instances
            )
        )

    async def check_consistent(self, from_ms: int | None = None, to_ms: int | None = None):
        """Our summary (asked of every instance) against both processors' books."""
        expected_default = await self.admin_summary(self.default, from_ms, to_ms)
        expected_fallback = await self.admin_summary(self.fallback, from_ms, to_ms)
        for instance in self.instances:
            if not instance.running:
                continue
            status, ours = await instance.summary(from_ms, to_ms)
            assert status == 200, ours
            assert (
                ours["default"]["totalRequests"],
                ours["default"]["totalAmount"],
            ) == expected_default
            assert (
                ours["fallback"]["totalRequests"],
                ours["fallback"]["totalAmount"],
            ) == expected_fallback
        return expected_default, expected_fallback

    async def close(self) -> None:
        for instance in self.instances:
            await instance.stop()
            await instance.session.close()
        for processor in self.processors:
            await processor.close()
        await self.client.close()


@pytest.fixture
async def stack(tmp_path) -> AsyncIterator[Stack]:
    s = Stack(tmp_path)
    await s.start_processors()
    try:
        yield s
    finally:
        await s.close()
