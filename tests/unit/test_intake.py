"""The intake (POST /payments framed and answered in C) and its queue, compiled and reference:
what it takes, what it leaves to the general parser, and that both implementations agree."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from types import ModuleType

import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rinha
from rinha.app import App
from rinha.config import Config
from rinha.protocol import HttpProtocol

ANSWERS = (b"<202>", b"<409>", b"<422>", b"<503 ids>", b"<503 backlog>")
ACCEPTED, DUPLICATE, MISMATCH, IDS_FULL, BACKLOG_FULL = ANSWERS


def uid(n: int) -> str:
    return str(uuid.UUID(int=n + 1))


def body(correlation_id: str, amount: str = "19.90") -> bytes:
    return f'{{"correlationId": "{correlation_id}", "amount": {amount}}}'.encode()


def post(payload: bytes, head: str = "", path: str = "/payments", version: str = "1.1") -> bytes:
    return (
        f"POST {path} HTTP/{version}\r\nHost: x\r\nContent-Type: application/json\r\n{head}"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


class Intake:
    """An intake on fresh files: its id table, journal and queue at hand."""

    def __init__(self, fast: ModuleType, directory: str, max_ids: int = 1000) -> None:
        self.fast = fast
        self.ids = fast.SharedIdSet(os.path.join(directory, "ids.bin"), max_ids, 0)
        self.journal = fast.Journal(os.path.join(directory, "journal.bin"))
        self.queue = fast.PaymentQueue()
        self.intake = fast.PaymentIntake(self.ids, self.journal, self.queue, 1024, ANSWERS)

    def feed(self, data: bytes, room: int = 100) -> tuple[int, bytes, int]:
        return self.intake.feed(data, room)

    def counters(self) -> tuple[int, int, int, int]:
        i = self.intake
        return i.accepted, i.rejected, i.duplicates, i.refused_full

    def close(self) -> None:
        self.journal.close()
        self.ids.close()


@pytest.fixture
def intake(fast: ModuleType, tmp_path) -> Intake:  # type: ignore[no-untyped-def]
    made = Intake(fast, str(tmp_path))
    yield made
    made.close()


def test_pipelined_posts_are_answered_and_queued_up_to_the_first_other_request(intake):
    first, second = post(body(uid(1))), post(body(uid(2), "0.015"))
    rest = b"GET /payments-summary HTTP/1.1\r\nHost: x\r\n\r\n" + post(body(uid(3)))
    assert intake.feed(first + second + rest) == (len(first + second), ACCEPTED * 2, 2)
    assert intake.queue.items() == [(uid(1), 1990), (uid(2), 2)]
    assert intake.counters() == (2, 0, 0, 0)
    ledgers = (intake.fast.Ledger(), intake.fast.Ledger())
    assert intake.journal.replay(ledgers) == [
        (intake.fast.J_ACCEPT, uid(1), 1990, 0, 0),
        (intake.fast.J_ACCEPT, uid(2), 2, 0, 0),
    ]


def test_an_id_seen_before_is_a_duplicate_or_a_mismatch_and_not_queued(intake):
    intake.feed(post(body(uid(1))))
    same = post(body(uid(1).upper()))  # the same id in upper case
    other_amount = post(body(uid(1), "5.00"))
    assert intake.feed(same + other_amount) == (len(same + other_amount), DUPLICATE + MISMATCH, 0)
    assert len(intake.queue) == 1
    assert intake.counters() == (1, 1, 1, 0)


def test_no_room_in_the_backlog_answers_503_and_journals_nothing(intake):
    request = post(body(uid(1)))
    assert intake.feed(request + request, room=1) == (2 * len(request), ACCEPTED + BACKLOG_FULL, 1)
    assert intake.feed(post(body(uid(2))), room=0) == (len(request), BACKLOG_FULL, 0)
    assert intake.counters() == (1, 0, 0, 2)
    assert len(intake.journal.replay((intake.fast.Ledger(), intake.fast.Ledger()))) == 1


def test_a_full_id_table_answers_503(fast, tmp_path):
    small = Intake(fast, str(tmp_path), max_ids=1)
    try:
        capacity = small.ids.capacity
        taken = b"".join(post(body(uid(i))) for i in range(capacity))
        assert small.feed(taken)[2] == capacity
        assert small.feed(post(body(uid(capacity))))[1] == IDS_FULL
        assert small.counters() == (capacity, 0, 0, 1)
    finally:
        small.close()


# each of these goes to the general parser, which answers it as it always did
LEFT_TO_THE_PARSER = {
    "another route": post(body(uid(1)), path="/purge-payments"),
    "HTTP/1.0": post(body(uid(1)), version="1.0"),
    "lower-case method": post(body(uid(1))).replace(b"POST", b"post", 1),
    "a query string": post(body(uid(1)), path="/payments?x=1"),
    "chunked": post(body(uid(1)), head="Transfer-Encoding: chunked\r\n"),
    "expect": post(body(uid(1)), head="Expect: 100-continue\r\n"),
    "upgrade": post(body(uid(1)), head="Upgrade: h2c\r\n"),
    "connection close": post(body(uid(1)), head="Connection: close\r\n"),
    "two lengths": post(body(uid(1)), head="Content-Length: 74\r\n"),
    "no length": b"POST /payments HTTP/1.1\r\nHost: x\r\n\r\n" + body(uid(1)),
    "signed length": post(body(uid(1))).replace(b"Content-Length: ", b"Content-Length: +"),
    "body over max_body": post(body(uid(1)) + b" " * 1024),
    "incomplete body": post(body(uid(1)))[:-1],
    "incomplete head": post(body(uid(1)))[:40],
    "space before the colon": post(body(uid(1)), head="X-A : b\r\n"),
    "folded header": post(body(uid(1)), head="X-A: b\r\n c\r\n"),
    "no colon": post(body(uid(1)), head="X-A\r\n"),
    "bare LF": post(body(uid(1))).replace(b"Host: x\r\n", b"Host: x\n"),
    "control byte": post(body(uid(1)), head="X-A: b\x01c\r\n"),
    "head over 8 KiB": post(body(uid(1)), head="X-A: " + "b" * 8200 + "\r\n"),
    "invalid body": post(b'{"correlationId": "nope", "amount": 1}'),
    "amount zero": post(body(uid(1), "0.001")),
}


@pytest.mark.parametrize("case", sorted(LEFT_TO_THE_PARSER))
def test_anything_unusual_is_left_whole_to_the_general_parser(intake, case):
    data = LEFT_TO_THE_PARSER[case]
    assert intake.feed(data) == (0, b"", 0)
    taken = post(body(uid(9)))
    assert intake.feed(taken + data) == (len(taken), ACCEPTED, 1), "after a plain one, too"
    assert intake.counters() == (1, 0, 0, 0)


def test_what_it_takes_may_vary_in_case_and_whitespace(intake):
    head = "content-length: 74 \r\nCONNECTION:keep-Alive\r\nX-Forwarded-For:\t1.2.3.4\r\n"
    payload = body(uid(1))
    request = (f"POST /payments HTTP/1.1\r\n{head}\r\n").encode() + payload
    assert len(payload) == 74
    assert intake.feed(request) == (len(request), ACCEPTED, 1)


def test_the_queue_is_first_in_first_out_and_grows_past_its_ring(fast):
    queue = fast.PaymentQueue()
    for i in range(3000):  # past the initial 1024 entries, with the ring wrapped
        queue.push(uid(i), i + 1)
        if i % 3 == 0:
            assert queue.pop() == (uid(i // 3), i // 3 + 1)
    queue.push_front(uid(99_999).upper(), 7)
    assert len(queue) == 2001
    assert queue.pop() == (uid(99_999), 7), "put back in front, the id in canonical lower case"
    assert queue.items()[:2] == [(uid(1000), 1001), (uid(1001), 1002)]
    queue.clear()
    assert len(queue) == 0 and not queue
    with pytest.raises(IndexError):
        queue.pop()
    with pytest.raises(ValueError):
        queue.push("not-a-uuid", 1)


PIECES = st.sampled_from(
    [post(body(uid(i))) for i in range(4)]
    + [post(body(uid(0), "3.00")), LEFT_TO_THE_PARSER["chunked"], b"GET / HTTP/1.1\r\n\r\n"]
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(stream=st.lists(PIECES, max_size=8), room=st.integers(0, 5))
def test_compiled_and_reference_take_the_same_bytes_and_answer_the_same(
    compiled, reference, tmp_path_factory, stream, room
):
    data = b"".join(stream)
    results = []
    for fast in (compiled, reference):
        made = Intake(fast, str(tmp_path_factory.mktemp("intake")))
        try:
            results.append((made.feed(data, room), made.queue.items(), made.counters()))
        finally:
            made.close()
    assert results[0] == results[1]


# -- the compiled connection: a plain POST from bytes in to 202 out without a Python frame --------


class CTransport:
    """Records what is written with C-builtin methods, as a uvloop transport's are: the test
    sees the protocol's frames, not its own."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.write = self.data.extend
        self.get_extra_info = {}.get  # get_extra_info("socket") -> None


