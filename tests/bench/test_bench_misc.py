"""Plot helpers and cgroup plumbing that need no privileges."""

import os
from pathlib import Path

import pytest

from rinha.tools.bench.cgroup import BenchCgroup
from rinha.tools.bench.machine import steal_per_bucket, steal_share
from rinha.tools.bench.metrics import Sample
from rinha.tools.bench.plotting import counter_per_bin, gauge_sum

KEY = 'rinha_processed_total{processor="default"}'


def test_counter_per_bin_sums_instances_and_survives_a_restart() -> None:
    samples = [
        Sample(100.0, 0, {KEY: 10}),
        Sample(100.1, 1, {KEY: 0}),
        Sample(100.6, 0, {KEY: 15}),
        Sample(100.7, 1, {KEY: 4}),
        Sample(101.2, 0, {KEY: 25}),
        Sample(101.3, 1, {KEY: 2}),  # instance 1 restarted
        Sample(102.5, 0, {"other": 1}),
    ]
    xs, ys = counter_per_bin(samples, KEY, t0=100.0)
    assert xs == [0.0, 1.0]
    assert ys == [5 + 4, 10 + 2]
    assert counter_per_bin([], KEY, 0.0) == ([], [])


def test_gauge_sum_uses_the_latest_value_of_each_instance() -> None:
    samples = [Sample(1.0, 0, {"b": 3}), Sample(1.1, 1, {"b": 4}), Sample(1.5, 0, {"b": 1})]
    xs, ys = gauge_sum(samples, "b", t0=1.0)
    assert ys == [3, 7, 5]
    assert xs[0] == 0.0


def test_join_wrapper(tmp_path: Path) -> None:
    cg = BenchCgroup(root=tmp_path)
    cg.dirs = {"cpu": tmp_path / "cpu" / "g", "memory": tmp_path / "memory" / "g"}
    script = cg.join_wrapper(tmp_path / "w.sh", "/usr/bin/python3", only_if="rinha serve")
    text = script.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert f'echo $$ > "{tmp_path}/cpu/g/cgroup.procs"' in text
    assert '*" rinha serve "*)' in text
    assert text.rstrip().endswith('exec "/usr/bin/python3" "$@"')
    assert os.access(script, os.X_OK)
    always = cg.join_wrapper(tmp_path / "n.sh", "/usr/sbin/nginx").read_text()
    assert "case" not in always


def test_cpu_split_names_nginx_and_each_instance() -> None:
    import argparse
    import subprocess
    import sys
    import time

    from rinha.tools.bench.runner import _Run

    spin = (
        "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end: pass\n"
        "time.sleep(30)"
    )
    # argv like `python -m rinha serve` (an instance) and like anything else (nginx's side)
    instance = subprocess.Popen([sys.executable, "-c", spin.format(s=0.3), "rinha", "serve"])
    other = subprocess.Popen([sys.executable, "-c", spin.format(s=0.1)])
    try:
        run = _Run(argparse.Namespace())
        run.pids = [instance.pid, other.pid]
        run.mark_cpu()
        time.sleep(1.0)  # both spin after the mark
        split = run.cpu_split()
        assert split is not None and split.startswith("backend CPU by process: nginx ")
        nginx_s = float(split.split("nginx ")[1].split(" s")[0])
        instance_s = float(split.split("instances ")[1].split(" s")[0])
        assert 0.0 <= nginx_s <= 0.2 and 0.1 <= instance_s <= 0.4
        other.kill()
        other.wait()
        assert run.cpu_split() is None  # a process gone: no partial split
    finally:
        for proc in (instance, other):
            proc.kill()
            proc.wait()


def test_steal_share_between_two_readings() -> None:
    before, after = (0.5, 10.0), (2.0, 20.0)  # (steal, total) s, as procfs.machine_cpu_times
    assert steal_share(before, after) == pytest.approx(0.15)  # 1.5 of the 10 s in between
    assert steal_share(None, after) is None and steal_share(after, after) is None


def test_steal_per_bucket_puts_each_interval_in_the_bucket_of_its_later_reading() -> None:
    readings = [
        (99.9, (0, 0)),
        (100.4, (5, 100)),
        (100.9, (5, 200)),
        (101.4, (45, 300)),
        (104.0, (45, 300)),
    ]  # the last: no CPU time passed (a stalled clock)
    shares = steal_per_bucket(readings, t0=100.0, bucket_s=1.0, n=3)
    # bucket 0: (5 + 0) of (100 + 100); bucket 1: 40 of 100; bucket 2: nothing read
    assert shares == [0.025, 0.4, None]
    assert steal_per_bucket([], 0.0, 1.0, 2) == [None, None]


def test_load_curve_passes_merge_into_their_median_per_point(tmp_path: Path) -> None:
    import importlib.util
    import json

    path = Path(__file__).resolve().parents[2] / "bench" / "load_curve.py"
    spec = importlib.util.spec_from_file_location("load_curve", path)
    assert spec is not None and spec.loader is not None
    load_curve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load_curve)

    def point(variant: str, rate: int, p99: float, steal: float | None = 0.0) -> dict:
        return {"variant": variant, "rate": rate, "p50_ms": p99 / 10, "p99_ms": p99,
                "cpu_s": p99 / 2, "sent": rate, "failed": 0, "steal": steal}  # fmt: skip

    passes = [
        [point("new", 1000, 1.0), point("new", 2000, 9.0), point("floor", 1000, 0.5)],
        [point("new", 1000, 3.0), point("new", 2000, 4.0), {"variant": "new", "rate": 3000}],
        [point("new", 1000, 2.0, steal=0.02), point("new", 2000, 6.0, steal=None)],
    ]
    for n, points in enumerate(passes):
        (tmp_path / str(n)).mkdir()
        (tmp_path / str(n) / "curve.json").write_text(json.dumps(points))
    merged = load_curve.combine([str(tmp_path / str(n)) for n in range(3)])
    by_point = {(p["variant"], p["rate"]): p for p in merged}
    assert set(by_point) == {("new", 1000), ("new", 2000), ("floor", 1000)}  # failed runs left out
    new_1000 = by_point[("new", 1000)]
    assert (new_1000["p99_ms"], new_1000["p50_ms"], new_1000["cpu_s"]) == (2.0, 0.2, 1.0)
    assert (new_1000["passes"], new_1000["sent"], new_1000["steal"]) == (3, 3000, 0.02)
    assert by_point[("new", 2000)]["p99_ms"] == 6.0 and by_point[("floor", 1000)]["passes"] == 1
    assert load_curve.first_over([p for p in merged if p["variant"] == "new"], 5.0) == 2000
