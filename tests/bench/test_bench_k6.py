"""Reading k6's summary and log, the run config, durations, the result and its text."""

import argparse
import json

import pytest

from rinha.tools.bench import k6, parse_duration, schedules
from rinha.tools.bench.cgroup import Usage
from rinha.tools.bench.report import report_text
from rinha.tools.bench.result import build_result, save
from rinha.tools.bench.scoring import Totals


def _trend(**values: float) -> dict:
    return {"type": "trend", "contains": "time", "values": values}


def _counter(n: int) -> dict:
    return {"type": "counter", "contains": "default", "values": {"count": n, "rate": 1.0}}


def _gauge(v: float) -> dict:
    return {"type": "gauge", "contains": "default", "values": {"value": v, "min": v, "max": v}}


CONFIG = {
    "buckets": 3,
    "bucket_s": 1.0,
    "amount": 19.9,
    "mode": "ramp",
    "vus": 550,
    "duration_s": 60.0,
    "rate": 0,
}

SUMMARY = {
    "setup_data": {"t0": 1000},
    "state": {"testRunDurationMs": 63_000.5},
    "metrics": {
        "http_req_duration": _trend(**{"p(50)": 0.8, "p(99)": 1.25, "max": 30.0, "count": 120}),
        "bench_checks": _counter(6),
        "bench_inconsistencies": _counter(1),
        "bench_t0_ms": _gauge(1_700_000_000_000),
        "bench_final_ok": _gauge(1),
        "bench_final_our_default_requests": _gauge(90),
        "bench_final_our_default_amount": _gauge(1791.0),
        "bench_final_our_fallback_requests": _gauge(8),
        "bench_final_our_fallback_amount": _gauge(159.2),
        "bench_final_pp_default_requests": _gauge(90),
        "bench_final_pp_default_amount": _gauge(1791.0),
        "bench_final_pp_fallback_requests": _gauge(9),
        "bench_final_pp_fallback_amount": _gauge(179.1),
    },
}

T0 = 1_700_000_000_000
# (start ms, duration ms, status): 40 accepted in second 0 (0.1 … 4.0 ms), 4 rejected and 6 not
# answered in second 1, 60 accepted in second 2 (all 1 ms)
PAYMENTS = (
    [(T0 + 10 * i, 0.1 * (i + 1), 202) for i in range(40)]
    + [(T0 + 1000, 2.0, 500)] * 4
    + [(T0 + 1500, 1500.0, 0)] * 6
    + [(T0 + 2999, 1.0, 200)] * 60
)


def test_parse_summary() -> None:
    m = k6.parse_summary(SUMMARY, CONFIG, PAYMENTS)
    assert (m.requested, m.accepted, m.rejected, m.failed) == (110, 100, 4, 6)
    assert m.http["p(99)"] == 1.25
    assert m.payments["count"] == 110 and m.payments["max"] == 1500.0
    assert m.checks == 6 and m.inconsistencies == 1 and m.check_errors == 0
    assert m.final_ok
    assert m.reported == {"default": Totals(90, 179_100), "fallback": Totals(8, 15_920)}
    assert m.processors["fallback"] == Totals(9, 17_910)
    assert m.t0_ms == 1_700_000_000_000
    assert m.accepted_per_bucket == [40, 0, 60]
    assert m.errors_per_bucket == [0, 10, 0]
    assert m.latency_per_bucket["max"] == [4.0, 1500.0, 1.0]
    assert m.latency_per_bucket["p(50)"][0] == pytest.approx(2.05)
    assert m.latency_per_bucket["p(99)"][0] == pytest.approx(3.961)
    assert m.latency_per_bucket["p(90)"][2] == 1.0
    inp = m.score_input()
    assert inp.p99_ms == 1.25 and inp.requested == 110 and inp.inconsistencies == 1


def test_payments_missing_from_the_log_are_counted() -> None:
    # k6 sent 120 requests, 10 of them not payments: 110 payments, all 110 logged
    metrics = dict(SUMMARY["metrics"], http_reqs=_counter(120), bench_other_requests=_counter(10))
    summary = dict(SUMMARY, metrics=metrics)
    assert k6.parse_summary(summary, CONFIG, PAYMENTS).unlogged == 0
    # a VU's buffer never logged: 7 payments short
    m = k6.parse_summary(summary, CONFIG, PAYMENTS[:-7])
    assert m.unlogged == 7 and m.requested == 103
    r = build_result(CONFIG, m, {}, Usage(), [], schedules.get("healthy", 3))
    assert r["requests"]["unlogged"] == 7
    assert "NOT LOGGED 7 (counts incomplete)" in report_text(r)


