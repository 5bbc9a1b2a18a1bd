"""Every endpoint of the emulator over real HTTP on loopback (SPEC §3)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import pytest
from emu_helpers import ADMIN, WINDOW, payment, post

from rinha.tools.emulator import start_processor
from rinha.tools.emulator.app import RunningProcessor

Http = aiohttp.ClientSession


async def get_json(http: Http, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with http.get(url, **kwargs) as resp:
        return resp.status, (await resp.json() if resp.status == 200 else await resp.text())


async def summary(http: Http, proc: RunningProcessor, **bounds: str) -> dict:
    status, body = await get_json(
        http, proc.url + "/admin/payments-summary", params=bounds, headers=ADMIN
    )
    assert status == 200, body
    assert isinstance(body, dict)
    return body


# -- POST /payments ----------------------------------------------------------------------


async def test_payment_is_stored_and_answered_200(proc: RunningProcessor, http: Http) -> None:
    cid = str(uuid.uuid4())
    status, body = await post(http, proc, payment("19.90", "2025-07-15T12:34:56.789Z", cid))
    assert (status, body) == (200, {"message": "payment processed successfully"})
    assert proc.state.payments == 1
    assert proc.state.store.get(cid) == (1752582896789, 1990)
    status, body = await get_json(http, f"{proc.url}/payments/{cid}")
    assert status == 200
    assert body == {
        "correlationId": cid,
        "amount": 19.90,
        "requestedAt": "2025-07-15T12:34:56.789Z",
    }


async def test_duplicate_is_422_and_the_earlier_record_stands(
    proc: RunningProcessor, http: Http
) -> None:
    cid = str(uuid.uuid4())
    assert (await post(http, proc, payment("10.00", "2025-07-15T12:00:00.000Z", cid)))[0] == 200
    status, body = await post(http, proc, payment("20.00", "2025-07-15T13:00:00.000Z", cid))
    assert status == 422
    assert cid in body["message"]
    # the same id written differently is the same Guid
    status, _ = await post(http, proc, payment("30.00", "2025-07-15T14:00:00.000Z", cid.upper()))
    assert status == 422
    assert proc.state.store.get(cid) == (1752580800000, 1000)
    assert (await summary(http, proc))["totalRequests"] == 1
    assert (await summary(http, proc))["totalAmount"] == 10.00


async def test_amount_rounds_half_to_even(proc: RunningProcessor, http: Http) -> None:
    expected = {"19.905": b"19.90", "19.915": b"19.92", "19.925": b"19.92"}
    ids = {}
    for sent in expected:
        ids[sent] = str(uuid.uuid4())
        assert (await post(http, proc, payment(sent, cid=ids[sent])))[0] == 200
    for sent, stored in expected.items():
        async with http.get(f"{proc.url}/payments/{ids[sent]}") as resp:
            assert b'"amount":' + stored + b"," in await resp.read()
    async with http.get(proc.url + "/admin/payments-summary", headers=ADMIN) as resp:
        text = await resp.text()
    # unrounded: 59.745; half away from zero: 59.76
    assert '"totalAmount":59.74,' in text


async def test_failure_is_500_and_stores_nothing(proc: RunningProcessor, http: Http) -> None:
    proc.state.failure = True
    status, _ = await post(http, proc, payment())
    assert status == 500
    assert proc.state.payments == 0
    proc.state.failure = False
    assert (await post(http, proc, payment()))[0] == 200


async def test_delay_applies_to_failing_requests_too(proc: RunningProcessor, http: Http) -> None:
    loop = asyncio.get_running_loop()
    proc.state.delay_ms = 200
    proc.state.failure = True
    started = loop.time()
    status, _ = await post(http, proc, payment())
    assert status == 500
    assert loop.time() - started >= 0.195
    proc.state.failure = False
    started = loop.time()
    assert (await post(http, proc, payment()))[0] == 200
    assert loop.time() - started >= 0.195
    assert proc.state.payments == 1


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'{"amount": 19.90, "requestedAt": "2025-07-15T12:34:56.000Z"}',
        b'{"correlationId": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", '
        b'"requestedAt": "2025-07-15T12:34:56.000Z"}',
        b'{"correlationId": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", "amount": 19.90}',
        payment(cid="not-a-uuid"),
        payment(requested_at="2025-07-15 noon"),
        payment(amount='"19.90"'),
        payment(amount="null"),
        payment(amount="NaN"),
        payment(amount="true"),
    ],
    ids=[
        "empty",
        "not-json",
        "array",
        "no-id",
        "no-amount",
        "no-requestedAt",
        "bad-uuid",
        "bad-requestedAt",
        "amount-string",
        "amount-null",
        "amount-nan",
        "amount-bool",
    ],
)
async def test_unreadable_payment_is_400(proc: RunningProcessor, http: Http, body: bytes) -> None:
    status, _ = await post(http, proc, body)
    assert status == 400
    assert proc.state.payments == 0


async def test_payment_without_json_content_type_is_415(proc: RunningProcessor, http: Http) -> None:
    async with http.post(proc.url + "/payments", data=payment()) as resp:  # no Content-Type
        assert resp.status == 415
    assert proc.state.payments == 0


async def test_concurrency_limit_answers_429_beyond_queue(http: Http) -> None:
    loop = asyncio.get_running_loop()
    async with await start_processor(
        delay_ms=300, concurrency_limit=2, concurrency_queue=1, shutdown_timeout=0.5
    ) as proc:

        async def timed() -> tuple[int, float]:
            status, _ = await post(http, proc, payment())
            return status, loop.time() - started

        started = loop.time()
        results = sorted(await asyncio.gather(*(timed() for _ in range(4))), key=lambda r: r[1])
        statuses = [status for status, _ in results]
        assert statuses == [429, 200, 200, 200]
        assert results[0][1] < 0.25  # refused at once, not after the delay
        assert results[3][1] >= 0.58  # the queued one waited for a permit, then slept
        assert proc.state.payments == 3
        assert proc.limiter.in_flight == 0


async def test_concurrency_limiter_defaults_are_the_real_ones(proc: RunningProcessor) -> None:
    assert (proc.limiter.limit, proc.limiter.queue_limit) == (800, 500)
    async with await start_processor() as default:
        assert default.health_limiter.window == 5.0
        assert default.health_limiter.retry_after == "5"
        assert (default.health_limiter.permits, default.health_limiter.queue_limit) == (1, 2)


async def test_429_carries_retry_after(http: Http) -> None:
    async with await start_processor(
        delay_ms=200, concurrency_limit=1, concurrency_queue=0, shutdown_timeout=0.5
    ) as proc:
        url = proc.url + "/payments"
        headers = {"Content-Type": "application/json"}

        async def send() -> aiohttp.ClientResponse:
            async with http.post(url, data=payment(), headers=headers) as resp:
                await resp.read()
                return resp

        first, second = await asyncio.gather(send(), send())
        refused = first if first.status == 429 else second
        assert refused.status == 429
        assert int(refused.headers["Retry-After"]) >= 1


# -- GET /payments/service-health --------------------------------------------------------


async def test_health_reports_failure_and_delay(proc: RunningProcessor, http: Http) -> None:
    proc.state.delay_ms = 235
    proc.state.failure = True
    status, body = await get_json(http, proc.url + "/payments/service-health")
    assert (status, body) == (200, {"failing": True, "minResponseTime": 235})


async def test_health_rate_limit_one_now_two_queued_rest_429(
    proc: RunningProcessor, http: Http
) -> None:
    loop = asyncio.get_running_loop()
    origin = proc.health_limiter.origin
    # start just after a window boundary so that all four arrive in the same window
    k = int((loop.time() - origin) // WINDOW) + 1
    await asyncio.sleep(origin + k * WINDOW + 0.02 - loop.time())

    async def call() -> tuple[int, float, str | None]:
        async with http.get(proc.url + "/payments/service-health") as resp:
            await resp.read()
            return resp.status, loop.time(), resp.headers.get("Retry-After")

    results = sorted(await asyncio.gather(*(call() for _ in range(4))), key=lambda r: r[1])
    answered = [t for status, t, _ in results if status == 200]
    refused = [(t, retry) for status, t, retry in results if status == 429]
    assert len(answered) == 3 and len(refused) == 1
    window_start = origin + k * WINDOW
    assert answered[0] < window_start + WINDOW  # at once
    assert window_start + WINDOW <= answered[1] < window_start + 2 * WINDOW
    assert window_start + 2 * WINDOW <= answered[2] < window_start + 3 * WINDOW
    assert refused[0][0] < window_start + WINDOW  # refused at once
    assert refused[0][1] == "1"  # whole seconds, at least 1


# -- GET /payments/{id} ------------------------------------------------------------------


async def test_get_payment_404_and_400(proc: RunningProcessor, http: Http) -> None:
    status, _ = await get_json(http, f"{proc.url}/payments/{uuid.uuid4()}")
    assert status == 404
    status, _ = await get_json(http, f"{proc.url}/payments/not-a-uuid")
    assert status == 400


async def test_get_payment_is_not_delayed_nor_failing(proc: RunningProcessor, http: Http) -> None:
    cid = str(uuid.uuid4())
    assert (await post(http, proc, payment(cid=cid)))[0] == 200
    proc.state.delay_ms, proc.state.failure = 2000, True
    status, body = await asyncio.wait_for(get_json(http, f"{proc.url}/payments/{cid}"), 1.0)
    assert status == 200 and body["correlationId"] == cid


async def test_unknown_path_404_wrong_method_405(proc: RunningProcessor, http: Http) -> None:
    async with http.get(proc.url + "/nope") as resp:
        assert resp.status == 404
    async with http.get(proc.url + "/payments") as resp:
        assert resp.status == 405
    async with http.post(proc.url + "/payments/service-health") as resp:
        assert resp.status == 405
    async with http.post(proc.url + "/admin/payments-summary", headers=ADMIN) as resp:
        assert resp.status == 405


# -- admin -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/admin/payments-summary", None),
        ("PUT", "/admin/configurations/token", {"token": "x"}),
        ("PUT", "/admin/configurations/delay", {"delay": 1}),
        ("PUT", "/admin/configurations/failure", {"failure": True}),
        ("POST", "/admin/purge-payments", None),
    ],
)
async def test_admin_needs_the_token(
    proc: RunningProcessor, http: Http, method: str, path: str, body: object
) -> None:
    for headers in ({}, {"X-Rinha-Token": "wrong"}):
        async with http.request(method, proc.url + path, json=body, headers=headers) as resp:
            assert resp.status == 401
    assert (proc.state.token, proc.state.delay_ms, proc.state.failure) == ("123", 0, False)


async def test_token_change(proc: RunningProcessor, http: Http) -> None:
    url = proc.url + "/admin/configurations/token"
    async with http.put(url, json={"token": "s3cret"}, headers=ADMIN) as resp:
        assert resp.status == 204
        assert await resp.read() == b""
    assert proc.state.token == "s3cret"
    async with http.get(proc.url + "/admin/payments-summary", headers=ADMIN) as resp:
        assert resp.status == 401
    headers = {"X-Rinha-Token": "s3cret"}
    async with http.get(proc.url + "/admin/payments-summary", headers=headers) as resp:
        assert resp.status == 200


async def test_delay_and_failure_configuration(proc: RunningProcessor, http: Http) -> None:
    base = proc.url + "/admin/configurations/"
    async with http.put(base + "delay", json={"delay": 235}, headers=ADMIN) as resp:
        assert (resp.status, await resp.json()) == (200, {"config": "delay", "was": 0, "is": 235})
    async with http.put(base + "delay", json={"delay": 0}, headers=ADMIN) as resp:
        assert await resp.json() == {"config": "delay", "was": 235, "is": 0}
    async with http.put(base + "failure", json={"failure": True}, headers=ADMIN) as resp:
        assert (resp.status, await resp.json()) == (
            200,
            {"config": "failure", "was": False, "is": True},
        )
    assert (proc.state.delay_ms, proc.state.failure) == (0, True)
    for path, bad in [
        ("delay", {"delay": "235"}),
        ("delay", {"delay": -1}),
        ("delay", {"delay": 1.5}),
        ("delay", {}),
        ("failure", {"failure": "yes"}),
        ("token", {"token": 5}),
    ]:
        async with http.put(base + path, json=bad, headers=ADMIN) as resp:
            assert resp.status == 400, (path, bad)
    assert (proc.state.delay_ms, proc.state.failure, proc.state.token) == (0, True, "123")


async def test_summary_bounds_are_inclusive_and_a_missing_one_means_all(
    proc: RunningProcessor, http: Http
) -> None:
    times = ["2025-07-15T12:00:00.000Z", "2025-07-15T12:00:01.000Z", "2025-07-15T12:00:02.000Z"]
    for amount, at in zip(("1.00", "2.00", "4.00"), times, strict=True):
        assert (await post(http, proc, payment(amount, at)))[0] == 200
    assert await summary(http, proc, **{"from": times[0], "to": times[1]}) == {
        "totalRequests": 2,
        "totalAmount": 3.00,
        "totalFee": 0.15,
        "feePerTransaction": 0.05,
    }
    just_after = "2025-07-15T12:00:00.001Z"
    assert (await summary(http, proc, **{"from": just_after, "to": times[2]}))["totalRequests"] == 2
    assert (await summary(http, proc, **{"from": times[2], "to": times[2]}))["totalAmount"] == 4.0
    assert (await summary(http, proc, **{"from": times[2], "to": times[0]}))["totalRequests"] == 0
    for bounds in ({}, {"from": times[2]}, {"to": times[0]}):
        assert (await summary(http, proc, **bounds))["totalRequests"] == 3, bounds
    async with http.get(
        proc.url + "/admin/payments-summary", params={"from": "yesterday"}, headers=ADMIN
    ) as resp:
        assert resp.status == 400


async def test_summary_fee_is_the_exact_decimal_product(http: Http) -> None:
    async with await start_processor(fee="0.15") as proc:
        assert (await post(http, proc, payment("19.90")))[0] == 200
        async with http.get(proc.url + "/admin/payments-summary", headers=ADMIN) as resp:
            text = await resp.text()
    assert text == (
        '{"totalRequests":1,"totalAmount":19.90,"totalFee":2.9850,"feePerTransaction":0.15}'
    )


async def test_purge(proc: RunningProcessor, http: Http) -> None:
    cid = str(uuid.uuid4())
    assert (await post(http, proc, payment(cid=cid)))[0] == 200
    async with http.post(proc.url + "/admin/purge-payments", headers=ADMIN) as resp:
        assert (resp.status, await resp.json()) == (200, {"message": "All payments purged."})
    assert proc.state.payments == 0
    assert (await summary(http, proc))["totalRequests"] == 0
    assert (await get_json(http, f"{proc.url}/payments/{cid}"))[0] == 404
    assert (await post(http, proc, payment(cid=cid)))[0] == 200  # the id is free again


async def test_payment_is_stored_even_if_the_client_gave_up(
    proc: RunningProcessor, http: Http
) -> None:
    # SPEC §6: a request you gave up on may still be stored by the processor
    proc.state.delay_ms = 300
    cid = str(uuid.uuid4())
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(post(http, proc, payment(cid=cid)), 0.1)
    assert cid not in proc.state.store
    await asyncio.sleep(0.35)
    assert cid in proc.state.store
