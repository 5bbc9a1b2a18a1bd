"""The hot paths (`rinha._fast`, `rinha._reference`): body parsing, timestamps, processor request
bytes, Ledger and IdSet. Most tests run against both modules through the `fast` fixture."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import os
import random
import subprocess
import sys
import uuid
import zlib
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from types import ModuleType

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rinha.errors import InvalidPayment, InvalidTimestamp

NO_EXTENSIONS = os.environ.get("RINHA_NO_EXTENSIONS", "") not in ("", "0")
SETTINGS = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
ID = "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
API = [
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


def body(amount: str = "19.90", correlation_id: str = ID) -> bytes:
    return f'{{"correlationId": "{correlation_id}", "amount": {amount}}}'.encode()


def outcome(function, *args):
    """Result or (exception type, message): what two implementations must agree on."""
    try:
        return function(*args)
    except Exception as exc:  # noqa: BLE001 - any difference is the failure
        return type(exc), str(exc)


# -- building and selection ---------------------------------------------------------------------


@pytest.mark.skipif(NO_EXTENSIONS, reason="RINHA_NO_EXTENSIONS=1")
def test_compiled_module_is_built() -> None:
    module = importlib.import_module("rinha._fast")  # fails if the build was skipped
    assert Path(module.__file__).suffix in (".so", ".pyd")
    fast = importlib.import_module("rinha.fast")
    assert fast.IMPLEMENTATION == "compiled"
    assert fast.Ledger is module.Ledger


def _load_fast_selector(monkeypatch: pytest.MonkeyPatch, env: str | None) -> ModuleType:
    """Execute rinha/fast.py afresh (not touching the imported one) under the given env."""
    if env is None:
        monkeypatch.delenv("RINHA_NO_EXTENSIONS", raising=False)
    else:
        monkeypatch.setenv("RINHA_NO_EXTENSIONS", env)
    path = Path(importlib.import_module("rinha").__file__).with_name("fast.py")
    spec = importlib.util.spec_from_file_location("rinha_fast_probe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_selector_honours_no_extensions(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _load_fast_selector(monkeypatch, "1")
    assert module.IMPLEMENTATION == "reference"
    assert module.Ledger is importlib.import_module("rinha._reference").Ledger
    assert sorted(module.__all__) == sorted([*API, "IMPLEMENTATION"])


def test_selector_explains_a_missing_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rinha._fast", None)  # makes `import rinha._fast` fail
    with pytest.raises(ImportError, match=r"pip install \.`.*RINHA_NO_EXTENSIONS=1"):
        _load_fast_selector(monkeypatch, None)


def test_both_modules_export_the_same_api(fast: ModuleType) -> None:
    assert sorted(fast.__all__) == sorted(API)
    assert fast.MAX_CENTS == 10**13
    claims = ["CLAIM_NEW", "CLAIM_MINE", "CLAIM_OTHER", "CLAIM_CONFLICT", "CLAIM_FULL"]
    assert [getattr(fast, name) for name in claims] == [0, 1, 2, 3, 4]
    kinds = ["J_ACCEPT", "J_ATTEMPT", "J_STORED", "J_RELEASED", "J_FINISHED", "J_SNAPSHOT"]
    assert [getattr(fast, name) for name in kinds] == [1, 2, 3, 4, 5, 6]
    one_ms = timedelta(milliseconds=1)
    assert fast.MIN_MS == (datetime(1, 1, 1, tzinfo=UTC) - EPOCH) // one_ms
    assert fast.MAX_MS == (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - EPOCH) // one_ms


def test_both_modules_have_the_same_signatures(compiled: ModuleType, reference: ModuleType) -> None:
    for name in [
        "iso_to_ms",
        "ms_to_iso",
        "parse_payment",
        "payment_body",
        "_siphash24",
        "_fingerprint",
        "_crc32_of",
    ]:
        assert (
            inspect.signature(getattr(compiled, name)).parameters.keys()
            == inspect.signature(getattr(reference, name)).parameters.keys()
        ), name
    for cls, method in [
        ("Ledger", "add"),
        ("Ledger", "summary"),
        ("Ledger", "clear"),
        ("IdSet", "add"),
        ("IdSet", "discard"),
        ("IdSet", "clear"),
        *[("SharedIdSet", name) for name in ["claim", "owner_of", "clear", "close"]],
        *[
            ("Journal", name)
            for name in [
                "accept",
                "attempt",
                "stored",
                "released",
                "finished",
                "flush",
                "sync",
                "replay",
                "compact",
                "clear",
                "close",
            ]
        ],
    ]:
        ours = inspect.signature(getattr(getattr(compiled, cls), method)).parameters.keys()
        theirs = inspect.signature(getattr(getattr(reference, cls), method)).parameters.keys()
        assert ours == theirs, (cls, method)


def test_typed_stub_describes_the_compiled_module(compiled: ModuleType) -> None:
    """Every name, parameter and method in _fast.pyi exists, so named, in the compiled module."""
    tree = ast.parse(Path(compiled.__file__).with_name("_fast.pyi").read_text())
    names = [node.target.id for node in tree.body if isinstance(node, ast.AnnAssign)]
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            names.append(node.name)
            params = list(inspect.signature(getattr(compiled, node.name)).parameters)
            assert params == [a.arg for a in node.args.args], node.name
        elif isinstance(node, ast.ClassDef):
            names.append(node.name)
            cls = getattr(compiled, node.name)
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name != "__init__":
                    assert hasattr(cls, item.name), (node.name, item.name)
                    if not item.name.startswith("__") and not item.decorator_list:
                        params = list(inspect.signature(getattr(cls, item.name)).parameters)
                        assert params == [a.arg for a in item.args.args], (node.name, item.name)
    assert sorted(names) == sorted(API) == sorted(compiled.__all__)


def test_typed_stub_constructors_match_the_reference(reference: ModuleType) -> None:
    """A compiled class's __init__ shows no signature (its slot takes *args): the stub's must
    then be the reference twin's."""
    tree = ast.parse(Path(reference.__file__).with_name("_fast.pyi").read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    params = list(inspect.signature(getattr(reference, node.name)).parameters)
                    assert ["self", *params] == [a.arg for a in item.args.args], node.name


def test_errors_are_value_errors() -> None:
    assert issubclass(InvalidPayment, ValueError)
    assert issubclass(InvalidTimestamp, ValueError)
    reason = "amount must be a positive number"
    assert str(InvalidPayment(reason)) == reason


# -- parse_payment: accepted --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "cents"),
    [
        (b'{"correlationId": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", "amount": 19.90}', 1990),
        (b'{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3","amount":19.9}', 1990),
        (b'{"amount":19.90,"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"}', 1990),
        (
            b' \t\r\n{ "correlationId" :\n"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"\t,'
            b'"amount"\r:19.90 }\n',
            1990,
        ),
        (body("1.99e1"), 1990),
        (body("1990E-2"), 1990),
        (body("1990e-2"), 1990),
        (body("0.1990E+2"), 1990),
        (body("19.900"), 1990),
        (body("19.9000000000000000000000000000000000000000001"), 1990),
        (body("20"), 2000),
        (body("1"), 100),
        (body("0.01"), 1),
        (body("0.005000001"), 1),
        (body("1e0"), 100),
        (body("1E00000000000000000000000000000002"), 10000),
        (body("100000000000"), 10**13),
        (body("100000000000.004"), 10**13),
        (body("1e11"), 10**13),
        (body("99999999999.99"), 10**13 - 1),
        (body("19.90", ID.upper()), 1990),
    ],
)
def test_parse_payment_accepts(fast: ModuleType, raw: bytes, cents: int) -> None:
    assert fast.parse_payment(raw) == (ID, cents)


