"""Fixtures for the unit tests: `fast` runs a test against both the compiled and the reference
implementation of the hot paths, so that the two can never drift apart."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

NO_EXTENSIONS = os.environ.get("RINHA_NO_EXTENSIONS", "") not in ("", "0")


def _compiled() -> ModuleType:
    try:
        return importlib.import_module("rinha._fast")
    except ImportError as exc:
        if NO_EXTENSIONS:
            pytest.skip("RINHA_NO_EXTENSIONS=1: compiled module not tested")
        pytest.fail(f"rinha._fast is not compiled (run `pip install -e .`): {exc}")


# session scope: hypothesis refuses function-scoped fixtures in @given tests
@pytest.fixture(scope="session", params=["compiled", "reference"])
def fast(request: pytest.FixtureRequest) -> ModuleType:
    """`rinha._fast` or `rinha._reference`: the same API."""
    if request.param == "compiled":
        return _compiled()
    return importlib.import_module("rinha._reference")


@pytest.fixture(scope="session")
def compiled() -> ModuleType:
    return _compiled()


@pytest.fixture(scope="session")
def reference() -> ModuleType:
    return importlib.import_module("rinha._reference")
