"""report.png of a run: latency over time, payments/s per processor, backlog; schedule marked."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from rinha.tools.bench.metrics import Sample


def counter_per_bin(
    samples: list[Sample], key: str, t0: float, bin_s: float = 1.0
) -> tuple[list[float], list[float]]:
    """Increase of a counter per `bin_s` bin, summed over instances: (bin starts, per second).
    Each increment between two samples of an instance lands in the bin of the later one; a
    counter that went down (restart) restarts from its new value."""
    bins: dict[int, float] = defaultdict(float)
    last: dict[int, float] = {}
    for s in samples:
        if key not in s.values:
            continue
        v = s.values[key]
        prev = last.get(s.instance)
        last[s.instance] = v
        if prev is None:
            continue
        bins[int(math.floor((s.t - t0) / bin_s))] += v - prev if v >= prev else v
    if not bins:
        return [], []
    lo, hi = min(bins), max(bins)
    xs = [i * bin_s for i in range(lo, hi + 1)]
    return xs, [bins.get(i, 0.0) / bin_s for i in range(lo, hi + 1)]


def gauge_sum(samples: list[Sample], key: str, t0: float) -> tuple[list[float], list[float]]:
    """A gauge summed over instances at each sampling round (latest value of each instance)."""
    latest: dict[int, float] = {}
    xs: list[float] = []
    ys: list[float] = []
    for s in samples:
        if key not in s.values:
            continue
        latest[s.instance] = s.values[key]
        xs.append(s.t - t0)
        ys.append(sum(latest.values()))
    return xs, ys


def gauge_max(samples: list[Sample], key: str, t0: float) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for s in samples:
        if key in s.values:
            xs.append(s.t - t0)
            ys.append(s.values[key])
    return xs, ys


def plot(result: dict[str, Any], samples: list[Sample], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = result["series"]
    t0 = (series["t0_ms"] or 0) / 1000 or (samples[0].t if samples else 0.0)
    bucket_s = series["bucket_s"]
    # drop the empty buckets after the last request
    busy = [
        i
        for i, (a, e) in enumerate(zip(series["accepted"], series["errors"], strict=False))
        if a or e
    ]
    n = busy[-1] + 1 if busy else 0
    bx = [(i + 0.5) * bucket_s for i in range(n)]

    fig, axes = plt.subplots(
        5, 1, figsize=(13, 16), sharex=True, gridspec_kw={"height_ratios": [3, 3, 2, 2, 1.2]}
    )
    ax_lat, ax_rate, ax_q, ax_lag, ax_use = axes

    # latency of POST /payments per bucket
    for stat, style in (("p(50)", "-"), ("p(90)", "-"), ("p(99)", "-"), ("max", ":")):
        ys = series["latency"].get(stat) or []
        pts = [(x, y) for x, y in zip(bx, ys[:n], strict=False) if y is not None]
        if pts:
            ax_lat.plot(*zip(*pts, strict=True), style, label=stat, lw=1.2)
    ax_lat.axhline(11, color="grey", lw=0.8, ls="--")
    ax_lat.axhline(1, color="grey", lw=0.8, ls="--")
    ax_lat.set_yscale("log")
    ax_lat.set_ylabel(f"POST /payments latency (ms, per {bucket_s:g} s)")
    # the host's steal per bucket: slow seconds that are other guests, not the service
    steal = result.get("machine", {}).get("steal_per_bucket") or []
    pts = [(x, 100 * y) for x, y in zip(bx, steal[:n], strict=False) if y is not None]
    if pts:
        ax_steal = ax_lat.twinx()
        ax_steal.fill_between(
            *zip(*pts, strict=True),
            step="mid",
            color="tab:red",
            alpha=0.15,
            lw=0,
            label="host steal",
        )
        ax_steal.set_ylim(0, max(10.0, max(y for _, y in pts) * 1.1))
        ax_steal.set_ylabel("steal (% of CPU time, shaded)", color="tab:red")

    # payments per second: what clients got accepted, what each processor confirmed
    ax_rate.plot(
        bx,
        [a / bucket_s for a in series["accepted"][:n]],
        color="black",
        lw=1,
        label="accepted by us (client 2xx)",
    )
    errs = series.get("errors") or []
    if any(errs):
        ax_rate.plot(
            bx,
            [e / bucket_s for e in errs[:n]],
            color="red",
            lw=1,
            label="not accepted (non-2xx / no answer)",
        )
    for proc, color in (("default", "tab:blue"), ("fallback", "tab:orange")):
        xs, ys = counter_per_bin(samples, f'rinha_processed_total{{processor="{proc}"}}', t0)
        if xs:
            ax_rate.step(xs, ys, where="post", color=color, label=f"processed on {proc}")
    for rec in result["consistency"]["records"]:
        if rec.get("inconsistent"):
            ax_rate.axvline(rec.get("at_s", 0), color="red", lw=2, alpha=0.5)
    ax_rate.set_ylabel("payments / s")

    # queue
    for key, label in (("rinha_backlog", "backlog"), ("rinha_in_flight", "in flight")):
        xs, ys = gauge_sum(samples, key, t0)
        if xs:
            ax_q.plot(xs, ys, label=label, lw=1)
    ax_q.set_ylabel("payments (all instances)")

    # event-loop lag per instance
    by_instance: dict[int, list[Sample]] = defaultdict(list)
    for s in samples:
        by_instance[s.instance].append(s)
    for i, ss in sorted(by_instance.items()):
        xs, ys = gauge_max(ss, "rinha_loop_lag_seconds", t0)
        if xs:
            ax_lag.plot(xs, [y * 1000 for y in ys], lw=1, label=f"instance {i}")
    ax_lag.set_ylabel("event-loop lag (ms)")

    # how many instances hold each processor usable (rinha_processor_usable, 0/1 each)
    for k, (proc, color) in enumerate((("default", "tab:blue"), ("fallback", "tab:orange"))):
        xs, ys = gauge_sum(samples, f'rinha_processor_usable{{processor="{proc}"}}', t0)
        if xs:
            # fallback drawn a hair lower so that equal lines stay visible
            ax_use.step(xs, [y - 0.06 * k for y in ys], where="post", color=color, label=proc)
    ax_use.set_ylabel("instances with\nprocessor usable")
    ax_use.set_ylim(-0.3, max(1, len(by_instance)) + 0.3)
    ax_use.set_xlabel("seconds since the start of the load")

    # failing periods shaded behind the payments, switches on every panel, labelled on top
    phases = result["schedule"]["phases"]
    end = max(bx[-1] + bucket_s if bx else 0.0, phases[-1]["at_s"] + 1)
    shades = {"default": ("tab:red", 0.10), "fallback": ("tab:orange", 0.15)}
    for i, phase in enumerate(phases):
        stop = phases[i + 1]["at_s"] if i + 1 < len(phases) else end
        for proc, (color, alpha) in shades.items():
            if phase[proc]["failure"]:
                ax_rate.axvspan(
                    phase["at_s"],
                    stop,
                    color=color,
                    alpha=alpha,
                    lw=0,
                    label=f"{proc} failing"
                    if i == min(j for j, p in enumerate(phases) if p[proc]["failure"])
                    else None,
                )
    for phase in phases[1:]:
        for ax in axes:
            ax.axvline(phase["at_s"], color="purple", lw=0.8, ls="--", alpha=0.7)
        ax_lat.text(
            phase["at_s"],
            1.01,
            phase["label"],
            transform=ax_lat.get_xaxis_transform(),
            rotation=30,
            fontsize=7,
            color="purple",
            ha="left",
            va="bottom",
        )
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=8)

    s, lat = result["score"], result["latency_ms"]["all"]
    ratio = "-" if s["ratio"] is None else f"{s['ratio'] * 100:.1f} %"
    fig.suptitle(
        f"{result['schedule']['name']}: score {s['score_cents'] / 100:,.2f}"
        f" / best {s['best_cents'] / 100:,.2f} ({ratio});"
        f" p99 {lat.get('p(99)', 0):.2f} ms; lag {s['lag']};"
        f" {result['consistency']['inconsistencies']} inconsistent;"
        f" fallback {s['fallback_share'] * 100:.1f} %",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