@pytest.mark.parametrize(
    ("amount", "cents"),
    [
        ("19.905", 1990),  # half to even: down to the even cent
        ("19.915", 1992),  # half to even: up to the even cent
        ("19.925", 1992),
        ("0.125", 12),
        ("0.135", 14),
        ("0.015", 2),
        ("19.9050000000000000000000001", 1991),  # above half: up
        ("19.9049999999999999999999999", 1990),  # below half: down
        ("19.904", 1990),
        ("19.906", 1991),
        ("0.995", 100),
        ("99.995", 10000),
        ("1.0049999e0", 100),
        ("1005e-3", 100),  # 1.005: half, even stays
        ("1015E-3", 102),
        ("0.0149999999999999999999", 1),
    ],
)
def test_parse_payment_rounds_half_to_even_from_the_text(
    fast: ModuleType, amount: str, cents: int
) -> None:
    assert fast.parse_payment(body(amount)) == (ID, cents)


@pytest.mark.parametrize(
    "raw",
    [
        # escapes in the id, in the keys, in other strings
        b'{"correlationId": "\\u0034a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", "amount": 19.90}',
        b'{"correlationId": "4A7901B8\\u002d7D26-4D9D-AA19-4DC1C7CF60B3", "amount": 19.90}',
        b'{"\\u0063orrelationId": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", "\\u0061mount": 19.90}',
        b'{"correlation\\u0049d": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", "amoun\\u0074": 19.90}',
        b'{"x": "\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00", '
        b'"correlationId": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", "amount": 19.90}',
        # unknown keys of every type, nested; non-ASCII text; a key that only looks like ours
        b'{"requestedAt": "2025-07-15T12:34:56.000Z", "tags": [1, -2.5e3, true, false, null, '
        b'{"amount": "x", "correlationId": 5}], "meta": {"a": {"b": [[], {}]}}, '
        b'"correlationId": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", "amount": 19.90, '
        b'"n\xc3\xa3o": "\xe2\x82\xac\xf0\x9f\x98\x80", "Amount": null, "amount ": 1, "": 0}',
        b'{"correlationId": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", "amount": 19.90, "x": -0}',
    ],
)
def test_parse_payment_accepts_any_json_formatting(fast: ModuleType, raw: bytes) -> None:
    assert fast.parse_payment(raw) == (ID, 1990)


def test_parse_payment_accepts_bytes_like(fast: ModuleType) -> None:
    assert fast.parse_payment(bytearray(body())) == (ID, 1990)
    assert fast.parse_payment(memoryview(body())) == (ID, 1990)
    with pytest.raises(TypeError):
        fast.parse_payment(body().decode())


def test_parse_payment_accepts_nesting_up_to_64(fast: ModuleType) -> None:
    ok = f'{{"correlationId": "{ID}", "amount": 1, "x": {"[" * 63 + "]" * 63}}}'
    assert fast.parse_payment(ok.encode()) == (ID, 100)
    too_deep = ok.replace("[", "[[", 1).replace("]", "]]", 1)
    with pytest.raises(InvalidPayment, match="^invalid JSON$"):
        fast.parse_payment(too_deep.encode())


# -- parse_payment: rejected --------------------------------------------------------------------