def test_parse_summary_of_an_aborted_run() -> None:
    m = k6.parse_summary({"metrics": {}, "setup_data": {"t0": 5}}, CONFIG)
    assert m.requested == 0 and not m.final_ok and m.t0_ms == 5 and m.unlogged == 0
    assert m.accepted_per_bucket == [0, 0, 0] and m.payments == {}
    assert m.latency_per_bucket["p(99)"] == [None, None, None]
    assert m.reported == {"default": Totals(), "fallback": Totals()}


def test_percentile_is_k6s() -> None:
    assert k6.percentile([1.0], 99) == 1.0
    assert k6.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert k6.percentile([0.0, 10.0], 99) == pytest.approx(9.9)
    s = k6.trend_stats([3.0, 1.0, 2.0])
    assert s["med"] == 2.0 and s["min"] == 1.0 and s["avg"] == 2.0 and s["count"] == 3


def test_parse_log() -> None:
    lines = [
        json.dumps(
            {
                "level": "info",
                "msg": 'BENCH {"kind":"check","t":1,"inconsistent":false}',
                "source": "console",
            }
        ),
        json.dumps(
            {"level": "info", "msg": 'BENCH {"kind":"phase","index":1}', "source": "console"}
        ),
        json.dumps({"level": "warning", "msg": "Request Failed", "error": "timeout"}),
        json.dumps({"level": "error", "msg": "test aborted: x"}),
        json.dumps({"level": "info", "msg": "hello", "source": "console"}),
        json.dumps({"level": "info", "msg": "P 1700000000123 0.85 202", "source": "console"}),
        json.dumps({"level": "info", "msg": "P 1700000000124 1500 0", "source": "console"}),
        json.dumps({"level": "info", "msg": "P garbage", "source": "console"}),
        json.dumps(
            {
                "level": "info",
                "msg": "P 1700000000200 0.5 202 1700000000300 0.7 409",
                "source": "console",
            }
        ),
        json.dumps({"level": "info", "msg": "P 1700000000400 0.5 202 17", "source": "console"}),
        json.dumps({"level": "info", "msg": "P 1700000000500 x 202", "source": "console"}),
        "not json",
        "",
    ]
    log = k6.parse_log(lines)
    assert log["check"] == [{"t": 1, "inconsistent": False}]
    assert log["phase"] == [{"index": 1}]
    assert log["k6"] == [{"level": "error", "msg": "test aborted: x"}]
    assert log["k6_warnings"] == [{"msg": "Request Failed", "error": "timeout"}]
    # a batched line gives each of its payments; a line with a torn or bad triple gives none
    assert log["payments"] == [
        (1700000000123.0, 0.85, 202),
        (1700000000124.0, 1500.0, 0),
        (1700000000200.0, 0.5, 202),
        (1700000000300.0, 0.7, 409),
    ]


def test_bucket_layout() -> None:
    assert k6.bucket_layout(65) == (1.0, 65)
    assert k6.bucket_layout(240) == (1.0, 240)
    assert k6.bucket_layout(500) == (3.0, 167)


def test_load_config() -> None:
    sched = schedules.get("published")
    c = k6.LoadConfig("http://x:1/", "http://d:2", "http://f:3", sched, "/tmp/s.json").to_json()
    assert c["url"] == "http://x:1" and c["mode"] == "ramp" and c["vus"] == 550
    assert c["checks"] == 6 and c["check_interval_s"] == 10
    assert c["summary_window_s"] == 70
    assert c["buckets"] == 65 and c["bucket_s"] == 1.0
    assert c["timeout_ms"] == 1500 and c["amount"] == 19.9
    assert len(c["schedule"]) == 6
    short = k6.LoadConfig("u", "d", "f", sched, "s", duration_s=15).to_json()
    assert short["checks"] == 6 and short["check_interval_s"] == 2.5
    rate = k6.LoadConfig("u", "d", "f", sched, "s", mode="rate", rate=200, duration_s=100).to_json()
    assert rate["max_vus"] == 370 and rate["pre_vus"] == 10
    stress = k6.LoadConfig("u", "d", "f", sched, "s", mode="rate", rate=3000).to_json()
    assert stress["pre_vus"] == 100 and stress["max_vus"] == 5410
    assert rate["summary_window_s"] == 110
    # payments are logged 20 to a line, and each at once in the last 5 s
    assert c["log_batch"] == 20 and c["log_each_from_ms"] == 55_000
    assert short["log_each_from_ms"] == 10_000 and rate["log_each_from_ms"] == 95_000


