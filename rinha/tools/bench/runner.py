"""`rinha bench`: start (or find) the stack, confine it, run k6, score the run, write the report.

The result dict and its files are built in result.py, the text report in report.py."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rinha.tools import procfs
from rinha.tools.bench import k6, schedules
from rinha.tools.bench.cgroup import BenchCgroup, CgroupError, Usage
from rinha.tools.bench.machine import steal_per_bucket, steal_share
from rinha.tools.bench.metrics import MetricsSampler
from rinha.tools.bench.report import report_text
from rinha.tools.bench.result import build_result, save

PROGRESS_EVERY_S = 10.0


def _say(msg: str) -> None:
    print(f"rinha bench: {msg}", file=sys.stderr, flush=True)


def _proc_usage(pid: int) -> tuple[float, int] | None:
    """(CPU seconds, peak RSS bytes) of a live process."""
    cpu, status = procfs.cpu_seconds(pid), procfs.status_bytes(pid)
    if cpu is None or status is None:
        return None
    return cpu, status.get("VmHWM", 0)


FLOOR_MODULE = "rinha.tools.bench.noop"


def _is_instance(pid: int) -> bool:
    argv = procfs.cmdline(pid) or []
    return "serve" in argv and any("rinha" in a for a in argv)


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(x for x in v.split(",") if x)
    return out


class _Run:
    """Everything one benchmark run holds, so that cleanup can undo whatever was done."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stack: Any = None
        self.cgroup: BenchCgroup | None = None
        self.sampler: MetricsSampler | None = None
        self.usage = Usage()
        self.notes: list[str] = []
        self.pids: list[int] = []
        self.peak_rss = 0
        self.profiler: subprocess.Popen[bytes] | None = None
        self.profile_path: Path | None = None
        self._spy_log: Any = None
        self.k6_usage: tuple[float, int] | None = None  # (CPU seconds, peak RSS bytes)
        self.cpu_at_start: dict[int, float] = {}  # backend pid -> CPU seconds when k6 started
        # result.json's "confinement": the hierarchy used ("v1", "v2", "none") and its limits
        self.confinement: dict[str, Any] = {"cgroup": "none", "cpus": None, "memory_bytes": None}

    def mark_cpu(self) -> None:
        self.cpu_at_start = {pid: u[0] for pid in self.pids if (u := _proc_usage(pid))}

    def cpu_split(self) -> str | None:
        """CPU seconds each backend process used since mark_cpu(): which hop costs what."""
        nginx = 0.0
        instances: list[float] = []
        for pid, start in self.cpu_at_start.items():
            usage = _proc_usage(pid)
            if usage is None:
                return None  # one is gone: a partial split would mislead
            if _is_instance(pid):
                instances.append(usage[0] - start)
            else:
                nginx += usage[0] - start
        if not instances:
            return None
        return (
            f"backend CPU by process: nginx {nginx:.1f} s, instances "
            + " + ".join(f"{c:.1f}" for c in instances)
            + " s"
        )

    # -- the backend ---------------------------------------------------------------------

    def make_cgroup(self) -> None:
        a = self.args
        if a.no_cgroup:
            self.notes.append("no cgroup (--no-cgroup): the backend ran unconfined")
            return
        if a.url and not a.pids:
            self.notes.append("no cgroup: backend PIDs unknown (give --pids with --url)")
            return
        cg = BenchCgroup(cpus=a.cpus, memory_bytes=int(a.memory_mb * 1024 * 1024))
        try:
            cg.create()
        except (CgroupError, OSError) as exc:
            self.notes.append(f"no cgroup: {exc}")
            _say(f"warning: {exc}; running unconfined")
            return
        self.cgroup = cg
        self.confinement = {"cgroup": cg.version, "cpus": cg.cpus, "memory_bytes": cg.memory_bytes}

    def start_stack(self, out: Path) -> tuple[str, str, str, list[str], list[int]]:
        a = self.args
        if a.url:
            if a.floor:
                raise SystemExit("rinha bench: --floor starts its own stack (no --url)")
            if not (a.default_url and a.fallback_url):
                raise SystemExit("rinha bench: --url needs --default-url and --fallback-url")
            return (
                a.url,
                a.default_url,
                a.fallback_url,
                _split(a.metrics),
                [int(p) for p in _split(a.pids)],
            )
        from rinha.tools.stack import Stack, StackConfig, find_nginx

        config = StackConfig(
            port=a.port,
            instances=a.instances,
            default_port=a.default_port,
            fallback_port=a.fallback_port,
            log_dir=str(out / "logs"),
        )
        instance = "rinha serve"
        if a.floor:
            config.instance_args = ("-P", "-m", FLOOR_MODULE, "serve")
            instance = f"{FLOOR_MODULE} serve"
            self.notes.append(
                f"floor run: each instance was a no-op upstream ({FLOOR_MODULE}); only the"
                " latency and the CPU mean anything"
            )
        if self.cgroup is not None:
            # born inside the group, so that all their memory is charged to it
            config.python = str(
                self.cgroup.join_wrapper(
                    out / "python-in-cgroup.sh", config.python, only_if=instance
                )
            )
            config.nginx = str(self.cgroup.join_wrapper(out / "nginx-in-cgroup.sh", find_nginx()))
        _say(
            f"starting the stack (nginx on :{a.port}, processors on :{a.default_port}"
            f"/:{a.fallback_port}); logs in {out / 'logs'}"
        )
        self.stack = Stack(config)
        info = self.stack.start()
        metrics = [f"unix:{s}" for s in info.sockets]
        return info.url, info.default_url, info.fallback_url, metrics, list(info.service_pids)

    def confine(self, pids: list[int]) -> None:
        cg = self.cgroup
        if cg is None:
            return
        self.pids = procfs.descendants(pids)
        before = cg.members()
        moved = cg.add(pids)
        late = [p for p in moved if p not in before]
        if late:
            self.notes.append(
                f"PIDs {', '.join(map(str, late))} joined the cgroup after start: memory they"
                " had before is not charged to it (peak RSS is reported as well)"
            )
        a = self.args
        _say(
            f"cgroup {cg.version} {cg.name}: {a.cpus:g} CPU, {a.memory_mb:g} MB;"
            f" {len(moved)} processes ({', '.join(map(str, moved))})"
        )

    def cleanup(self) -> None:
        self.stop_profiler()
        if self.sampler is not None:
            self.sampler.stop()
        if self.stack is not None:
            self.stack.stop()
            self.stack = None
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None

    # -- profiling -----------------------------------------------------------------------

    def start_profiler(self, out: Path) -> None:
        """py-spy on the first `rinha serve` among the backend PIDs, until stop_profiler()."""
        import shutil
        import sysconfig

        spy = shutil.which("py-spy") or os.path.join(sysconfig.get_path("scripts"), "py-spy")
        if not os.access(spy, os.X_OK):
            self.notes.append("no profile: py-spy not found (pip install '.[dev]')")
            return
        instances = [p for p in self.pids if _is_instance(p)]
        if not instances:
            self.notes.append("no profile: no `rinha serve` process among the backend PIDs")
            return
        pid = instances[0]
        self.profile_path = out / f"profile-{pid}.svg"
        cmd = [
            spy,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "200",
            "--nonblocking",
            "--format",
            "flamegraph",
            "--output",
            str(self.profile_path),
        ]
        self._spy_log = open(out / "py-spy.log", "wb")  # noqa: SIM115 - closed in stop_profiler
        self.profiler = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._spy_log)
        _say(f"py-spy recording pid {pid} into {self.profile_path}")

    def stop_profiler(self) -> None:
        if self.profiler is None:
            return
        if self.profiler.poll() is None:
            self.profiler.send_signal(signal.SIGINT)
            try:
                self.profiler.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.profiler.kill()
                self.profiler.wait()
        self.profiler = None
        if self._spy_log is not None:
            self._spy_log.close()
            self._spy_log = None
        if self.profile_path is not None and self.profile_path.exists():
            self.notes.append(f"flamegraph {self.profile_path}")

    # -- k6 ------------------------------------------------------------------------------

    def run_k6(self, cmd: list[str], out: Path, expected_s: float) -> int:
        with open(out / "k6.out", "wb") as k6out:
            # its own session: a Ctrl-C here reaches k6 once, from us (a second one would make
            # k6 abort without teardown and summary)
            proc = subprocess.Popen(
                cmd, stdout=k6out, stderr=subprocess.STDOUT, start_new_session=True
            )
            started = time.monotonic()
            next_report = started + PROGRESS_EVERY_S
            interrupted = False
            try:
                while proc.poll() is None:
                    try:
                        proc.wait(timeout=0.5)
                    except subprocess.TimeoutExpired:
                        pass
                    if self.pids:
                        self.peak_rss = max(self.peak_rss, procfs.total_rss_bytes(self.pids))
                    if self.cgroup is not None:
                        self.cgroup.poll()
                    self.k6_usage = _proc_usage(proc.pid) or self.k6_usage
                    if self.stack is not None and proc.poll() is None:
                        dead = self.stack.dead_child()
                        if dead is not None and not interrupted:
                            _say(
                                f"{dead[0]} ({dead[1]}, pid {dead[2]}) died with code {dead[3]};"
                                " stopping k6"
                            )
                            self.notes.append(f"{dead[0]} died during the run (code {dead[3]})")
                            proc.send_signal(signal.SIGINT)
                            interrupted = True
                    if time.monotonic() >= next_report:
                        next_report += PROGRESS_EVERY_S
                        self.progress(time.monotonic() - started, expected_s)
            except KeyboardInterrupt:
                _say("interrupted: stopping k6 (teardown and summary still run)")
                self.notes.append("interrupted by the user")
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait()
                except KeyboardInterrupt:
                    proc.kill()
                    proc.wait()
                    raise
            return proc.returncode

    def progress(self, elapsed: float, expected: float) -> None:
        line = f"{elapsed:4.0f}/{expected:.0f} s"
        if self.sampler is not None:
            latest = self.sampler.latest()
            if latest:

                def total(key: str) -> float:
                    return sum(v.get(key, 0.0) for v in latest.values())

                default = total('rinha_processed_total{processor="default"}')
                fallback = total('rinha_processed_total{processor="fallback"}')
                line += (
                    f"  accepted {total('rinha_accepted_total'):.0f}"
                    f"  default {default:.0f}  fallback {fallback:.0f}"
                    f"  backlog {total('rinha_backlog'):.0f}"
                    f"  in flight {total('rinha_in_flight'):.0f}"
                )
        if self.cgroup is not None:
            u = self.cgroup.usage()
            if u.cpu_seconds is not None:
                line += f"  backend CPU {u.cpu_seconds:.1f} s"
        _say(line)