REJECTED = [
    # not JSON
    (b"", "invalid JSON"),
    (b"   ", "invalid JSON"),
    (b"{", "invalid JSON"),
    (b'{"correlationId": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", "amount": 19.90', "invalid JSON"),
    (
        b'{"correlationId": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", "amount": 19.90,}',
        "invalid JSON",
    ),
    (b"{'correlationId': '4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3', 'amount': 19.90}", "invalid JSON"),
    (b'{"correlationId" "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", "amount": 19.90}', "invalid JSON"),
    (b'{"correlationId": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3" "amount": 19.90}', "invalid JSON"),
    (b'{correlationId: "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", amount: 19.90}', "invalid JSON"),
    (body("019.90"), "invalid JSON"),
    (body("19."), "invalid JSON"),
    (body(".5"), "invalid JSON"),
    (body("+19.90"), "invalid JSON"),
    (body("1e"), "invalid JSON"),
    (body("1e+"), "invalid JSON"),
    (body("--1"), "invalid JSON"),
    (body("19,90"), "invalid JSON"),
    (body("NaN"), "invalid JSON"),
    (body("Infinity"), "invalid JSON"),
    (body("-Infinity"), "invalid JSON"),
    (body("0x10"), "invalid JSON"),
    (body("tru"), "invalid JSON"),
    (body("nul"), "invalid JSON"),
    (b'{"correlationId": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3\n", "amount": 1}', "invalid JSON"),
    (b'{"correlationId": "4a7901b8\\x", "amount": 1}', "invalid JSON"),
    (b'{"correlationId": "\\u00zz", "amount": 1}', "invalid JSON"),
    (b'{"correlationId": "\\u00', "invalid JSON"),
    (
        b'{"correlationId": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", "amount": 1, "x": [1,]}',
        "invalid JSON",
    ),
    (
        b'{"correlationId": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", "amount": 1, "x": {"a"}}',
        "invalid JSON",
    ),
    (b"\xef\xbb\xbf" + body(), "invalid JSON"),  # a BOM is not whitespace
    (b"\x0c" + body(), "invalid JSON"),  # nor is a form feed
    # not UTF-8 (anywhere, even inside a string or after the value)
    (
        b'{"x": "\xff", "correlationId": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", "amount": 1}',
        "invalid JSON: body is not UTF-8",
    ),
    (b'{"x": "\xed\xa0\x80"}', "invalid JSON: body is not UTF-8"),  # an encoded surrogate
    (b'{"x": "\xc0\xaf"}', "invalid JSON: body is not UTF-8"),  # overlong
    (b'{"x": "\xf4\x90\x80\x80"}', "invalid JSON: body is not UTF-8"),  # beyond U+10FFFF
    (b'{"x": "\xe2\x82"}', "invalid JSON: body is not UTF-8"),  # truncated
    (body() + b"\x80", "invalid JSON: body is not UTF-8"),
    # trailing garbage
    (body() + b"x", "invalid JSON: trailing data after the value"),
    (body() + b" {}", "invalid JSON: trailing data after the value"),
    (body() + b"}", "invalid JSON: trailing data after the value"),
    (body() + b"\x00", "invalid JSON: trailing data after the value"),
    (b"[] []", "invalid JSON: trailing data after the value"),
    (b"1.", "invalid JSON: trailing data after the value"),  # the number is 1, then '.'
    (b"5E{}", "invalid JSON: trailing data after the value"),
    (b"1e+", "invalid JSON: trailing data after the value"),
    (b"01", "invalid JSON: trailing data after the value"),
    (b"truex", "invalid JSON: trailing data after the value"),
    (b"-", "invalid JSON"),
    (b"-x", "invalid JSON"),
    # top level not an object
    (b"[]", "body must be a JSON object"),
    (b'["correlationId", "amount"]', "body must be a JSON object"),
    (b'"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"', "body must be a JSON object"),
    (b"19.90", "body must be a JSON object"),
    (b" null ", "body must be a JSON object"),
    # correlationId
    (b'{"amount": 19.90}', "missing correlationId"),
    (b"{}", "missing correlationId"),
    (
        b'{"correlationid": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", "amount": 1}',
        "missing correlationId",
    ),
    (
        b'{"correlationId": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", "amount": 1, '
        b'"correlationId": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"}',
        "duplicate key correlationId",
    ),
    (
        b'{"correlationId": 5, "\\u0063orrelationId": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"}',
        "duplicate key correlationId",
    ),
    (b'{"correlationId": 123, "amount": 19.90}', "correlationId must be a string"),
    (b'{"correlationId": null, "amount": 19.90}', "correlationId must be a string"),
    (
        b'{"correlationId": ["4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"], "amount": 1}',
        "correlationId must be a string",
    ),
    (body("1", ""), "correlationId must be a UUID (8-4-4-4-12 hex digits)"),
    (
        body("1", "4a7901b87d264d9daa194dc1c7cf60b3"),
        "correlationId must be a UUID (8-4-4-4-12 hex digits)",
    ),
    (
        body("1", "{4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3}"),
        "correlationId must be a UUID (8-4-4-4-12 hex digits)",
    ),
    (
        body("1", "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60bg"),
        "correlationId must be a UUID (8-4-4-4-12 hex digits)",
    ),
    (
        body("1", "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b"),
        "correlationId must be a UUID (8-4-4-4-12 hex digits)",
    ),
    (
        body("1", "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3 "),
        "correlationId must be a UUID (8-4-4-4-12 hex digits)",
    ),
    (
        body("1", "4a7901b8_7d26-4d9d-aa19-4dc1c7cf60b3"),
        "correlationId must be a UUID (8-4-4-4-12 hex digits)",
    ),
    (
        body("1", "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b\\u00e9"),
        "correlationId must be a UUID (8-4-4-4-12 hex digits)",
    ),
    (
        body(
            "1", "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b\xc3\xa9".encode("latin-1").decode("latin-1")
        ),
        "correlationId must be a UUID (8-4-4-4-12 hex digits)",
    ),
    (
        body("1", "\\uff14a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"),  # a fullwidth digit
        "correlationId must be a UUID (8-4-4-4-12 hex digits)",
    ),
    # amount
    (b'{"correlationId": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"}', "missing amount"),
    (
        b'{"correlationId": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", "amount": 1, "amount": 1}',
        "duplicate key amount",
    ),
    (
        b'{"correlationId": "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3", "amount": "x", "amount": 1}',
        "duplicate key amount",
    ),
    (body('"19.90"'), "amount must be a JSON number"),
    (body("true"), "amount must be a JSON number"),
    (body("false"), "amount must be a JSON number"),
    (body("null"), "amount must be a JSON number"),
    (body("[19.90]"), "amount must be a JSON number"),
    (body('{"value": 19.90}'), "amount must be a JSON number"),
    (body("0"), "amount must be a positive number"),
    (body("0.00"), "amount must be a positive number"),
    (body("-0"), "amount must be a positive number"),
    (body("-0.0e5"), "amount must be a positive number"),
    (body("0e999999999999999999999999"), "amount must be a positive number"),
    (body("-19.90"), "amount must be a positive number"),
    (body("-1e999999999999999999999999"), "amount must be a positive number"),
    (body("100000000000.0051"), "amount too large (max 100000000000.00)"),
    (body("100000000000.01"), "amount too large (max 100000000000.00)"),
    (body("1e12"), "amount too large (max 100000000000.00)"),
    (body("99999999999999999999999999999999"), "amount too large (max 100000000000.00)"),
    (body("1e999999999999999999999999"), "amount too large (max 100000000000.00)"),
    (body("0.004"), "amount rounds to 0.00"),
    (body("0.005"), "amount rounds to 0.00"),  # half to even: 0.00
    (body("0.0049999999999999999999999"), "amount rounds to 0.00"),
    (body("1e-3"), "amount rounds to 0.00"),
    (body("1e-999999999999999999999999"), "amount rounds to 0.00"),
]


@pytest.mark.parametrize(("raw", "reason"), REJECTED)
def test_parse_payment_rejects_with_a_reason(fast: ModuleType, raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidPayment) as info:
        fast.parse_payment(raw)
    assert str(info.value) == reason


