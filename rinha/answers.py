"""HTTP answers as whole response bytes: the builders and the prebuilt ones the hot path writes
(also handed to the compiled intake, `rinha.fast.PaymentIntake`)."""

from __future__ import annotations

import orjson

_REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Payload Too Large",
    422: "Unprocessable Content",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def response(
    status: int, body: bytes = b"", content_type: str = "application/json", extra: str = ""
) -> bytes:
    head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
    if body:
        head += f"Content-Type: {content_type}\r\n"
    return f"{head}{extra}Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body


def error(status: int, message: str, extra: str = "") -> bytes:
    return response(status, orjson.dumps({"error": message}), extra=extra)


ACCEPTED = response(202)  # prebuilt: the hot path writes these bytes and nothing else
DUPLICATE = error(409, "duplicate correlationId: this payment was already accepted")
AMOUNT_MISMATCH = error(422, "correlationId already used for a different amount")
BACKLOG_FULL = error(
    503, "too many payments waiting for a processor: retry later", extra="Retry-After: 1\r\n"
)
IDS_FULL = error(
    503,
    "the id table is full (RINHA_MAX_IDS): purge or raise the limit",
    extra="Retry-After: 60\r\n",
)
JOURNAL_FAILED = error(
    503, "the payment could not be journaled: retry later", extra="Retry-After: 1\r\n"
)
UNAUTHORIZED = error(401, "missing or wrong X-Rinha-Token")
OK_EMPTY = response(200, b'{"message":"ok"}')
NOT_FOUND = error(404, "not found")
ALIVE = response(200, b"ok\n", content_type="text/plain")

# what the intake answers, in PaymentIntake's order
INTAKE_ANSWERS = (ACCEPTED, DUPLICATE, AMOUNT_MISMATCH, IDS_FULL, BACKLOG_FULL)
