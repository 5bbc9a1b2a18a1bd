"""Fault injection with real processes: `rinha serve` instances as subprocesses (killed,
restarted, flooded), the emulated processors in the test's loop.

Every test ends with the same question: was every payment we answered 202 charged exactly
once, and does our summary agree with the processors' books?

Tests marked `soak` (longer scenarios) run only with `--run-soak` (`make test-faults`).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from rinha.tools.emulator import start_processor

TOKEN = {"X-Rinha-Token": "123"}


class Instance:
    """One `rinha serve` process; `start()` again after it died reuses its data dir."""

    def __init__(self, cluster: FaultCluster, index: int, env: dict[str, str]) -> None:
        self.cluster = cluster
        self.index = index
        self.env = env
        self.sock = env["RINHA_BIND"][5:]
        self.proc: asyncio.subprocess.Process | None = None
        self.session: aiohttp.ClientSession | None = None
        self.log = cluster.tmp_path / f"api{index}.log"

    async def start(self, wait: bool = True) -> None:
        with open(self.log, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "rinha",
                "serve",
                env={**os.environ, **self.env},
                stdout=log,
                stderr=log,
            )
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=self.sock, limit=0),
                timeout=aiohttp.ClientTimeout(total=10),
            )
        if wait:
            await self.wait_ready()

    async def wait_ready(self, timeout_s: float = 15.0) -> None:
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            if self.proc.returncode is not None:
                raise AssertionError(
                    f"api{self.index} exited {self.proc.returncode}: {self.log.read_text()[-2000:]}"
                )
            try:
                async with self.session.get("http://rinha/healthz") as r:  # type: ignore[union-attr]
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError(f"api{self.index} did not start: {self.log.read_text()[-2000:]}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout_s)

    async def post(
        self,
        correlation_id: str | None = None,
        amount: float | str = 19.90,
    ) -> tuple[int, str]:
        """(status, the id posted); status 0 when the connection failed."""
        correlation_id = correlation_id or str(uuid.uuid4())
        body = f'{{"correlationId":"{correlation_id}","amount":{amount}}}'
        try:
            async with self.session.post(  # type: ignore[union-attr]
                "http://rinha/payments", data=body, headers={"Content-Type": "application/json"}
            ) as r:
                await r.read()
                return r.status, correlation_id
        except aiohttp.ClientError:
            return 0, correlation_id

    async def summary_raw(self) -> tuple[int, bytes]:
        async with self.session.get("http://rinha/payments-summary") as r:  # type: ignore[union-attr]
            return r.status, await r.read()

    async def metrics(self) -> dict[str, float]:
        async with self.session.get("http://rinha/metrics") as r:  # type: ignore[union-attr]
            text = await r.text()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    async def close(self) -> None:
        if self.running:
            self.kill(signal.SIGKILL)
            await self.wait_exit()
        if self.session is not None:
            await self.session.close()


class FaultCluster:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.data_dir = tmp_path / "data"
        self.instances: list[Instance] = []
        self.processors: list = []
        self.client = aiohttp.ClientSession()

    async def start_processors(self) -> None:
        self.processors = [
            await start_processor(fee=0.05, rate_limit_seconds=0.2),
            await start_processor(fee=0.15, rate_limit_seconds=0.2),
        ]

    @property
    def default(self):  # type: ignore[no-untyped-def]
        return self.processors[0]

    @property
    def fallback(self):  # type: ignore[no-untyped-def]
        return self.processors[1]

    async def start_instances(self, n: int = 2, **settings: object) -> list[Instance]:
        internal = [f"unix:{self.data_dir}/internal-{j}.sock" for j in range(n)]
        for i in range(n):
            env = {
                "RINHA_BIND": f"unix:{self.tmp_path}/api{i}.sock",
                "RINHA_DATA_DIR": str(self.data_dir),
                "RINHA_PEERS": ",".join(s for j, s in enumerate(internal) if j != i),
                "RINHA_INSTANCE_ID": str(i),
                "RINHA_DEFAULT_URL": self.default.url,
                "RINHA_FALLBACK_URL": self.fallback.url,
                "RINHA_HEALTH_INTERVAL_MS": "300",
                "RINHA_LOG_LEVEL": "WARNING",
            }
            env.update({f"RINHA_{k.upper()}": str(v) for k, v in settings.items()})
            self.instances.append(Instance(self, i, env))
        await asyncio.gather(*(instance.start() for instance in self.instances))
        return self.instances

    async def configure(
        self,
        processor,
        *,
        delay: int | None = None,  # type: ignore[no-untyped-def]
        failure: bool | None = None,
    ) -> None:
        if delay is not None:
            processor.state.delay_ms = delay
        if failure is not None:
            processor.state.failure = failure

    async def wait_drained(self, timeout_s: float = 30.0) -> None:
        """Until no running instance has anything queued, in flight or in doubt."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        last: list[dict[str, float]] = []
        while loop.time() < deadline:
            last = [await i.metrics() for i in self.instances if i.running]
            if all(m["rinha_backlog"] == 0 and m["rinha_in_flight"] == 0 for m in last):
                return
            await asyncio.sleep(0.1)
        pending = [(m["rinha_backlog"], m["rinha_in_flight"]) for m in last]
        raise AssertionError(f"still pending (backlog, in flight): {pending}")

    def charged(self, correlation_id: str) -> list[str]:
        """Where the processors stored this id: [], ["default"], ["fallback"] or both."""
        return [
            name
            for name, p in (("default", self.default), ("fallback", self.fallback))
            if p.state.store.get(correlation_id) is not None
        ]

    def assert_exactly_once(self, accepted: list[str]) -> None:
        """Every id answered 2xx is stored by exactly one processor, and nothing else is."""
        missing = [i for i in accepted if not self.charged(i)]
        double = [i for i in accepted if len(self.charged(i)) > 1]
        assert not missing, f"{len(missing)} accepted payments never charged"
        assert not double, f"{len(double)} payments charged twice"
        stored = len(self.default.state.store) + len(self.fallback.state.store)
        assert stored == len(set(accepted)), (
            f"processors hold {stored}, we accepted {len(accepted)}"
        )

    async def assert_books_agree(self) -> None:
        """Every running instance's summary equals the processors' own books, to the cent."""
        expected = {}
        for name, p in (("default", self.default), ("fallback", self.fallback)):
            count, cents = p.summary()
            expected[name] = (count, cents)
        for instance in self.instances:
            if not instance.running:
                continue
            status, raw = await instance.summary_raw()
            assert status == 200, raw
            for name, (count, cents) in expected.items():
                match = re.search(
                    rb'"%s":\{"totalRequests":(\d+),"totalAmount":([0-9.]+)\}' % name.encode(), raw
                )
                assert match, raw
                whole, _, frac = match.group(2).partition(b".")
                ours = (int(match.group(1)), int(whole) * 100 + int(frac.ljust(2, b"0")))
                assert ours == (count, cents), f"{name}: ours {ours}, processor {(count, cents)}"

    async def close(self) -> None:
        for instance in self.instances:
            await instance.close()
        for processor in self.processors:
            await processor.close()
        await self.client.close()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[FaultCluster]:
    c = FaultCluster(tmp_path)
    await c.start_processors()
    try:
        yield c
    finally:
        await c.close()