def test_parse_payment_agrees_with_json_on_validity(fast: ModuleType) -> None:
    """Whatever the stdlib calls JSON (bar NaN/Infinity) is not rejected as invalid JSON."""

    def no_constants(name: str) -> None:
        raise ValueError(name)

    for raw, reason in REJECTED:
        try:
            json.loads(raw.decode("utf-8"), parse_constant=no_constants)
        except ValueError:  # UnicodeDecodeError and JSONDecodeError included
            continue
        assert not reason.startswith("invalid JSON"), raw


# -- parse_payment: the two implementations agree -----------------------------------------------

_numbers = st.from_regex(
    r"-?(0|[1-9][0-9]{0,15})(\.[0-9]{1,22})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
_ws = st.sampled_from(["", "", " ", "\n", "\t ", "\r\n  "])


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    """Bodies near the real shape: keys shuffled, repeated or missing, values of any type, any
    number text, escapes, odd whitespace, and a few raw byte edits on top."""
    members: list[tuple[str, str]] = []
    if draw(st.integers(0, 9)):
        cid = str(draw(st.uuids()))
        cid = draw(st.sampled_from([cid, cid.upper(), cid[:-1], cid.replace("-", "")]))
        text = (
            json.dumps(cid)
            if draw(st.booleans())
            else json.dumps(cid).replace(cid[:1], f"\\u{ord(cid[0]):04x}", 1)
        )
        members.append(("correlationId", draw(st.sampled_from([text, text, "null", "7"]))))
    if draw(st.integers(0, 9)):
        members.append(("amount", draw(st.one_of(_numbers, _values.map(json.dumps)))))
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from(["amount", "correlationId", "x", "amount ", "\u00e9"]))
        members.append((key, json.dumps(draw(_values))))
    members = draw(st.permutations(members))
    parts = []
    for key, value in members:
        key_text = json.dumps(key, ensure_ascii=draw(st.booleans()))
        if draw(st.integers(0, 5)) == 0 and key:
            key_text = f'"\\u{ord(key[0]):04x}{key_text[2:]}'
        parts.append(f"{draw(_ws)}{key_text}{draw(_ws)}:{draw(_ws)}{value}{draw(_ws)}")
    raw = bytearray(f"{draw(_ws)}{{{','.join(parts)}}}{draw(_ws)}".encode())
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        at = draw(st.integers(0, len(raw)))
        edit = draw(st.sampled_from(["delete", "insert", "replace"]))
        byte = draw(st.sampled_from(b'{}[]":,.-+eE019 \\u\x00\xc3\xa9\xff'))
        if edit == "insert":
            raw.insert(at, byte)
        elif at < len(raw):
            if edit == "delete":
                del raw[at]
            else:
                raw[at] = byte
    return bytes(raw)


@SETTINGS
@given(raw=_bodies())
def test_compiled_and_reference_parse_alike(
    compiled: ModuleType, reference: ModuleType, raw: bytes
) -> None:
    assert outcome(compiled.parse_payment, raw) == outcome(reference.parse_payment, raw)


_TOKENS = [
    b"{",
    b"}",
    b"[",
    b"]",
    b'"',
    b":",
    b",",
    b"0",
    b"1",
    b"-",
    b".",
    b"e",
    b"E",
    b"+",
    b" ",
    b"true",
    b"null",
    b"\\",
    b"u",
    b"\\u0041",
    b"\xc3\xa9",
    b"\xff",
    b"\x00",
    b'"correlationId"',
    b'"amount"',
    f'"{ID}"'.encode(),
    b"NaN",
]


@SETTINGS
@given(raw=st.lists(st.sampled_from(_TOKENS), max_size=12).map(b"".join))
def test_compiled_and_reference_reject_alike(
    compiled: ModuleType, reference: ModuleType, raw: bytes
) -> None:
    """Short token soups: which error comes first must not depend on the implementation."""
    assert outcome(compiled.parse_payment, raw) == outcome(reference.parse_payment, raw)


@settings(SETTINGS, max_examples=300)
@given(text=_numbers)
def test_amount_is_the_exact_half_even_rounding(fast: ModuleType, text: str) -> None:
    exact = Decimal(text)
    cents = int((exact * 100).to_integral_value(rounding=ROUND_HALF_EVEN))
    result = outcome(fast.parse_payment, body(text))
    if exact <= 0:
        assert result == (InvalidPayment, "amount must be a positive number")
    elif cents > 10**13:
        assert result == (InvalidPayment, "amount too large (max 100000000000.00)")
    elif cents == 0:
        assert result == (InvalidPayment, "amount rounds to 0.00")
    else:
        assert result == (ID, cents)


# -- timestamps ---------------------------------------------------------------------------------


