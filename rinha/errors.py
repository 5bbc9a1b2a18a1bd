"""Exceptions raised by `rinha._fast` and its pure-Python twin `rinha._reference`."""

from __future__ import annotations

__all__ = ["InvalidPayment", "InvalidTimestamp"]


class InvalidPayment(ValueError):
    """A `POST /payments` body that must be answered 4xx; `str(exc)` is the short reason."""


class InvalidTimestamp(ValueError):
    """A `from`/`to` value that is not an ISO-8601 timestamp (the text is in the message)."""
