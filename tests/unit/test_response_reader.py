"""ResponseReader, compiled and reference: the answers it frames (whole, or byte by byte) and
the ones it leaves, untouched, to httptools."""

from __future__ import annotations

from types import ModuleType

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

BODY = b'{"message":"payment processed successfully"}'


def answer(
    status: str = "200 OK", head: str = "", body: bytes = BODY, length: bool = True
) -> bytes:
    size = f"Content-Length: {len(body)}\r\n" if length else ""
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{head}{size}\r\n".encode() + body
    )


FRAMED = {
    "200": (answer(), 200, True, BODY),
    "422 with a reason of spaces": (answer("422 Unprocessable Content"), 422, True, BODY),
    "500, no body": (answer("500 Internal Server Error", body=b""), 500, True, b""),
    "connection close": (answer(head="Connection: close\r\n"), 200, False, BODY),
    "header case and whitespace": (
        answer(head="CONNECTION:  Keep-Alive \r\ncontent-type:\ttext/plain\r\n"),
        200,
        True,
        BODY,
    ),
}

LEFT = {
    "HTTP/1.0": answer().replace(b"HTTP/1.1", b"HTTP/1.0"),
    "chunked": answer(head="Transfer-Encoding: chunked\r\n", length=False),
    "no length (read to close)": answer(length=False),
    "204": answer("204 No Content", body=b"", length=False),
    "100 continue": b"HTTP/1.1 100 Continue\r\n\r\n" + answer(),
    "two lengths": answer(head=f"Content-Length: {len(BODY)}\r\n"),
    "a length with a sign": answer().replace(b"Content-Length: ", b"Content-Length: +"),
    "connection upgrade": answer(head="Connection: upgrade\r\n"),
    "bare LF": answer().replace(b"OK\r\n", b"OK\n"),
    "no colon": answer(head="X-A\r\n"),
    "two answers at once": answer() + answer(),
    "not HTTP": b"SSH-2.0-OpenSSH_9.2\r\n",
}


@pytest.mark.parametrize("case", sorted(FRAMED))
def test_a_plain_answer_is_framed_whole_or_byte_by_byte(fast: ModuleType, case: str) -> None:
    data, status, keep_alive, body = FRAMED[case]
    reader = fast.ResponseReader()
    assert reader.feed(data) == 1
    assert (reader.status, reader.keep_alive, reader.body) == (status, keep_alive, body)
    slow = fast.ResponseReader()
    states = [slow.feed(data[i : i + 1]) for i in range(len(data))]
    assert states == [0] * (len(data) - 1) + [1]
    assert (slow.status, slow.keep_alive, slow.body) == (status, keep_alive, body)
    assert slow.take() == b"", "nothing held after an answer"


@pytest.mark.parametrize("case", sorted(LEFT))
def test_anything_else_is_left_whole_for_httptools(fast: ModuleType, case: str) -> None:
    data = LEFT[case]
    reader = fast.ResponseReader()
    assert reader.feed(data) == -1
    assert reader.take() == data, "every byte, from the start of the answer"


def test_one_answer_after_another_on_one_connection(fast: ModuleType) -> None:
    reader = fast.ResponseReader()
    for status in ("200 OK", "429 Too Many Requests", "200 OK"):
        data = answer(status)
        assert reader.feed(data[:30]) == 0
        assert reader.feed(data[30:]) == 1
        assert reader.status == int(status[:3])


class _Httptools:
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.body = b""
        self.done: tuple[int, bool, bytes] | None = None

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done = (self.parser.get_status_code(), self.parser.should_keep_alive(), self.body)


@settings(max_examples=80, deadline=None)
@given(
    case=st.sampled_from(sorted(FRAMED)),
    cuts=st.lists(st.integers(1, 400), max_size=6),
)
def test_compiled_and_reference_agree_with_httptools(
    compiled: ModuleType, reference: ModuleType, case: str, cuts: list[int]
) -> None:
    data = FRAMED[case][0]
    pieces, at = [], 0
    for cut in sorted(set(cuts)):
        if at < cut < len(data):
            pieces.append(data[at:cut])
            at = cut
    pieces.append(data[at:])
    seen = []
    for fast in (compiled, reference):
        reader = fast.ResponseReader()
        states = [reader.feed(piece) for piece in pieces]
        seen.append((states, reader.status, reader.keep_alive, reader.body))
    assert seen[0] == seen[1]
    general = _Httptools()
    general.parser.feed_data(data)
    assert general.done == seen[0][1:]
