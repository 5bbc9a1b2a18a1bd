"""The HTTP protocol driven through a fake transport: no sockets, every byte boundary."""

from __future__ import annotations

import asyncio
import gc
import shutil
from typing import Any

import httptools
import orjson
import pytest
from fake_transport import FakeTransport

from rinha.answers import error, response
from rinha.app import App
from rinha.config import Config
from rinha.protocol import HttpProtocol

UUID = "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"
PAYMENT = f'{{"correlationId": "{UUID}", "amount": 19.90}}'.encode()


def post(body: bytes, path: str = "/payments", extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


class Responses:
    """Parses what the server wrote into (status, headers, body) tuples."""

    def __init__(self, data: bytes) -> None:
        self.items: list[tuple[int, dict[bytes, bytes], bytes]] = []
        self._headers: dict[bytes, bytes] = {}
        self._body = b""
        parser = httptools.HttpResponseParser(self)
        self._parser = parser
        parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.items.append((self._parser.get_status_code(), self._headers, self._body))
        self._headers, self._body = {}, b""


# The dispatcher never sends in these tests (its first tick is an hour away): they look at
# what the protocol queues, and need no processor.
QUIET = {"dispatch_tick_ms": 3_600_000, "max_ids": 10_000}  # a small id table: many Apps per test


# each App its own data directory: the instance's files never leak from one test to the next
@pytest.fixture
async def app(fast, tmp_path):
    app = App(Config(max_body_bytes=1024, data_dir=str(tmp_path), **QUIET), fast)
    yield app
    await app.close()


# Every test runs twice: with the compiled intake in front of httptools (as the clients'
# listener has it) and without; the answers must be the same byte for byte.
ENTRY = "httptools"


@pytest.fixture(autouse=True, params=["httptools", "intake"])
def entry(request: pytest.FixtureRequest) -> Any:
    global ENTRY
    ENTRY = request.param
    yield request.param
    ENTRY = "httptools"


def connect(app: App, **tables: Any) -> tuple[HttpProtocol, FakeTransport]:
    if ENTRY == "intake" and "routes" not in tables:  # the peers' listener has no intake
        tables["intake"] = app.intake
    protocol = HttpProtocol(app, **tables)
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_valid_payment_is_accepted_and_queued(app):
    protocol, transport = connect(app)
    protocol.data_received(post(PAYMENT))
    [(status, _, body)] = Responses(bytes(transport.data)).items
    assert status == 202 and body == b""
    assert app.dispatcher.fresh.items() == [(UUID, 1990)]
    assert not transport.closed


@pytest.mark.parametrize("request_bytes", [post(PAYMENT), get("/healthz")])
async def test_split_at_every_offset(fast, tmp_path, request_bytes):
    for cut in range(1, len(request_bytes)):
        app = App(Config(data_dir=str(tmp_path / str(cut)), **QUIET), fast)
        protocol, transport = connect(app)
        protocol.data_received(request_bytes[:cut])
        assert transport.data == b"", f"answered before the request was whole (cut {cut})"
        protocol.data_received(request_bytes[cut:])
        items = Responses(bytes(transport.data)).items
        assert [s for s, _, _ in items] in ([202], [200]), cut
        assert app.dispatcher.backlog == (1 if request_bytes.startswith(b"POST") else 0)
        app.journal.close()  # one App per cut: its files go before the next one's
        app.ids.close()
        shutil.rmtree(tmp_path / str(cut))


async def test_byte_by_byte_pipelined(app):
    stream = post(PAYMENT) + get("/healthz") + post(b'{"amount": 1}')
    protocol, transport = connect(app)
    for i in range(len(stream)):
        protocol.data_received(stream[i : i + 1])
    statuses = [s for s, _, _ in Responses(bytes(transport.data)).items]
    assert statuses == [202, 200, 400]


async def test_pipelined_answers_in_order(app):
    other = "5a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"
    stream = (
        post(PAYMENT)
        + get("/nope")
        + post(PAYMENT)
        + post(f'{{"correlationId":"{other}","amount":1.5}}'.encode())
        + get("/payments-summary")
        + post(b"", path="/purge-payments")
    )
    protocol, transport = connect(app)
    protocol.data_received(stream)
    items = Responses(bytes(transport.data)).items
    assert [s for s, _, _ in items] == [202, 404, 409, 202, 200, 200]
    assert orjson.loads(items[2][2])["error"].startswith("duplicate")


async def test_deferred_answer_keeps_order(fast, tmp_path):
    app = App(Config(peers=("unix:/nonexistent",), data_dir=str(tmp_path), **QUIET), fast)
    release = asyncio.Event()

    async def slow_peer_counts(from_ms, to_ms):
        await release.wait()
        return (1, 100, 0, 0)

    app.cluster.peer_counts = slow_peer_counts  # type: ignore[method-assign]
    protocol, transport = connect(app)
    protocol.data_received(get("/payments-summary") + get("/healthz"))
    await settle()
    assert transport.data == b"", "an answer overtook the summary still being computed"
    release.set()
    await settle()
    items = Responses(bytes(transport.data)).items
    assert [s for s, _, _ in items] == [200, 200]
    assert orjson.loads(items[0][2])["default"] == {"totalRequests": 1, "totalAmount": 1.0}


async def test_peer_down_gives_503(fast, tmp_path):
    app = App(
        Config(peers=(f"unix:{tmp_path}/missing.sock",), data_dir=str(tmp_path), **QUIET), fast
    )
    protocol, transport = connect(app)
    protocol.data_received(get("/payments-summary"))
    for _ in range(50):
        await asyncio.sleep(0.01)
        if transport.data:
            break
    [(status, _, body)] = Responses(bytes(transport.data)).items
    assert status == 503
    assert "missing.sock" in orjson.loads(body)["error"]


@pytest.mark.parametrize(
    "body,reason",
    [
        (b"not json", "JSON"),
        (b"[]", "object"),
        (b'{"amount": 1}', "correlationId"),
        (f'{{"correlationId": "{UUID}"}}'.encode(), "amount"),
        (f'{{"correlationId": "{UUID}", "amount": -1}}'.encode(), "positive"),
        (b'{"correlationId": "nope", "amount": 1}', "UUID"),
    ],
)
async def test_invalid_payment_400_with_reason(app, body, reason):
    protocol, transport = connect(app)
    protocol.data_received(post(body))
    [(status, headers, answer)] = Responses(bytes(transport.data)).items
    assert status == 400
    assert headers[b"content-type"] == b"application/json"
    assert reason.lower() in orjson.loads(answer)["error"].lower()
    assert app.dispatcher.backlog == 0
    assert not transport.closed, "a bad body is not a broken stream"


async def test_summary_reads_ledgers_with_inclusive_bounds(app):
    app.ledgers[0].add(app.fast.iso_to_ms("2025-07-10T12:00:00.000Z"), 1990)
    app.ledgers[0].add(app.fast.iso_to_ms("2025-07-10T12:00:01.000Z"), 1000)
    app.ledgers[1].add(app.fast.iso_to_ms("2025-07-10T12:00:02.000Z"), 5)
    protocol, transport = connect(app)
    protocol.data_received(
        get("/payments-summary?from=2025-07-10T12:00:00.000Z&to=2025-07-10T12:00:01.000Z")
        + get("/payments-summary")
        + get("/payments-summary?from=2025-07-10T12%3A00%3A01.001Z")
    )
    bodies = [orjson.loads(b) for _, _, b in Responses(bytes(transport.data)).items]
    assert bodies[0] == {
        "default": {"totalRequests": 2, "totalAmount": 29.9},
        "fallback": {"totalRequests": 0, "totalAmount": 0},
    }
    assert bodies[1]["fallback"] == {"totalRequests": 1, "totalAmount": 0.05}
    assert bodies[2]["default"]["totalRequests"] == 0
    assert bodies[2]["fallback"]["totalRequests"] == 1


async def test_summary_bad_timestamp_400(app):
    protocol, transport = connect(app)
    protocol.data_received(get("/payments-summary?from=yesterday"))
    [(status, _, body)] = Responses(bytes(transport.data)).items
    assert status == 400 and "from" in orjson.loads(body)["error"]


async def test_method_not_allowed_lists_allowed(app):
    protocol, transport = connect(app)
    protocol.data_received(get("/payments"))
    [(status, headers, _)] = Responses(bytes(transport.data)).items
    assert status == 405 and headers[b"allow"] == b"POST"


def whoami(app: App, query: bytes, body: bytes) -> bytes:
    return response(200, b"inside " + query, content_type="text/plain")


INSIDE = {b"/inside": {b"GET": whoami}}


async def test_a_listener_serves_its_own_route_table(app):
    protocol, transport = connect(
        app, routes=INSIDE, not_allowed={b"/inside": error(405, "inside: GET only")}
    )
    protocol.data_received(
        get("/inside?a=1") + get("/payments-summary") + post(b"", path="/inside")
    )
    items = Responses(bytes(transport.data)).items
    assert [s for s, _, _ in items] == [200, 404, 405]  # the default routes are not there
    assert items[0][2] == b"inside a=1"
    assert orjson.loads(items[2][2]) == {"error": "inside: GET only"}
    protocol, transport = connect(app)  # the default listener does not know /inside
    protocol.data_received(get("/inside"))
    assert [s for s, _, _ in Responses(bytes(transport.data)).items] == [404]


async def test_a_route_table_without_its_405_table_still_lists_allowed(app):
    protocol, transport = connect(app, routes=INSIDE)  # the 405 table is the default one
    protocol.data_received(post(b"", path="/inside"))
    [(status, headers, _)] = Responses(bytes(transport.data)).items
    assert status == 405 and headers[b"allow"] == b"GET"


async def test_oversized_body_413_and_close(app):
    protocol, transport = connect(app)
    protocol.data_received(post(b"x" * 2000) + get("/healthz"))
    [(status, _, _)] = Responses(bytes(transport.data)).items
    assert status == 413 and transport.closed


async def test_oversized_headers_431_and_close(app):
    protocol, transport = connect(app)
    protocol.data_received(get("/healthz", extra="X-Big: " + "a" * 9000 + "\r\n"))
    [(status, _, _)] = Responses(bytes(transport.data)).items
    assert status == 431 and transport.closed


async def test_garbage_400_and_close(app):
    protocol, transport = connect(app)
    protocol.data_received(b"\x16\x03\x01 hello\r\n\r\n")
    [(status, _, _)] = Responses(bytes(transport.data)).items
    assert status == 400 and transport.closed
    protocol.data_received(get("/healthz"))  # ignored once closing
    assert len(Responses(bytes(transport.data)).items) == 1


async def test_connection_close_honoured(app):
    protocol, transport = connect(app)
    protocol.data_received(get("/healthz", extra="Connection: close\r\n"))
    assert transport.closed
    assert [s for s, _, _ in Responses(bytes(transport.data)).items] == [200]


def live(kind: type) -> int:
    return sum(1 for o in gc.get_objects() if type(o) is kind)


async def test_closed_connections_are_freed_without_the_gc(app):
    # a protocol whose parser calls back into it is a reference cycle: unless broken when
    # the connection ends, every closed connection waits for a (rare, frozen-heap) GC run
    gc.collect()
    gc.disable()
    try:
        before = live(HttpProtocol), live(httptools.HttpRequestParser)
        for _ in range(20):
            protocol, transport = connect(app)
            protocol.data_received(get("/healthz", extra="Connection: close\r\n"))
            assert transport.closed
            protocol.connection_lost(None)
        del protocol, transport
        assert (live(HttpProtocol), live(httptools.HttpRequestParser)) == before
    finally:
        gc.enable()


async def test_purge_clears_ledgers_ids_and_queue(app):
    protocol, transport = connect(app)
    app.ledgers[0].add(1, 100)
    protocol.data_received(post(PAYMENT) + post(b"", path="/purge-payments") + post(PAYMENT))
    statuses = [s for s, _, _ in Responses(bytes(transport.data)).items]
    assert statuses == [202, 200, 202], "after a purge the same id is new again"
    assert len(app.ledgers[0]) == 0 and app.dispatcher.backlog == 1


async def test_metrics_text(app):
    from prometheus_client.parser import text_string_to_metric_families

    protocol, transport = connect(app)
    protocol.data_received(post(PAYMENT) + get("/metrics"))
    _, (status, _, body) = Responses(bytes(transport.data)).items
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    # every family typed and described; one family per name, its series together
    assert all(f.type != "unknown" and f.documentation for f in families.values())
    assert families["rinha_accepted"].type == "counter"
    assert families["rinha_accepted"].samples[0].value == 1
    assert families["rinha_backlog"].samples[0].value == 1
    processed = families["rinha_processed"].samples
    assert {s.labels["processor"] for s in processed} == {"default", "fallback"}
    assert families["rinha_processor_latency_seconds"].type == "gauge"
    assert families["rinha_loop_lag_seconds"].type == "gauge"
    [build] = families["rinha_build_info"].samples
    assert build.labels["implementation"] in ("compiled", "reference")
    [config] = families["rinha_config_info"].samples
    assert config.labels["max_backlog"] == str(app.config.max_backlog)
    assert config.labels["admin_token"] == ""  # never the token itself


async def test_a_closed_journal_costs_an_answer_not_the_connection(app):
    """At shutdown the files close before the last connections: a POST then gets an error
    answer from the general path, whichever path it took first."""
    app.journal.close()
    protocol, transport = connect(app)
    protocol.data_received(post(PAYMENT) + get("/healthz"))
    statuses = [s for s, _, _ in Responses(bytes(transport.data)).items]
    assert statuses == [500, 200]
    assert not transport.closed
