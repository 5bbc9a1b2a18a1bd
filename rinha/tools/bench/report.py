"""The text report of one `rinha bench` run, from its result dict (result.py)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any


def _money(cents: int | Fraction) -> str:
    return f"{float(cents) / 100:,.2f}"


def _pct(x: float | Fraction) -> str:
    return f"{float(x) * 100:.1f} %"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} ms"


def _confinement(conf: dict[str, Any] | None) -> str:
    if not conf or conf.get("cgroup", "none") == "none":
        return "confinement    none: the backend ran unconfined"
    return (
        f"confinement    cgroup {conf['cgroup']}: {conf['cpus']:g} CPU,"
        f" {conf['memory_bytes'] / 2**20:g} MB"
    )


def report_text(result: dict[str, Any]) -> str:
    s, r, lat = result["score"], result["requests"], result["latency_ms"]
    c, b, cfg = result["consistency"], result["backend"], result["config"]
    load = (
        f"{cfg['rate']} req/s for {cfg['duration_s']:g} s"
        if cfg["mode"] == "rate"
        else f"1 → {cfg['vus']} VUs over {cfg['duration_s']:g} s"
    )
    ratio = "-" if s["ratio"] is None else _pct(s["ratio"])
    deferred = "-" if s["deferred_ratio"] is None else _pct(s["deferred_ratio"])
    lines = [
        f"schedule       {result['schedule']['name']}  ({load})",
        f"score          {_money(s['score_cents'])}"
        + ("   DISQUALIFIED (reported more than requested)" if s["disqualified"] else ""),
        f"best possible  {_money(s['best_cents'])}   ratio {ratio}",
        f"  if deferred  {_money(s['deferred_best_cents'])}   ratio {deferred}"
        "   (payments held until default recovers)",
        f"profit         {_money(s['profit_cents'])}   bonus {_pct(s['bonus'])}"
        f"   fine {_pct(s['fine'])}",
        f"latency        p50 {_ms(lat['all'].get('p(50)'))}   p99 {_ms(lat['all'].get('p(99)'))}"
        f"   max {_ms(lat['all'].get('max'))}   (all {lat['all'].get('count', 0):.0f} requests)",
        f"  POST /pay    p50 {_ms(lat['payments'].get('p(50)'))}"
        f"   p99 {_ms(lat['payments'].get('p(99)'))}   max {_ms(lat['payments'].get('max'))}",
        f"payments       requested {r['requested']}   accepted {r['accepted']}"
        f"   rejected {r['rejected']}   no answer {r['failed']}"
        + (f"   NOT LOGGED {r['unlogged']} (counts incomplete)" if r.get("unlogged") else ""),
        f"reported       {s['reported_requests']}   lag {s['lag']}"
        f"   fallback share {_pct(s['fallback_share'])}",
        f"consistency    {c['inconsistencies']} inconsistent of {c['checks']} checks"
        + (f"   ({c['check_errors']} processor errors)" if c["check_errors"] else ""),
    ]
    for rec in c["records"]:
        if rec.get("inconsistent"):
            parts = [
                f"{p} ours {rec[p]['ours']} theirs {rec[p]['theirs']}"
                for p in ("default", "fallback")
                if p in rec
            ]
            lines.append(
                f"  at {rec.get('at_s', 0):5.1f} s  "
                + "; ".join(parts)
                + (f"  our error: {rec['ours_error']}" if "ours_error" in rec else "")
            )
    fin = result["final"]
    if fin["ok"]:
        diffs = [
            f"{p} ours {fin['ours'][p]['requests']} theirs {fin['processors'][p]['requests']}"
            for p in ("default", "fallback")
            if fin["ours"][p]["requests"] != fin["processors"][p]["requests"]
        ]
        if diffs:
            lines.append("final window   differs: " + "; ".join(diffs))
    else:
        lines.append("final window   INCOMPLETE: a final summary did not answer")
    lines.append(_confinement(result.get("confinement")))
    secs = result["test_duration_ms"] / 1000 or 1
    parts = []
    if b.get("cpu_seconds") is not None:
        parts.append(f"CPU {b['cpu_seconds']:.1f} s ({b['cpu_seconds'] / secs:.2f} CPU avg)")
    if b.get("peak_bytes") is not None:
        parts.append(f"peak memory {b['peak_bytes'] / 2**20:.1f} MB")
    if b.get("peak_rss_bytes"):
        parts.append(f"peak RSS sum {b['peak_rss_bytes'] / 2**20:.1f} MB")
    if parts:
        lines.append("backend        " + "   ".join(parts))
    if b.get("throttled_periods"):
        lines.append(
            f"  throttled    {b['throttled_periods']} periods, {b['throttled_seconds']:.2f} s"
        )
    if b.get("oom_kills"):
        lines.append(f"  OOM KILLS    {b['oom_kills']}")
    steal = result.get("machine", {}).get("steal_share")
    if steal is not None:
        lines.append(
            f"machine        steal {_pct(steal)} of CPU time (other guests on the host;"
            " compare p99 only between runs of similar steal)"
        )
    for err in result.get("k6_errors", [])[:3]:
        lines.append(f"k6 {err['level']:<11} {err['msg'][:300]}")
    for note in result["notes"]:
        lines.append(f"note           {note}")
    return "\n".join(lines)
