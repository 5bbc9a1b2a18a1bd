"""The result of one `rinha bench` run as a dict (what result.json holds), and its files."""

from __future__ import annotations

import json
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Any

from rinha.tools.bench import k6, schedules, scoring
from rinha.tools.bench.cgroup import Usage
from rinha.tools.bench.metrics import Sample


def jsonable(obj: Any) -> Any:
    if isinstance(obj, Fraction):
        return float(obj)
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    return obj


def build_result(
    config: dict[str, Any],
    measured: k6.Measured,
    log: dict[str, list[Any]],
    usage: Usage,
    notes: list[str],
    schedule: schedules.Schedule,
    steal: float | None = None,
    steal_series: list[float | None] | None = None,
    confinement: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`confinement`: {"cgroup": "v1" | "v2" | "none", "cpus", "memory_bytes"} of the backend
    (None: it was not confined)."""
    sc = scoring.score(measured.score_input())
    amount = scoring.to_cents(config["amount"])
    buckets, width = measured.accepted_per_bucket, measured.bucket_s
    best = scoring.best_possible(schedule, buckets, width, amount)
    ceiling = scoring.best_possible(schedule, buckets, width, amount, defer=True)
    ratio = float(sc.score / best.score) if best.score else None
    return {
        "schedule": {"name": schedule.name, "phases": schedule.to_json()},
        "config": config,
        "score": {
            "score_cents": sc.score_cents,
            "best_cents": best.score_cents,
            "ratio": ratio,
            "profit_cents": sc.profit_cents,
            "bonus": float(sc.bonus),
            "fine": float(sc.fine),
            "disqualified": sc.disqualified,
            "lag": sc.lag,
            "reported_requests": sc.reported_requests,
            "fallback_share": sc.fallback_share,
            "best_per_processor": dict(best.per_processor),
            "best_unplaceable": best.unplaceable,
            "deferred_best_cents": ceiling.score_cents,
            "deferred_ratio": float(sc.score / ceiling.score) if ceiling.score else None,
        },
        "requests": {
            "requested": measured.requested,
            "accepted": measured.accepted,
            "rejected": measured.rejected,
            "failed": measured.failed,
            "unlogged": measured.unlogged,
        },
        "latency_ms": {
            "all": measured.http,
            "payments": measured.payments,
        },
        "consistency": {
            "checks": measured.checks,
            "inconsistencies": measured.inconsistencies,
            "check_errors": measured.check_errors,
            "records": log.get("check", []),
        },
        "final": {
            "ok": measured.final_ok,
            "ours": {p: asdict(t) for p, t in measured.reported.items()},
            "processors": {p: asdict(t) for p, t in measured.processors.items()},
        },
        "phases_applied": log.get("phase", []),
        "phase_errors": measured.phase_errors,
        "k6_errors": log.get("k6", [])[:20],
        "k6_warnings": log.get("k6_warnings", []),
        "backend": asdict(usage),
        "confinement": confinement or {"cgroup": "none", "cpus": None, "memory_bytes": None},
        # of all CPU time: over k6's run, and per series bucket
        "machine": {"steal_share": steal, "steal_per_bucket": steal_series or []},
        "series": {
            "t0_ms": measured.t0_ms,
            "bucket_s": measured.bucket_s,
            "accepted": measured.accepted_per_bucket,
            "errors": measured.errors_per_bucket,
            "latency": measured.latency_per_bucket,
        },
        "test_duration_ms": measured.duration_ms,
        "notes": notes,
    }


def save(out: Path, result: dict[str, Any], samples: list[Sample]) -> None:
    """samples.json (every /metrics reading) and result.json into `out`."""
    (out / "samples.json").write_text(
        json.dumps([{"t": s.t, "instance": s.instance, "values": s.values} for s in samples])
    )
    (out / "result.json").write_text(json.dumps(jsonable(result), indent=1))