def _ms(*args: int) -> int:
    return (datetime(*args, tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2020-07-10T12:34:56.000Z", 1594384496000),
        ("1970-01-01T00:00:00.000Z", 0),
        ("1969-12-31T23:59:59.999Z", -1),
        ("2020-07-10T12:34:56.789Z", 1594384496789),
        ("2020-07-10T12:34:56.7Z", 1594384496700),
        ("2020-07-10T12:34:56.78Z", 1594384496780),
        ("2020-07-10T12:34:56.789999999Z", 1594384496789),  # truncated, never rounded up
        ("2020-07-10T12:34:56.0001Z", 1594384496000),
        ("2020-07-10T12:34:56Z", 1594384496000),
        ("2020-07-10T12:34:56z", 1594384496000),
        ("2020-07-10t12:34:56.000z", 1594384496000),
        ("2020-07-10T12:34:56", 1594384496000),
        ("2020-07-10 12:34:56.000Z", 1594384496000),
        ("2020-07-10T12:34:56.000+00:00", 1594384496000),
        ("2020-07-10T12:34:56.000-00:00", 1594384496000),
        ("2020-07-10T09:34:56.000-03:00", 1594384496000),
        ("2020-07-10T09:34:56.000-0300", 1594384496000),
        ("2020-07-10T18:04:56.000+05:30", 1594384496000),
        ("2020-07-10T18:04:56+0530", 1594384496000),
        ("2020-07-11T12:33:56.000+23:59", 1594384496000),
        ("2020-07-10", 1594339200000),
        ("2020-02-29T00:00:00.000Z", _ms(2020, 2, 29)),
        ("2000-02-29", _ms(2000, 2, 29)),
        ("2024-02-29T23:59:59.999Z", _ms(2024, 2, 29, 23, 59, 59, 999000)),
        ("1900-03-01", _ms(1900, 3, 1)),
        ("0001-01-01T00:00:00.000Z", -62135596800000),
        ("0001-01-01T00:00:00.000+01:00", -62135596800000 - 3600000),  # before MIN_MS: still ok
        ("9999-12-31T23:59:59.999Z", 253402300799999),
        ("9999-12-31T23:59:59.999-01:00", 253402300799999 + 3600000),
        ("2025-07-15T12:34:56.000Z", _ms(2025, 7, 15, 12, 34, 56)),
    ],
)
def test_iso_to_ms_accepts(fast: ModuleType, text: str, ms: int) -> None:
    assert fast.iso_to_ms(text) == ms
    assert fast.iso_to_ms(text.encode()) == ms


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2020",
        "2020-07",
        "20200710",
        "2020-7-10",
        "2020-07-10T",
        "2020-07-10T12",
        "2020-07-10T12:34",
        "2020-07-10T12:34Z",
        "2020-07-10T1:34:56Z",
        "2020-07-10T12:34:56.Z",
        "2020-07-10T12:34:56.",
        "2020-07-10T12:34:56.1234567890Z",  # ten fraction digits
        "2020-07-10T12:34:56,000Z",
        "2020-07-10T12:34:56.000ZZ",
        "2020-07-10T12:34:56.000 Z",
        "2020-07-10T12:34:56.000+03",
        "2020-07-10T12:34:56.000+3:00",
        "2020-07-10T12:34:56.000+03:0",
        "2020-07-10T12:34:56.000+03:000",
        "2020-07-10T12:34:56.000+24:00",
        "2020-07-10T12:34:56.000+03:60",
        "2020-07-10T12:34:56.000UTC",
        "2020-07-10Z",
        "2020-07-10T24:00:00Z",
        "2020-07-10T12:60:00Z",
        "2020-07-10T12:34:60Z",  # no leap seconds
        "2020-00-10",
        "2020-13-10",
        "2020-07-00",
        "2020-07-32",
        "2020-04-31",
        "2019-02-29",
        "1900-02-29",
        "2100-02-29",
        "0000-01-01",
        "10000-01-01",
        "+02020-07-10",
        "-2020-07-10",
        " 2020-07-10",
        "2020-07-10 ",
        "2020-07-10T12:34:56.000Z\n",
        "2020-07-10T12:34:56.000\u00a0Z",
        "\uff12020-07-10",  # a fullwidth digit
        "2020-07-10T12:34:56.000\u0660Z",  # an Arabic-Indic digit
        "2020-07-1\u00b2",
        "1594384496000",
    ],
)
def test_iso_to_ms_rejects(fast: ModuleType, text: str) -> None:
    with pytest.raises(InvalidTimestamp) as info:
        fast.iso_to_ms(text)
    assert repr(text) in str(info.value)
    if text.isascii():
        with pytest.raises(InvalidTimestamp):
            fast.iso_to_ms(text.encode())


def test_iso_to_ms_rejects_other_types(fast: ModuleType) -> None:
    for value in (None, 1594384496000, bytearray(b"2020-07-10")):
        with pytest.raises(TypeError):
            fast.iso_to_ms(value)
    with pytest.raises(InvalidTimestamp, match="invalid timestamp b'2020-07-10\\\\xff'"):
        fast.iso_to_ms(b"2020-07-10\xff")


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (1594384496000, "2020-07-10T12:34:56.000Z"),
        (1594384496789, "2020-07-10T12:34:56.789Z"),
        (951782400000, "2000-02-29T00:00:00.000Z"),
        (-62135596800000, "0001-01-01T00:00:00.000Z"),
        (253402300799999, "9999-12-31T23:59:59.999Z"),
    ],
)
def test_ms_to_iso(fast: ModuleType, ms: int, text: str) -> None:
    assert fast.ms_to_iso(ms) == text


def test_ms_to_iso_rejects_out_of_range(fast: ModuleType) -> None:
    for ms in (fast.MIN_MS - 1, fast.MAX_MS + 1, INT64_MIN, INT64_MAX):
        with pytest.raises(ValueError, match="out of range"):
            fast.ms_to_iso(ms)
    with pytest.raises(OverflowError):
        fast.ms_to_iso(2**63)
    with pytest.raises(TypeError):
        fast.ms_to_iso(1.5)
    assert fast.ms_to_iso(True) == "1970-01-01T00:00:00.001Z"  # an int, as operator.index says


@settings(SETTINGS, max_examples=400)
@given(ms=st.integers(-62135596800000, 253402300799999))
def test_iso_round_trip_over_the_whole_range(fast: ModuleType, ms: int) -> None:
    text = fast.ms_to_iso(ms)
    t = EPOCH + timedelta(milliseconds=ms)
    assert text == (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:"
        f"{t.second:02d}.{ms % 1000:03d}Z"
    )
    assert fast.iso_to_ms(text) == ms


@SETTINGS
@given(
    moment=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    digits=st.integers(0, 9),
    zone=st.sampled_from(["", "Z", "z", "+00:00", "-03:00", "+05:30", "+1245", "-2359"]),
    separator=st.sampled_from("Tt "),
)
def test_iso_to_ms_matches_datetime(
    fast: ModuleType, moment: datetime, digits: int, zone: str, separator: str
) -> None:
    fraction = f"{moment.microsecond:06d}000"[:digits]
    text = moment.strftime(f"%Y-%m-%d{separator}%H:%M:%S")
    text = f"{moment.year:04d}{text[text.index('-') :]}" + (f".{fraction}" if digits else "") + zone
    offset = 0
    if zone[:1] in "+-" and zone:
        sign = -1 if zone[0] == "-" else 1
        offset = sign * (int(zone[1:3]) * 60 + int(zone[-2:]))
    truncated = moment.replace(microsecond=int(fraction.ljust(6, "0")[:6]) // 1000 * 1000)
    aware = truncated.replace(tzinfo=timezone(timedelta(minutes=offset)))
    assert fast.iso_to_ms(text) == (aware - EPOCH) // timedelta(milliseconds=1)


# -- payment_body -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cents", "amount"),
    [
        (1990, "19.90"),
        (1, "0.01"),
        (10, "0.10"),
        (0, "0.00"),
        (100, "1.00"),
        (10**13, "100000000000.00"),
        (INT64_MAX, "92233720368547758.07"),
    ],
)
def test_payment_body_exact_bytes(fast: ModuleType, cents: int, amount: str) -> None:
    raw = fast.payment_body(ID, cents, 1752582896000)
    assert raw == (
        b'{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3","amount":'
        + amount.encode()
        + b',"requestedAt":"2025-07-15T12:34:56.000Z"}'
    )
    assert type(raw) is bytes