async def test_a_plain_post_runs_no_python_frame_in_the_compiled_build(compiled, tmp_path):
    if not issubclass(HttpProtocol, compiled.ProtocolCore):
        pytest.skip("RINHA_NO_EXTENSIONS=1: the protocol's base is the reference")
    app = App(Config(data_dir=str(tmp_path), dispatch_tick_ms=3_600_000, max_ids=1000), compiled)
    protocol = HttpProtocol(app, intake=app.intake)
    transport = CTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    requests = [post(body(uid(n))) for n in range(3)]
    package = os.path.dirname(rinha.__file__)
    frames: list[str] = []

    def profile(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "call":
            frames.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")

    sys.setprofile(profile)
    try:
        for request in requests:  # the first sets the pump's timer, the others find it set
            protocol.data_received(request)
    finally:
        sys.setprofile(None)
    try:
        assert bytes(transport.data).count(b"HTTP/1.1 202 ") == 3
        assert app.dispatcher.backlog == 3 and app.dispatcher._pump_timer is not None
        if isinstance(asyncio.get_running_loop(), uvloop.Loop):
            assert frames == []  # the timer too: uvloop's call_later and time() are compiled
        else:  # the stdlib loop's time() and call_later() are Python; rinha's code is not
            assert [f for f in frames if f.startswith(package)] == []
    finally:
        await app.close()