def test_command_points_at_the_packaged_script() -> None:
    cmd = k6.command("/bin/k6", "/o/config.json", "/o/k6.log")
    assert cmd[:2] == ["/bin/k6", "run"]
    assert cmd[-1].endswith("rinha.js") and k6.SCRIPT.exists()
    assert "BENCH_CONFIG=/o/config.json" in cmd


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("60", 60),
        ("60s", 60),
        ("1m", 60),
        ("1m30s", 90),
        ("1500ms", 1.5),
        ("0.5s", 0.5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "0", "s", "5 s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_result_and_text() -> None:
    m = k6.parse_summary(SUMMARY, CONFIG, PAYMENTS)
    log = {
        "check": [
            {
                "at_s": 20.0,
                "inconsistent": True,
                "default": {"ours": 5, "theirs": 5},
                "fallback": {"ours": 3, "theirs": 4},
            }
        ]
    }
    sched = schedules.get("healthy", 3)
    r = build_result(CONFIG, m, log, Usage(cpu_seconds=12.5, peak_bytes=200 * 2**20), [], sched)
    s = r["score"]
    # profit 179_100 × 0.95 + 15_920 × 0.85 = 170_145 + 13_532; × (1 + 0.195 − 0.35)
    assert s["profit_cents"] == 183_677
    assert s["score_cents"] == round(183_677 * 0.845)
    # best: 100 accepted, all on default, 20 % bonus
    assert s["best_cents"] == round(100 * 1990 * 0.95 * 1.2)
    assert s["lag"] == 2 and s["fine"] == 0.35
    json.dumps(r, default=float)
    text = report_text(r)
    assert "score" in text and "ratio" in text and "1 inconsistent of 6 checks" in text
    assert "fallback ours 3 theirs 4" in text
    assert "final window   differs: fallback ours 8 theirs 9" in text
    assert "CPU 12.5 s" in text and "peak memory 200.0 MB" in text
    assert "machine" not in text  # no steal measured: no line
    r = build_result(CONFIG, m, log, Usage(), [], sched, steal=0.034)
    assert r["machine"] == {"steal_share": 0.034, "steal_per_bucket": []}
    assert "machine        steal 3.4 % of CPU time" in report_text(r)


def test_result_and_text_say_how_the_backend_was_confined() -> None:
    m = k6.parse_summary(SUMMARY, CONFIG, PAYMENTS)
    sched = schedules.get("healthy", 3)
    r = build_result(CONFIG, m, {}, Usage(), [], sched)
    assert r["confinement"] == {"cgroup": "none", "cpus": None, "memory_bytes": None}
    assert "confinement    none: the backend ran unconfined" in report_text(r)
    for version in ("v1", "v2"):
        conf = {"cgroup": version, "cpus": 1.5, "memory_bytes": 350 * 2**20}
        r = build_result(CONFIG, m, {}, Usage(), [], sched, confinement=conf)
        assert json.loads(json.dumps(r, default=float))["confinement"] == conf
        assert f"confinement    cgroup {version}: 1.5 CPU, 350 MB" in report_text(r)


def test_save_writes_the_samples_and_a_result_json_without_fractions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fractions import Fraction

    from rinha.tools.bench.metrics import Sample

    result = {"score": {"bonus": Fraction(1, 8), "per": {1: (Fraction(1, 2), 3)}}}
    save(tmp_path, result, [Sample(1.5, 0, {"rinha_backlog": 2.0})])
    assert json.loads((tmp_path / "result.json").read_text()) == {
        "score": {"bonus": 0.125, "per": {"1": [0.5, 3]}}
    }
    samples = json.loads((tmp_path / "samples.json").read_text())
    assert samples == [{"t": 1.5, "instance": 0, "values": {"rinha_backlog": 2.0}}]
