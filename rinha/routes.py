"""One function per endpoint. Each returns the whole response as bytes, or an awaitable of it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, unquote

from .answers import (
    ACCEPTED,
    ALIVE,
    AMOUNT_MISMATCH,
    BACKLOG_FULL,
    DUPLICATE,
    IDS_FULL,
    JOURNAL_FAILED,
    NOT_FOUND,
    OK_EMPTY,
    error,
    response,
)
from .app import App
from .cluster import PeerError, encode_counts
from .errors import InvalidPayment, InvalidTimestamp
from .fast import CLAIM_CONFLICT, CLAIM_FULL, CLAIM_NEW
from .processors import now_ms

log = logging.getLogger("rinha.routes")

Response = bytes | Awaitable[bytes]
Handler = Callable[[App, bytes, bytes], Response]  # (app, query, body) -> response

UNBOUNDED_FROM_MS = -(2**62)  # a summary range with no `from`, epoch ms
UNBOUNDED_TO_MS = 2**62  # ... with no `to`


# --------------------------------------------------------------------------- public
def post_payment(app: App, query: bytes, body: bytes) -> Response:
    try:
        correlation_id, cents = app.fast.parse_payment(body)
    except InvalidPayment as exc:
        app.intake.rejected += 1
        return error(400, str(exc))
    if app.dispatcher.backlog >= app.config.max_backlog:
        app.intake.refused_full += 1
        return BACKLOG_FULL
    try:  # on disk (page cache) before the claim and the 202: see App.recover
        app.journal.accept(correlation_id, cents)
    except OSError:
        log.exception("journal write failed")
        app.intake.refused_full += 1
        return JOURNAL_FAILED
    claim = app.ids.claim(correlation_id, cents)
    if claim == CLAIM_NEW:
        app.intake.accepted += 1
        app.dispatcher.submit(correlation_id, cents)
        return ACCEPTED
    if claim == CLAIM_CONFLICT:
        app.intake.rejected += 1
        return AMOUNT_MISMATCH
    if claim == CLAIM_FULL:
        app.intake.refused_full += 1
        return IDS_FULL
    app.intake.duplicates += 1  # CLAIM_MINE / CLAIM_OTHER: accepted before, here or by a peer
    return DUPLICATE


def _range(app: App, query: bytes) -> tuple[int, int]:
    params = parse_qs(query.decode("latin-1"), keep_blank_values=True)
    bounds = []
    for name, unbounded in (("from", UNBOUNDED_FROM_MS), ("to", UNBOUNDED_TO_MS)):
        values = params.get(name)
        if not values or values[0] == "":
            bounds.append(unbounded)
            continue
        try:
            bounds.append(app.fast.iso_to_ms(unquote(values[0])))
        except InvalidTimestamp as exc:
            raise InvalidTimestamp(f"{name}: {exc}") from None
    return bounds[0], bounds[1]


def money(cents: int) -> bytes:
    """A JSON number with two decimals from int cents: exact at any size (no float)."""
    whole, part = divmod(cents, 100)
    return b"%d.%02d" % (whole, part)


def _summary_json(counts: tuple[int, int, int, int]) -> bytes:
    return response(
        200,
        b'{"default":{"totalRequests":%d,"totalAmount":%s},'
        b'"fallback":{"totalRequests":%d,"totalAmount":%s}}'
        % (counts[0], money(counts[1]), counts[2], money(counts[3])),
    )


def get_summary(app: App, query: bytes, body: bytes) -> Response:
    try:
        from_ms, to_ms = _range(app, query)
    except InvalidTimestamp as exc:
        return error(400, str(exc))
    local = app.local_counts(from_ms, to_ms)  # taken now, before any await
    if not app.cluster.peers:
        return _summary_json(local)
    return _cluster_summary(app, local, from_ms, to_ms)


async def _cluster_summary(
    app: App, local: tuple[int, int, int, int], from_ms: int, to_ms: int
) -> bytes:
    try:
        peers = await app.cluster.peer_counts(from_ms, to_ms)
    except PeerError as exc:
        log.warning("summary unavailable: %s", exc)
        return error(503, f"summary unavailable: {exc}")
    return _summary_json(
        (local[0] + peers[0], local[1] + peers[1], local[2] + peers[2], local[3] + peers[3])
    )


def post_purge(app: App, query: bytes, body: bytes) -> Response:
    app.purge()  # RINHA_ADMIN_TOKEN is checked by the protocol (TOKEN_REQUIRED)
    if not app.cluster.peers:
        return OK_EMPTY
    return _purge_peers(app)


async def _purge_peers(app: App) -> bytes:
    try:
        await app.cluster.purge_peers()
    except PeerError as exc:
        return error(503, f"purged here, but not everywhere: {exc}")
    return OK_EMPTY


def get_alive(app: App, query: bytes, body: bytes) -> Response:
    return ALIVE


def get_metrics(app: App, query: bytes, body: bytes) -> Response:
    return response(200, app.metrics(), content_type="text/plain; version=0.0.4; charset=utf-8")


# --------------------------------------------------------------------------- internal
def internal_summary(app: App, query: bytes, body: bytes) -> Response:
    params = parse_qs(query.decode("latin-1"))
    try:
        from_ms = int(params["from_ms"][0])
        to_ms = int(params["to_ms"][0])
    except (KeyError, ValueError):
        return error(400, "from_ms and to_ms (epoch ms) are required")
    return response(200, encode_counts(app.local_counts(from_ms, to_ms)), content_type="text/plain")


def internal_purge(app: App, query: bytes, body: bytes) -> Response:
    app.purge()
    return OK_EMPTY


def internal_health(app: App, query: bytes, body: bytes) -> Response:
    try:
        index, failing, min_ms = (int(x) for x in body.split())
        processor = app.processors[index]
    except (ValueError, IndexError):
        return error(400, "expected: <processor index> <failing 0|1> <minResponseTime ms>")
    processor.apply_health(now_ms(), bool(failing), min_ms)
    return OK_EMPTY


Routes = dict[bytes, dict[bytes, Handler]]  # path -> {method: handler}

# the clients' listener (RINHA_BIND, behind Nginx)
ROUTES: Routes = {
    b"/payments": {b"POST": post_payment},
    b"/payments-summary": {b"GET": get_summary},
    b"/purge-payments": {b"POST": post_purge},
    b"/healthz": {b"GET": get_alive},
    b"/metrics": {b"GET": get_metrics},
}

# routes that need X-Rinha-Token = RINHA_ADMIN_TOKEN when it is set (the protocol checks it)
TOKEN_REQUIRED = frozenset({b"/purge-payments"})

# the peers' listener (RINHA_INTERNAL_BIND, a 0600 unix socket): nothing else reaches these
INTERNAL_ROUTES: Routes = {
    b"/internal/summary": {b"GET": internal_summary},
    b"/internal/purge": {b"POST": internal_purge},
    b"/internal/health": {b"POST": internal_health},
    b"/healthz": {b"GET": get_alive},
}


def method_not_allowed(methods: dict[bytes, Handler]) -> bytes:
    """The 405 answer of a path, with its Allow header."""
    allow = ", ".join(m.decode() for m in methods)
    return error(405, "method not allowed", extra=f"Allow: {allow}\r\n")


def not_allowed(routes: Routes) -> dict[bytes, bytes]:
    """The 405 answer of each path, prebuilt."""
    return {path: method_not_allowed(methods) for path, methods in routes.items()}


METHOD_NOT_ALLOWED = not_allowed(ROUTES)
INTERNAL_METHOD_NOT_ALLOWED = not_allowed(INTERNAL_ROUTES)

__all__ = [
    "ROUTES",
    "INTERNAL_ROUTES",
    "TOKEN_REQUIRED",
    "METHOD_NOT_ALLOWED",
    "INTERNAL_METHOD_NOT_ALLOWED",
    "NOT_FOUND",
    "ACCEPTED",
    "response",
    "error",
    "money",
]
