"""Prometheus text parsing of the instances' /metrics."""

import math

import pytest

from rinha.tools.bench.metrics import PrometheusParseError, parse_prometheus, sample_key

TEXT = """\
# HELP rinha_accepted_total Payments accepted.
# TYPE rinha_accepted_total counter
rinha_accepted_total 1234
rinha_processed_total{processor="default"} 1000
rinha_processed_total{processor="fallback"} 34
rinha_backlog 0
rinha_in_flight 12 1700000000000
rinha_processor_latency_ms{processor="default"} 1.5e1
rinha_loop_lag_seconds +Inf
weird{a="x \\"q\\" y",b="line\\nbreak"} -3
spaced{ a = "1" , b="2", } 7
"""


def test_parse_the_exposition() -> None:
    m = parse_prometheus(TEXT)
    assert m["rinha_accepted_total"] == 1234
    assert m['rinha_processed_total{processor="default"}'] == 1000
    assert m['rinha_processed_total{processor="fallback"}'] == 34
    assert m["rinha_backlog"] == 0
    assert m["rinha_in_flight"] == 12  # the timestamp is dropped
    assert m['rinha_processor_latency_ms{processor="default"}'] == 15
    assert math.isinf(m["rinha_loop_lag_seconds"])
    assert m['weird{a="x "q" y",b="line\nbreak"}'] == -3
    assert m['spaced{a="1",b="2"}'] == 7
    assert not any(k.startswith("#") for k in m)


def test_label_order_does_not_matter() -> None:
    a = parse_prometheus('x{b="2",a="1"} 1\n')
    assert a == {'x{a="1",b="2"}': 1}
    assert sample_key("x", {"b": "2", "a": "1"}) == 'x{a="1",b="2"}'
    assert sample_key("x", {}) == "x"


def test_nan_and_empty() -> None:
    assert math.isnan(parse_prometheus("x NaN")["x"])
    assert parse_prometheus("") == {}
    assert parse_prometheus("# only a comment\n\n") == {}


@pytest.mark.parametrize("bad", ["x", 'x{a="1"}', 'x{a="1 2', "x{a=1} 2", "x abc"])
def test_malformed(bad: str) -> None:
    with pytest.raises(PrometheusParseError):
        parse_prometheus(bad)