@SETTINGS
@given(
    cid=st.uuids(),
    upper=st.booleans(),
    cents=st.integers(0, 10**13),
    ms=st.integers(-62135596800000, 253402300799999),
)
def test_payment_body_is_json_with_the_right_fields(
    fast: ModuleType, cid: uuid.UUID, upper: bool, cents: int, ms: int
) -> None:
    text = str(cid).upper() if upper else str(cid)
    decoded = orjson.loads(fast.payment_body(text, cents, ms))
    assert list(decoded) == ["correlationId", "amount", "requestedAt"]
    assert decoded["correlationId"] == text  # verbatim
    assert json.loads(fast.payment_body(text, cents, ms), parse_float=Decimal)["amount"] == (
        Decimal(cents) / 100
    )
    assert decoded["requestedAt"] == fast.ms_to_iso(ms)
    assert fast.parse_payment(fast.payment_body(text, max(cents, 1), ms)) == (
        str(cid),
        max(cents, 1),
    )


def test_payment_body_rejects_bad_arguments(fast: ModuleType) -> None:
    with pytest.raises(TypeError):
        fast.payment_body(ID.encode(), 1990, 0)
    for bad in (
        "",
        ID[:-1],
        ID + "0",
        ID.replace("-", "_"),
        '4a7901b8-7d26-4d9d-aa19-4dc1c7cf60"}',
        ID[:-1] + "\u00e9",
        ID[:-1] + "\u20ac",
    ):
        with pytest.raises(ValueError, match="not a canonical UUID"):
            fast.payment_body(bad, 1990, 0)
    with pytest.raises(ValueError, match="cents"):
        fast.payment_body(ID, -1, 0)
    with pytest.raises(ValueError, match="out of range"):
        fast.payment_body(ID, 1, fast.MAX_MS + 1)
    with pytest.raises(OverflowError):
        fast.payment_body(ID, 2**63, 0)
    with pytest.raises(TypeError):
        fast.payment_body(ID, 19.9, 0)


# -- Ledger -------------------------------------------------------------------------------------


