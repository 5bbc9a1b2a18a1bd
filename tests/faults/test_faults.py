"""One test per fault of the reliability table (docs/RELIABILITY.md), with real processes.

Each asserts the promise of a 202: every accepted payment charged exactly once, our summary
equal to the processors' books, nothing partial.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.timeout(120)


async def post_many(instances, count: int, amount: float | str = 19.90) -> list[str]:
    """Post `count` payments round-robin; the ids answered 202."""
    results = await asyncio.gather(
        *(instances[i % len(instances)].post(amount=amount) for i in range(count))
    )
    statuses = {status for status, _ in results}
    assert statuses == {202}, statuses
    return [correlation_id for _, correlation_id in results]


async def test_a_processor_slower_than_any_timeout_never_causes_a_double_charge(cluster):
    # default answers only after 2 s, far beyond our 300 ms timeout and the 600 ms settle
    # delay: lookups say 404 while the first attempts are still inside the processor
    a, b = await cluster.start_instances(
        2, call_timeout_ms=300, settle_after_ms=600, hold_ms=300, slow_ms=100_000
    )
    await cluster.configure(cluster.default, delay=2_000)
    accepted = await post_many([a, b], 100)
    await asyncio.sleep(1.2)  # timed out, looked up (404): the first attempts land at ~2 s
    doubt = sum([(await i.metrics())["rinha_in_doubt"] for i in (a, b)])
    assert doubt == 100  # shown as in doubt meanwhile
    await asyncio.sleep(2.0)
    assert len(cluster.fallback.state.store) == 0, "a pinned payment went to fallback"
    await cluster.configure(cluster.default, delay=0)
    await cluster.wait_drained()
    cluster.assert_exactly_once(accepted)
    assert len(cluster.default.state.store) == 100
    await cluster.assert_books_agree()


async def test_sigkill_loses_nothing_and_the_summary_is_never_partial(cluster):
    a, b = await cluster.start_instances(2)
    await cluster.configure(cluster.default, failure=True)
    await cluster.configure(cluster.fallback, failure=True)
    accepted = await post_many([a], 100) + await post_many([b], 50)
    a.kill(signal.SIGKILL)
    await a.wait_exit()
    status, body = await b.summary_raw()
    assert status == 503, body  # a's share is unknown: no partial total
    await a.start()
    await cluster.configure(cluster.default, failure=False)
    await cluster.configure(cluster.fallback, failure=False)
    await cluster.wait_drained()
    cluster.assert_exactly_once(accepted)
    await cluster.assert_books_agree()


async def test_sigterm_while_default_is_down_keeps_the_payments_for_the_next_start(cluster):
    (a,) = await cluster.start_instances(1, drain_ms=300, hold_ms=60_000)
    await cluster.configure(cluster.default, failure=True)
    accepted = await post_many([a], 100)
    a.kill(signal.SIGTERM)
    assert await a.wait_exit() == 0
    assert "stay in the journal" in a.log.read_text()
    await cluster.configure(cluster.default, failure=False)
    await a.start()
    await cluster.wait_drained()
    cluster.assert_exactly_once(accepted)
    assert len(cluster.fallback.state.store) == 0
    await cluster.assert_books_agree()


async def test_the_same_id_on_two_instances_is_charged_once(cluster):
    a, b = await cluster.start_instances(2, hold_ms=200)
    ids = [str(uuid.uuid4()) for _ in range(20)]
    for correlation_id in ids:
        assert (await a.post(correlation_id))[0] == 202
    await cluster.wait_drained()
    await cluster.configure(cluster.default, failure=True)  # b would spill to fallback
    for correlation_id in ids:
        assert (await b.post(correlation_id))[0] == 409
        assert (await a.post(correlation_id))[0] == 409
    # the same id for another amount is refused, wherever it goes
    assert (await b.post(ids[0], amount=20.00))[0] == 422
    await asyncio.sleep(1.0)
    await cluster.configure(cluster.default, failure=False)
    await cluster.wait_drained()
    cluster.assert_exactly_once(ids)
    await cluster.assert_books_agree()


async def test_a_full_backlog_answers_503_and_drops_nothing_it_accepted(cluster):
    (a,) = await cluster.start_instances(1, max_backlog=100, hold_ms=60_000)
    await cluster.configure(cluster.default, failure=True)
    await cluster.configure(cluster.fallback, failure=True)
    results = [await a.post() for _ in range(160)]
    accepted = [i for status, i in results if status == 202]
    refused = [status for status, _ in results if status != 202]
    assert 100 <= len(accepted) <= 120 and set(refused) == {503}
    async with a.session.post(
        "http://rinha/payments",
        json={  # type: ignore[union-attr]
            "correlationId": str(uuid.uuid4()),
            "amount": 1,
        },
    ) as r:
        assert r.status == 503 and r.headers["Retry-After"] == "1"
        assert "retry later" in (await r.json())["error"]
    await cluster.configure(cluster.default, failure=False)
    await cluster.configure(cluster.fallback, failure=False)
    await cluster.wait_drained()
    cluster.assert_exactly_once(accepted)
    await cluster.assert_books_agree()


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_a_flood_of_summaries_keeps_peer_connections_bounded(cluster):
    a, b = await cluster.start_instances(2, peer_connections=4)
    before = _open_fds(a.pid)
    # 1,000 summaries pipelined on one connection, 20 connections at once
    request = b"GET /payments-summary HTTP/1.1\r\nHost: x\r\n\r\n" * 50

    def flood() -> None:
        conns = []
        for _ in range(20):
            s = socket.socket(socket.AF_UNIX)
            s.connect(a.sock)
            s.sendall(request)
            conns.append(s)
        for s in conns:
            s.settimeout(10)
            got = b""
            while got.count(b"HTTP/1.1 ") < 50:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            s.close()

    await asyncio.get_running_loop().run_in_executor(None, flood)
    metrics = await a.metrics()
    assert metrics["rinha_peer_connections"] <= 4
    assert _open_fds(a.pid) <= before + 30
    accepted = await post_many([a, b], 20)
    await cluster.wait_drained()
    cluster.assert_exactly_once(accepted)
    await cluster.assert_books_agree()


async def test_connections_that_trickle_headers_are_timed_out(cluster):
    (a,) = await cluster.start_instances(1, header_timeout_ms=500)

    def trickle() -> list[bytes]:
        conns = []
        for _ in range(50):
            s = socket.socket(socket.AF_UNIX)
            s.connect(a.sock)
            s.sendall(b"POST /payments HTTP/1.1\r\nHost: x\r\n")
            conns.append(s)
        answers = []
        for s in conns:
            s.settimeout(5)
            answers.append(s.recv(4096))
            s.close()
        return answers

    answers = await asyncio.get_running_loop().run_in_executor(None, trickle)
    assert all(answer.startswith(b"HTTP/1.1 408") for answer in answers), answers[:2]
    assert (await a.post())[0] == 202


async def test_sockets_are_closed_to_other_users_and_internal_routes_to_clients(cluster):
    (a,) = await cluster.start_instances(1)
    assert os.stat(a.sock).st_mode & 0o777 == 0o660
    internal = cluster.data_dir / "internal-0.sock"
    assert os.stat(internal).st_mode & 0o777 == 0o600
    async with a.session.post("http://rinha/internal/purge") as r:  # type: ignore[union-attr]
        assert r.status == 404  # the clients' socket has no internal routes
    if os.getuid() == 0:  # another user cannot even connect
        probe = (
            "import socket, sys; s = socket.socket(socket.AF_UNIX)\n"
            "try:\n s.connect(sys.argv[1])\nexcept PermissionError:\n sys.exit(13)\n"
        )
        for path in (a.sock, str(internal)):
            done = subprocess.run(
                [
                    "setpriv",
                    "--reuid=nobody",
                    "--regid=nogroup",
                    "--clear-groups",
                    sys.executable,
                    "-c",
                    probe,
                    path,
                ],
                capture_output=True,
            )
            assert done.returncode == 13, done.stderr


async def test_the_purge_token_is_required_when_set(cluster):
    (a,) = await cluster.start_instances(1, admin_token="s3cret")
    async with a.session.post("http://rinha/purge-payments") as r:  # type: ignore[union-attr]
        assert r.status == 401
    async with a.session.post(
        "http://rinha/purge-payments",  # type: ignore[union-attr]
        headers={"X-Rinha-Token": "s3cret"},
    ) as r:
        assert r.status == 200


async def test_huge_totals_are_exact_to_the_cent(cluster):
    (a,) = await cluster.start_instances(1)
    accepted = await post_many([a], 902, amount="99999999999.99")
    accepted += await post_many([a], 1, amount="0.01")
    await cluster.wait_drained()
    _, raw = await a.summary_raw()
    assert b'"totalAmount":90199999999990.99' in raw, raw
    cluster.assert_exactly_once(accepted)
    await cluster.assert_books_agree()


@pytest.mark.soak
async def test_sigkill_during_a_busy_run_then_restart(cluster):
    a, b = await cluster.start_instances(2)
    await cluster.configure(cluster.default, delay=50)
    accepted: list[str] = []

    async def load() -> None:
        for _ in range(40):  # 40 rounds of 20 = 800 payments over ~4 s
            results = await asyncio.gather(*(inst.post() for inst in (a, b) for _ in range(10)))
            accepted.extend(i for status, i in results if status == 202)
            await asyncio.sleep(0.1)

    task = asyncio.create_task(load())
    await asyncio.sleep(1.5)
    a.kill(signal.SIGKILL)
    await a.wait_exit()
    await asyncio.sleep(0.5)
    await a.start()
    await task
    await cluster.wait_drained()
    cluster.assert_exactly_once(accepted)
    await cluster.assert_books_agree()


@pytest.mark.soak
async def test_restart_in_the_middle_of_a_drain(cluster):
    a, b = await cluster.start_instances(2, catch_up_per_s=100)
    await cluster.configure(cluster.default, failure=True)
    await cluster.configure(cluster.fallback, failure=True)
    accepted = await post_many([a, b], 400)
    await cluster.configure(cluster.default, failure=False)
    await cluster.configure(cluster.fallback, failure=False)
    await asyncio.sleep(0.8)  # drain under way at 100/s per instance
    a.kill(signal.SIGKILL)
    await a.wait_exit()
    await a.start()
    await cluster.wait_drained()
    cluster.assert_exactly_once(accepted)
    await cluster.assert_books_agree()