def _config(args: argparse.Namespace, urls: tuple[str, str, str], out: Path) -> k6.LoadConfig:
    rate_mode = args.rate is not None
    duration = args.duration if rate_mode else args.ramp
    name = args.schedule or ("healthy" if rate_mode else "published")
    schedule = schedules.get(name, duration, seed=args.seed)
    return k6.LoadConfig(
        url=urls[0],
        default_url=urls[1],
        fallback_url=urls[2],
        schedule=schedule,
        summary_path=str(out / "summary.json"),
        mode="rate" if rate_mode else "ramp",
        vus=args.vus,
        rate=args.rate or 0,
        duration_s=duration,
        token=args.token,
    )


def run(args: argparse.Namespace) -> int:
    if args.rate is not None and args.duration is None:
        raise SystemExit("rinha bench: --rate needs --duration")
    k6_bin = args.k6 or k6.find_k6()
    out = Path(args.out or os.path.join("bench", "results", time.strftime("%Y%m%d-%H%M%S")))
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    run_ = _Run(args)
    try:
        run_.make_cgroup()
        try:
            url, default_url, fallback_url, metrics, pids = run_.start_stack(out)
        except Exception as exc:  # StackError, NginxNotFound, OSError
            _say(f"the stack did not start: {exc}")
            return 1
        load = _config(args, (url, default_url, fallback_url), out)
        config = load.to_json()
        (out / "config.json").write_text(json.dumps(config, indent=1))
        run_.confine(pids)
        if not run_.pids and pids:
            run_.pids = procfs.descendants(pids)
        run_.sampler = MetricsSampler(metrics, interval=args.sample_interval).start()
        if args.profile:
            run_.start_profiler(out)
        if run_.cgroup is not None:
            run_.cgroup.reset_cpu()
        run_.mark_cpu()
        machine_at_start = procfs.machine_cpu_times()
        _say(
            f"k6 against {url}: schedule {load.schedule.name}, "
            + (
                f"{load.rate} req/s for {load.duration_s:g} s"
                if load.mode == "rate"
                else f"1 → {load.vus} VUs over {load.duration_s:g} s"
            )
            + f"; results in {out}"
        )
        code = run_.run_k6(
            k6.command(k6_bin, str(out / "config.json"), str(out / "k6.log")), out, load.total_s + 5
        )
        steal = steal_share(machine_at_start, procfs.machine_cpu_times())
        run_.stop_profiler()
        if (split := run_.cpu_split()) is not None:
            run_.notes.append(split)
        if run_.k6_usage is not None:
            cpu, hwm = run_.k6_usage
            run_.notes.append(f"k6 used {cpu:.1f} CPU-s and {hwm / 2**20:.0f} MB (same machine)")
        if run_.cgroup is not None:
            run_.usage = run_.cgroup.usage()
        if run_.pids:
            run_.usage.peak_rss_bytes = run_.peak_rss
        run_.sampler.stop()
    finally:
        run_.cleanup()
    if code not in (0, 99):  # 99: a threshold crossed, which ours never do
        run_.notes.append(f"k6 exited with {code} (see k6.out)")
    summary_path = out / "summary.json"
    if not summary_path.exists():
        _say(f"k6 wrote no summary (exit {code}); see {out / 'k6.out'}")
        return 1
    log_path = out / "k6.log"
    log = k6.parse_log(log_path.read_text().splitlines()) if log_path.exists() else {}
    payments = log.pop("payments", [])
    measured = k6.parse_summary(json.loads(summary_path.read_text()), config, payments)
    steal_series = steal_per_bucket(
        run_.sampler.machine if run_.sampler else [],
        (measured.t0_ms or 0) / 1000,
        measured.bucket_s,
        len(measured.accepted_per_bucket),
    )
    result = build_result(
        config,
        measured,
        log,
        run_.usage,
        run_.notes,
        load.schedule,
        steal,
        steal_series,
        confinement=run_.confinement,
    )
    samples = run_.sampler.samples if run_.sampler else []
    save(out, result, samples)
    text = report_text(result)
    print(text, flush=True)
    if not args.no_plot:
        try:
            from rinha.tools.bench.plotting import plot

            png = plot(result, samples, out / "report.png")
            print(f"report         {png}")
        except ImportError as exc:
            _say(f"no plot ({exc}): pip install '.[bench]'")
    print(f"results        {out}")
    if measured.unlogged:
        _say(
            f"{measured.unlogged} payments are missing from k6's log: the counts, lag and "
            "score above are not valid"
        )
        return 1
    return 0 if code in (0, 99) else 1
