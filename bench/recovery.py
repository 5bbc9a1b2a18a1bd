"""How long a SIGKILLed instance takes to come back, and what it lost (nothing, it should be).

Starts two emulated processors (in this process) and one `rinha serve`; sends --settled payments
that go all the way through, then makes both processors fail and sends --held more, which the
instance can only queue; SIGKILLs it, starts it again on the same data dir and measures:

- the journal's size at the kill;
- the time from the new process's start to its first answer (the replay happens before it
  listens);
- once the processors work again, the time until every held payment is processed;
- whether every accepted payment was charged exactly once and the summary equals the books.

    python bench/recovery.py [--settled 100000] [--held 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid

import aiohttp

from rinha.tools.emulator import start_processor


async def post_all(session: aiohttp.ClientSession, count: int, width: int = 64) -> list[str]:
    """POST `count` payments, `width` at a time; the ids answered 202."""
    accepted: list[str] = []

    async def one() -> None:
        correlation_id = str(uuid.uuid4())
        body = f'{{"correlationId":"{correlation_id}","amount":19.90}}'
        async with session.post("http://rinha/payments", data=body) as r:
            if r.status == 202:
                accepted.append(correlation_id)

    for start in range(0, count, width):
        await asyncio.gather(*(one() for _ in range(min(width, count - start))))
    return accepted


async def metric(session: aiohttp.ClientSession, name: str) -> float:
    async with session.get("http://rinha/metrics") as r:
        for line in (await r.text()).splitlines():
            key, _, value = line.rpartition(" ")
            if key == name:
                return float(value)
    raise KeyError(name)


async def wait_ready(session: aiohttp.ClientSession) -> None:
    while True:
        try:
            async with session.get("http://rinha/healthz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.005)


async def drained(session: aiohttp.ClientSession) -> None:
    while await metric(session, "rinha_backlog") or await metric(session, "rinha_in_flight"):
        await asyncio.sleep(0.05)


async def main(settled: int, held: int) -> None:
    default = await start_processor(fee=0.05)
    fallback = await start_processor(fee=0.15)
    run_dir = tempfile.mkdtemp(prefix="rinha-recovery-")
    sock = os.path.join(run_dir, "api.sock")
    env = {
        **os.environ,
        "RINHA_BIND": f"unix:{sock}",
        "RINHA_DATA_DIR": f"{run_dir}/data",
        "RINHA_DEFAULT_URL": default.url,
        "RINHA_FALLBACK_URL": fallback.url,
        "RINHA_LOG_LEVEL": "WARNING",
        "RINHA_MAX_BACKLOG": str(held + 1000),
        "RINHA_MAX_IDS": str(max(1_000_000, 2 * (settled + held))),
    }

    async def spawn() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(sys.executable, "-m", "rinha", "serve", env=env)

    connector = aiohttp.UnixConnector(path=sock, limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        proc = await spawn()
        await wait_ready(session)
        accepted = await post_all(session, settled)
        await drained(session)
        default.state.failure = fallback.state.failure = True
        accepted += await post_all(session, held)
        journal = await metric(session, "rinha_journal_bytes")
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        started = time.perf_counter()
        proc = await spawn()
        await wait_ready(session)
        ready_s = time.perf_counter() - started
        default.state.failure = fallback.state.failure = False
        started = time.perf_counter()
        await drained(session)
        drain_s = time.perf_counter() - started
        async with session.get("http://rinha/payments-summary") as r:
            summary = await r.json()
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
    stores = (default.state.store, fallback.state.store)
    missing = sum(1 for i in accepted if not any(s.get(i) for s in stores))
    double = sum(1 for i in accepted if all(s.get(i) for s in stores))
    books = (default.summary()[0], fallback.summary()[0])
    ours = (summary["default"]["totalRequests"], summary["fallback"]["totalRequests"])
    print(
        f"accepted {len(accepted)} ({settled} settled, {held} held at the kill); "
        f"journal {journal / 2**20:.1f} MiB"
    )
    print(
        f"back up (replayed, listening) {ready_s * 1000:.0f} ms after the restart; "
        f"held payments processed {drain_s:.1f} s after the processors recovered"
    )
    print(f"lost {missing}, charged twice {double}; summary {ours} vs processors {books}")
    await default.close()
    await fallback.close()
    shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settled", type=int, default=100_000)
    parser.add_argument("--held", type=int, default=10_000)
    args = parser.parse_args()
    asyncio.run(main(args.settled, args.held))