class LedgerModel:
    """The obvious version: a list of (ms, cents), scanned whole."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, int]] = []

    def add(self, ms: int, cents: int) -> None:
        self.entries.append((ms, cents))

    def summary(self, lo: int, hi: int) -> tuple[int, int]:
        chosen = [c for ms, c in self.entries if lo <= ms <= hi]
        return len(chosen), sum(chosen)


_times = st.integers(-50, 50) | st.integers(INT64_MIN, INT64_MAX)
_ledger_ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), _times, st.integers(0, 10**13)),
        st.tuples(st.just("summary"), _times, _times),
        st.tuples(st.just("clear")),
    ),
    max_size=60,
)


@SETTINGS
@given(ops=_ledger_ops)
def test_ledger_matches_a_list_model(fast: ModuleType, ops: list[tuple]) -> None:
    ledger, model = fast.Ledger(), LedgerModel()
    for op in ops:
        if op[0] == "add":
            ledger.add(op[1], op[2])
            model.add(op[1], op[2])
        elif op[0] == "summary":
            assert ledger.summary(op[1], op[2]) == model.summary(op[1], op[2])
        else:
            ledger.clear()
            model = LedgerModel()
        assert len(ledger) == len(model.entries)
    for lo, hi in [(INT64_MIN, INT64_MAX), (0, 0), (-50, 50), (INT64_MAX, INT64_MIN)]:
        assert ledger.summary(lo, hi) == model.summary(lo, hi)


@settings(SETTINGS, max_examples=40)
@given(seed=st.integers(0, 2**32), late=st.sampled_from([0.0, 0.05, 0.5]))
def test_ledger_nearly_sorted_inserts(fast: ModuleType, seed: int, late: float) -> None:
    """Concurrent completions: mostly in order, some a few steps late, a few far back."""
    rng = random.Random(seed)
    ledger, model = fast.Ledger(), LedgerModel()
    now = 1_752_582_896_000
    for _ in range(2500):
        now += rng.randint(0, 3)
        ms = now
        if rng.random() < late:
            ms -= rng.choice([1, 5, 30, 2000, 10**6])
        cents = rng.choice([1990, 1, 0, 10**6])
        ledger.add(ms, cents)
        model.add(ms, cents)
    assert len(ledger) == 2500
    times = sorted(ms for ms, _ in model.entries)
    for _ in range(60):
        lo, hi = sorted(rng.choice(times) + rng.randint(-2, 2) for _ in range(2))
        assert ledger.summary(lo, hi) == model.summary(lo, hi)
    for ms in times[::97]:
        assert ledger.summary(ms, ms) == model.summary(ms, ms)


def test_ledger_bounds_are_inclusive(fast: ModuleType) -> None:
    ledger = fast.Ledger()
    for ms, cents in [(1000, 1), (2000, 10), (2000, 100), (3000, 1000)]:
        ledger.add(ms, cents)
    assert ledger.summary(1000, 3000) == (4, 1111)
    assert ledger.summary(1001, 2999) == (2, 110)
    assert ledger.summary(2000, 2000) == (2, 110)
    assert ledger.summary(2001, 2999) == (0, 0)
    assert ledger.summary(3000, 1000) == (0, 0)
    assert ledger.summary(INT64_MIN, INT64_MAX) == (4, 1111)
    assert ledger.summary(INT64_MIN, 999) == (0, 0)
    assert ledger.summary(3001, INT64_MAX) == (0, 0)


def test_ledger_limits(fast: ModuleType) -> None:
    ledger = fast.Ledger()
    assert len(ledger) == 0 and ledger.summary(INT64_MIN, INT64_MAX) == (0, 0)
    with pytest.raises(ValueError, match="cents"):
        ledger.add(0, -1)
    ledger.add(INT64_MIN, INT64_MAX - 1)
    ledger.add(INT64_MAX, 1)
    with pytest.raises(OverflowError):
        ledger.add(0, 1)  # the total would leave int64
    assert ledger.summary(INT64_MIN, INT64_MAX) == (2, INT64_MAX)
    assert ledger.summary(INT64_MIN, INT64_MIN) == (1, INT64_MAX - 1)
    with pytest.raises(OverflowError):
        ledger.add(2**63, 1)
    with pytest.raises(OverflowError):
        ledger.summary(-(2**63) - 1, 0)
    with pytest.raises(TypeError):
        ledger.add(1.0, 1)
    assert len(ledger) == 2


def test_ledger_memory(compiled: ModuleType) -> None:
    ledger = compiled.Ledger()
    initial = ledger.nbytes
    assert initial == 1024 * 16
    for ms in range(100_000):
        ledger.add(ms, 1990)
    assert ledger.nbytes / len(ledger) < 16 * 1.5 + 1  # 16 bytes a payment, growth by 1.5
    assert ledger.summary(0, 99_999) == (100_000, 199_000_000)
    ledger.clear()
    assert len(ledger) == 0 and ledger.nbytes == initial
    assert ledger.summary(INT64_MIN, INT64_MAX) == (0, 0)
    ledger.add(5, 5)
    assert ledger.summary(5, 5) == (1, 5)


def test_reference_ledger_reports_memory(reference: ModuleType) -> None:
    ledger = reference.Ledger()
    empty = ledger.nbytes
    ledger.add(1, 1)
    assert ledger.nbytes > empty > 0


# -- IdSet --------------------------------------------------------------------------------------

_POOL = [str(uuid.UUID(int=random.Random(n).getrandbits(128))) for n in range(40)]
_ids = st.sampled_from(_POOL).flatmap(lambda u: st.sampled_from([u, u.upper()]))
_idset_ops = st.lists(
    st.tuples(st.sampled_from(["add", "discard", "contains", "clear"]), _ids), max_size=80
)


@SETTINGS
@given(ops=_idset_ops)
def test_idset_matches_a_set(fast: ModuleType, ops: list[tuple[str, str]]) -> None:
    ids, model = fast.IdSet(), set()
    for op, cid in ops:
        key = cid.lower()
        if op == "add":
            assert ids.add(cid) is (key not in model)
            model.add(key)
        elif op == "discard":
            ids.discard(cid)
            model.discard(key)
        elif op == "contains":
            assert (cid in ids) is (key in model)
        else:
            ids.clear()
            model.clear()
        assert len(ids) == len(model)
    assert all(u in ids for u in model)
    assert sum(u in ids for u in _POOL) == len(model)


def test_idset_growth_and_deletion_in_crowded_runs(fast: ModuleType) -> None:
    rng = random.Random(7)
    ids, model = fast.IdSet(), set()
    pool = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(3000)]
    for cid in pool[:700]:  # load ~0.68 in the initial table: long probe runs
        assert ids.add(cid)
        model.add(cid)
    order = pool[:700]
    rng.shuffle(order)
    for n, cid in enumerate(order[:400]):
        ids.discard(cid)
        model.discard(cid)
        if n % 40 == 0:  # every id still there is still found after the backward shifts
            assert all(u in ids for u in model)
            assert not any(u in ids for u in order[: n + 1])
    for cid in pool:  # grows through several doublings
        assert ids.add(cid.upper()) is (cid not in model)
        model.add(cid)
    assert len(ids) == len(model) == 3000
    assert all(u.upper() in ids for u in pool)
    assert not any(str(uuid.UUID(int=rng.getrandbits(128))) in ids for _ in range(3000))


def test_idset_structured_ids(fast: ModuleType) -> None:
    """Sequential or time-ordered ids differ in few bits; the mix must still spread them."""
    ids = fast.IdSet()
    sequential = [str(uuid.UUID(int=n)) for n in range(2000)]
    high = [str(uuid.UUID(int=n << 64)) for n in range(1, 2001)]
    for cid in sequential + high:
        assert ids.add(cid)
    assert len(ids) == 4000
    assert all(cid in ids for cid in sequential + high)


def test_idset_rejects_what_is_not_a_uuid(fast: ModuleType) -> None:
    ids = fast.IdSet()
    for bad in (
        "",
        ID[:-1],
        ID + "0",
        ID.replace("-", ""),
        ID[:-1] + "g",
        ID[:-1] + "\u00e9",
        ID[:-1] + "\u20ac",
        ID[:-1] + "\ud800",
    ):
        with pytest.raises(ValueError, match="not a canonical UUID"):
            ids.add(bad)
        with pytest.raises(ValueError, match="not a canonical UUID"):
            ids.discard(bad)
        assert bad not in ids
    for wrong_type in (None, 5, ID.encode(), uuid.UUID(ID)):
        with pytest.raises(TypeError):
            ids.add(wrong_type)
        with pytest.raises(TypeError):
            ids.discard(wrong_type)
        assert wrong_type not in ids
    assert len(ids) == 0
    ids.discard(ID)  # absent: no error


def test_idset_memory(compiled: ModuleType) -> None:
    ids = compiled.IdSet()
    initial = ids.nbytes
    assert initial == (1024 + 64) * 8  # home slots + slack
    rng = random.Random(3)
    for _ in range(100_000):
        ids.add(str(uuid.UUID(int=rng.getrandbits(128))))
    assert len(ids) == 100_000
    # load factor in (0.9 / 1.25, 0.9]: 8.9 to 11.1 bytes per id (+ the 64-slot slack)
    assert 8 / 0.9 <= ids.nbytes / len(ids) <= 8 * 1.25 / 0.9 + 0.01
    ids.clear()
    assert len(ids) == 0 and ids.nbytes == initial and ID not in ids
    assert ids.add(ID) and not ids.add(ID.upper())


def _check_layout(ids) -> None:
    """Every fingerprint sits at max(its home, previous one's slot + 1), in ascending order:
    what lets a lookup stop at the first empty or larger slot."""
    cap, slots = ids._layout()
    previous = -1
    count = 0
    for at, fp in enumerate(slots):
        if fp:
            home = ((fp >> 32) * cap) >> 32
            assert at == max(home, previous + 1), (at, home, previous)
            assert previous < 0 or slots[previous] < fp
            previous = at
            count += 1
    assert count == len(ids)


# fingerprints that share their top bits pile up in one home slot: long runs, shifts on insert
# and delete, and runs pushed through the slack at the end of the table
_crowded = st.integers(0, 3).flatmap(
    lambda top: st.integers(0, 2**40 - 1).map(lambda low: (top << 62) | (0xFFF << 40) | low)
)
_fingerprints = st.one_of(_crowded, st.integers(1, 2**64 - 1))


@SETTINGS
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["add", "discard", "contains"]), _fingerprints), max_size=400
    )
)
def test_idset_ordered_table_matches_a_set(compiled: ModuleType, ops) -> None:
    ids, model = compiled.IdSet(), set()
    for op, fp in ops:
        if op == "add":
            assert ids._add_fingerprint(fp) is (fp not in model)
            model.add(fp)
        elif op == "discard":
            assert ids._discard_fingerprint(fp) is (fp in model)
            model.discard(fp)
        else:
            assert ids._contains_fingerprint(fp) is (fp in model)
    _check_layout(ids)
    assert all(ids._contains_fingerprint(fp) for fp in model)


def test_idset_one_crowded_run_at_the_end_extends_the_slack(compiled: ModuleType) -> None:
    ids = compiled.IdSet()
    top = 2**64 - 2**40  # all home in the very last slot: the run must spill into the slack
    for n in range(200):
        assert ids._add_fingerprint(top + n)
    cap, slots = ids._layout()
    # a bigger table would not help (they share one home whatever its size): more slack does
    assert cap == 1024 and len(slots) >= 1024 + 200 and len(ids) == 200
    assert ids.nbytes == len(slots) * 8
    _check_layout(ids)
    for n in range(200, 2000):  # growth carries the long run over
        assert ids._add_fingerprint(n << 40)
    assert ids._layout()[0] > 1024
    _check_layout(ids)
    for n in range(0, 200, 2):
        assert ids._discard_fingerprint(top + n)
    _check_layout(ids)
    assert [ids._contains_fingerprint(top + n) for n in range(6)] == [False, True] * 3


def test_idset_layout_after_growth_and_deletions(compiled: ModuleType) -> None:
    rng = random.Random(11)
    ids = compiled.IdSet()
    pool = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(5000)]
    for cid in pool:
        ids.add(cid)
    _check_layout(ids)
    for cid in pool[::3]:
        ids.discard(cid)
    _check_layout(ids)
    assert sum(cid in ids for cid in pool) == len(ids) == 5000 - len(pool[::3])


# -- keyed fingerprints -------------------------------------------------------------------------

# SipHash-2-4 reference vectors (key 00..0f, message 00..n-1), from the SipHash paper / vectors.h
SIPHASH_VECTORS = [
    (0, 0x726FDB47DD0E0E31),
    (1, 0x74F839C593DC67FD),
    (8, 0x93F5F5799A932462),
    (15, 0xA129CA6149BE45E5),
    (63, 0x958A324CEB064572),
]


@pytest.mark.parametrize(("length", "expected"), SIPHASH_VECTORS)
def test_siphash_reference_vectors(fast: ModuleType, length: int, expected: int) -> None:
    assert fast._siphash24(bytes(range(16)), bytes(range(length))) == expected


@SETTINGS
@given(
    key=st.binary(min_size=16, max_size=16),
    data=st.binary(max_size=40),
    cid=st.uuids(),
    upper=st.booleans(),
)
def test_siphash_and_fingerprint_agree(
    compiled: ModuleType,
    reference: ModuleType,
    key: bytes,
    data: bytes,
    cid: uuid.UUID,
    upper: bool,
) -> None:
    assert compiled._siphash24(key, data) == reference._siphash24(key, data)
    text = str(cid).upper() if upper else str(cid)
    fp = compiled._fingerprint(text, key)
    assert fp == reference._fingerprint(text, key) == reference._fingerprint(str(cid), key)
    assert fp == (reference._siphash24(key, cid.bytes) or 1)  # the id's 16 bytes, big-endian


def test_fingerprint_depends_on_the_key(fast: ModuleType) -> None:
    keys = [bytes(16), bytes(15) + b"\x01", bytes(range(16))]
    assert len({fast._fingerprint(ID, key) for key in keys}) == 3
    for bad in (b"", bytes(15), bytes(17)):
        with pytest.raises(ValueError, match="16 bytes"):
            fast._fingerprint(ID, bad)
    with pytest.raises(ValueError, match="not a canonical UUID"):
        fast._fingerprint(ID[:-1], bytes(16))
    with pytest.raises(TypeError):
        fast._fingerprint(ID.encode(), bytes(16))
    with pytest.raises(TypeError):
        fast._fingerprint(ID, 16)


@SETTINGS
@given(data=st.binary(max_size=300), value=st.integers(0, 2**32 - 1))
def test_crc32_is_zlibs(fast: ModuleType, data: bytes, value: int) -> None:
    assert fast._crc32_of(data, value) == zlib.crc32(data, value)


def test_idset_stores_the_keyed_fingerprint(compiled: ModuleType) -> None:
    key = compiled._idset_key()
    assert isinstance(key, bytes) and len(key) == 16 and key != bytes(16)
    ids = compiled.IdSet()
    ids.add(ID.upper())
    assert ids._contains_fingerprint(compiled._fingerprint(ID, key))
    assert not ids._contains_fingerprint(compiled._fingerprint(ID, bytes(16)))
    ids._add_fingerprint(compiled._fingerprint(_POOL[0], key))  # raw inserts: the same id
    assert _POOL[0] in ids and not ids.add(_POOL[0])


def test_idset_key_is_drawn_per_process(compiled: ModuleType) -> None:
    script = "import rinha._fast as f; print(f._idset_key().hex())"
    keys = {
        subprocess.run(
            [sys.executable, "-c", script], check=True, capture_output=True, text=True
        ).stdout.strip()
        for _ in range(2)
    }
    keys.add(compiled._idset_key().hex())
    assert len(keys) == 3


@given(
    cents=st.integers(1, 2**63 - 1),
    ms=st.integers(0, 253402300799999),
)
@settings(max_examples=100, deadline=None)
def test_payment_request_is_the_head_the_length_and_the_body(compiled, reference, cents, ms):
    head = b"POST /payments HTTP/1.1\r\nHost: p:8080\r\nContent-Length: "
    cid = "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"
    body = compiled.payment_body(cid, cents, ms)
    expected = head + b"%d\r\n\r\n" % len(body) + body
    assert compiled.payment_request(head, cid, cents, ms) == expected
    assert reference.payment_request(head, cid, cents, ms) == expected
