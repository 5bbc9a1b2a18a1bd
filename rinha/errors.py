"""Exceptions raised by `rinha._fast` and its pure-Python twin `rinha._reference`."""

from __future__ import annotations

__all__ = [
    "ConnectFailed",
    "FileFormatError",
    "InvalidPayment",
    "InvalidTimestamp",
    "OutcomeUnknown",
]

# InvalidPayment reasons: one text for both implementations (tests compare them)
R_UTF8 = "invalid JSON: body is not UTF-8"
R_JSON = "invalid JSON"
R_TRAILING = "invalid JSON: trailing data after the value"
R_NOT_OBJECT = "body must be a JSON object"
R_ID_MISSING = "missing correlationId"
R_ID_DUPLICATE = "duplicate key correlationId"
R_ID_TYPE = "correlationId must be a string"
R_ID_UUID = "correlationId must be a UUID (8-4-4-4-12 hex digits)"
R_AMOUNT_MISSING = "missing amount"
R_AMOUNT_DUPLICATE = "duplicate key amount"
R_AMOUNT_TYPE = "amount must be a JSON number"
R_AMOUNT_SIGN = "amount must be a positive number"
R_AMOUNT_LARGE = "amount too large (max 100000000000.00)"
R_AMOUNT_ZERO = "amount rounds to 0.00"


class InvalidPayment(ValueError):
    """A `POST /payments` body that must be answered 4xx; `str(exc)` is the short reason."""


class InvalidTimestamp(ValueError):
    """A `from`/`to` value that is not an ISO-8601 timestamp (the text is in the message)."""


class FileFormatError(ValueError):
    """A SharedIdSet or Journal file that is not one (bad magic), is of another format version,
    or whose header contradicts its size; the path is in the message."""


class ConnectFailed(ConnectionError):
    """A request was never written: nothing can have reached the server."""


class OutcomeUnknown(ConnectionError):
    """A request was written but no complete answer came back (timeout or connection lost)."""
