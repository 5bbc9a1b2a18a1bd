"""Picks the hot-path implementation: compiled `rinha._fast`, or `rinha._reference` (pure Python)
when RINHA_NO_EXTENSIONS=1. Import the API from here, never from either module directly."""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

__all__ = [
    "IMPLEMENTATION",
    "ANSWERED",
    "FAILED",
    "NO_EVIDENCE",
    "STORED",
    "UNPINNED",
    "CLAIM_CONFLICT",
    "CLAIM_FULL",
    "CLAIM_MINE",
    "CLAIM_NEW",
    "CLAIM_OTHER",
    "J_ACCEPT",
    "J_ATTEMPT",
    "J_FINISHED",
    "J_RELEASED",
    "J_SNAPSHOT",
    "J_STORED",
    "MAX_CENTS",
    "MAX_MS",
    "MIN_MS",
    "AttemptCall",
    "AttemptFiler",
    "CatchUp",
    "DispatcherCore",
    "ProcessorState",
    "Connection",
    "IdSet",
    "Journal",
    "Ledger",
    "Payment",
    "PaymentIntake",
    "PaymentQueue",
    "PoolCore",
    "ProtocolCore",
    "ResponseReader",
    "SharedIdSet",
    "iso_to_ms",
    "ms_to_iso",
    "now_ms",
    "parse_payment",
    "payment_body",
    "payment_request",
]

IMPLEMENTATION: str  # "compiled" | "reference"

if TYPE_CHECKING:  # both modules have the same API; type-check against the stub of the compiled one
    from rinha._fast import (
        ANSWERED,
        CLAIM_CONFLICT,
        CLAIM_FULL,
        CLAIM_MINE,
        CLAIM_NEW,
        CLAIM_OTHER,
        FAILED,
        J_ACCEPT,
        J_ATTEMPT,
        J_FINISHED,
        J_RELEASED,
        J_SNAPSHOT,
        J_STORED,
        MAX_CENTS,
        MAX_MS,
        MIN_MS,
        NO_EVIDENCE,
        STORED,
        UNPINNED,
        AttemptCall,
        AttemptFiler,
        CatchUp,
        Connection,
        DispatcherCore,
        IdSet,
        Journal,
        Ledger,
        Payment,
        PaymentIntake,
        PaymentQueue,
        PoolCore,
        ProcessorState,
        ProtocolCore,
        ResponseReader,
        SharedIdSet,
        iso_to_ms,
        ms_to_iso,
        now_ms,
        parse_payment,
        payment_body,
        payment_request,
    )
else:
    if os.environ.get("RINHA_NO_EXTENSIONS", "") not in ("", "0"):
        _implementation = importlib.import_module("rinha._reference")
        IMPLEMENTATION = "reference"
    else:
        try:
            _implementation = importlib.import_module("rinha._fast")
        except ImportError as exc:
            raise ImportError(
                "rinha._fast is not compiled: run `pip install .` (or `pip install -e .`), "
                "or set RINHA_NO_EXTENSIONS=1 to use the pure-Python reference"
            ) from exc
        IMPLEMENTATION = "compiled"
    globals().update({name: getattr(_implementation, name) for name in __all__[1:]})
