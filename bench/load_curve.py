"""The load curve: `rinha bench`'s stress mode at rising rates, code against code and the floor.

For each rate (POST /payments per second, constant arrival, healthy processors) and each
variant in turn, this runs `python -m rinha bench --rate R --duration D` (the whole stack:
emulated processors, Nginx, the instances in a 1.5 CPU / 350 MB cgroup, k6) and reads its
result.json: the payments' p50 and p99, the backend's CPU seconds, errors and the host's
steal. A variant is `NAME=PATH`: the bench and the stack run with PYTHONPATH=PATH (a git
worktree with its extension built in place, or `.`); `--floor` adds the bench's no-op
upstreams (the machine's limit for the same Nginx and k6). Variants alternate at each rate,
so a noisy minute hits them alike. Writes curve.json and curve.png into --out and prints the
table and, per variant, the first rate whose p99 passes --p99-ms.

    python bench/load_curve.py --variant new=. --variant old=/tmp/wt-old --floor \\
        [--rates 1000,2000,3000,4000,5000,6000] [--duration 15s] [--out /tmp/curve]

On this VM the first variant run at each rate tends to be the slower one, whatever its code:
run passes in both orders (`--variant` order) and merge them, each point the median of its
passes' p50, p99 and CPU:

    python bench/load_curve.py --combine /tmp/curve-a /tmp/curve-b ... --out /tmp/curve
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def run_point(name: str, path: str, floor: bool, rate: int, args: argparse.Namespace) -> dict:
    out = Path(args.out) / f"{name}-{rate}"
    env = dict(os.environ, PYTHONPATH=os.path.abspath(path))
    cmd = [sys.executable, "-m", "rinha", "bench", "--rate", str(rate)]
    cmd += ["--duration", args.duration, "--out", str(out), "--no-plot"]
    if floor:
        cmd.append("--floor")
    started = time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    point: dict[str, Any] = {"variant": name, "rate": rate, "wall_s": time.monotonic() - started}
    try:
        result = json.loads((out / "result.json").read_text())
    except (OSError, ValueError):
        point["error"] = (done.stderr or done.stdout)[-400:]
        return point
    payments = result["latency_ms"]["payments"]
    requests = result["requests"]
    point.update(
        p50_ms=payments["p(50)"],
        p99_ms=payments["p(99)"],
        cpu_s=result["backend"]["cpu_seconds"],
        sent=requests["requested"],
        failed=requests["failed"] + requests.get("rejected", 0),
        steal=(result.get("machine") or {}).get("steal_share"),
    )
    return point


def first_over(points: list[dict], limit_ms: float) -> int | None:
    for point in sorted(points, key=lambda p: p["rate"]):
        if point.get("p99_ms", float("inf")) > limit_ms:
            return int(point["rate"])
    return None


def plot(points: list[dict], path: Path, limit_ms: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat, cpu) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name in dict.fromkeys(p["variant"] for p in points):
        mine = sorted(
            (p for p in points if p["variant"] == name and "p99_ms" in p), key=lambda p: p["rate"]
        )
        rates = [p["rate"] for p in mine]
        (line,) = lat.plot(rates, [p["p99_ms"] for p in mine], marker="o", label=f"{name} p99")
        lat.plot(rates, [p["p50_ms"] for p in mine], marker=".", linestyle="--",
                 color=line.get_color(), label=f"{name} p50")  # fmt: skip
        cpu.plot(rates, [p["cpu_s"] for p in mine], marker="o", label=name, color=line.get_color())
    lat.axhline(limit_ms, color="grey", linewidth=0.8, linestyle=":")
    lat.set(xlabel="POST /payments per second", ylabel="latency (ms)", yscale="log",
            title="payments' latency through Nginx (k6)")  # fmt: skip
    cpu.set(xlabel="POST /payments per second", ylabel="backend CPU seconds per run",
            title="Nginx + instances, CPU per run")  # fmt: skip
    lat.legend(fontsize=8)
    cpu.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def combine(dirs: list[str]) -> list[dict]:
    """Each (variant, rate) of the passes in `dirs` (their curve.json): the median of its runs."""
    runs: dict[tuple[str, int], list[dict]] = {}
    for directory in dirs:
        for point in json.loads((Path(directory) / "curve.json").read_text()):
            if "p99_ms" in point:
                runs.setdefault((point["variant"], point["rate"]), []).append(point)
    merged = []
    for (name, rate), mine in runs.items():
        point = {"variant": name, "rate": rate, "passes": len(mine)}
        for key in ("p50_ms", "p99_ms", "cpu_s"):
            point[key] = statistics.median(p[key] for p in mine)
        point["failed"] = sum(p["failed"] for p in mine)
        point["sent"] = sum(p["sent"] for p in mine)
        steals = [p["steal"] for p in mine if p.get("steal") is not None]
        point["steal"] = max(steals) if steals else None
        merged.append(point)
    return merged


def report(points: list[dict], names: list[str], args: argparse.Namespace) -> None:
    """Writes curve.json and curve.png into --out and prints where each p99 passes --p99-ms."""
    (Path(args.out) / "curve.json").write_text(json.dumps(points, indent=1))
    for name in names:
        rate = first_over([p for p in points if p["variant"] == name], args.p99_ms)
        where = f"{rate}/s" if rate else "none of the rates"
        print(f"{name}: p99 first over {args.p99_ms:g} ms at {where}")
    plot(points, Path(args.out) / "curve.png", args.p99_ms)


def print_point(point: dict) -> None:
    steal = "" if point["steal"] is None else f", steal {100 * point['steal']:.1f} %"
    passes = f" (median of {point['passes']})" if "passes" in point else ""
    print(
        f"{point['rate']:>5}/s {point['variant']:>8}: p50 {point['p50_ms']:6.2f} ms, "
        f"p99 {point['p99_ms']:7.2f} ms, backend {point['cpu_s']:5.1f} CPU-s, "
        f"{point['failed']} failed of {point['sent']}{steal}{passes}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--floor", action="store_true", help="add the no-op upstreams")
    parser.add_argument("--rates", default="1000,2000,3000,4000,5000,6000")
    parser.add_argument("--duration", default="15s", help="each point's stress (default: 15s)")
    parser.add_argument("--p99-ms", type=float, default=5.0)
    parser.add_argument("--out", default="/tmp/rinha-curve")
    parser.add_argument("--combine", nargs="+", metavar="DIR", help="merge earlier passes' --out")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.combine:
        points = sorted(combine(args.combine), key=lambda p: p["rate"])
        names = list(dict.fromkeys(p["variant"] for p in points))
        points.sort(key=lambda p: (p["rate"], names.index(p["variant"])))
        for point in points:
            print_point(point)
        report(points, names, args)
        return
    variants = [(*v.split("=", 1), False) for v in args.variant] or [("current", ".", False)]
    if args.floor:
        variants.append(("floor", ".", True))
    points: list[dict] = []
    for rate in (int(r) for r in args.rates.split(",")):
        for name, path, floor in variants:
            point = run_point(name, path, floor, rate, args)
            points.append(point)
            if "error" in point:
                print(f"{rate:>5}/s {name:>8}: failed: {point['error']}", flush=True)
            else:
                print_point(point)
    report(points, [name for name, _, _ in variants], args)


if __name__ == "__main__":
    main()
