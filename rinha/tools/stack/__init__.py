"""`rinha up`: two emulated processors, N service instances and Nginx as one foreground stack.

CLI::

    rinha up [--port 9999] [--host 127.0.0.1] [--instances 2]
             [--default-port 8001] [--fallback-port 8002]
             [--default-url URL --fallback-url URL] [--run-dir DIR] [--data-dir DIR]
             [--logs DIR] [--no-restart]

Starts the processors (unless both URLs are given), the instances (`rinha serve` with
RINHA_INSTANCE_ID 0 … N-1, clients on `<run-dir>/api1.sock` …, peers on
`<data-dir>/internal-0.sock` …) and Nginx (config rendered from `nginx/nginx.conf.template`),
waits until each answers, prints one line per instance (name, PID, both sockets), the data dir
and a last line with the URL ("ready"), then runs until SIGINT/SIGTERM (exit 0).

Supervision: an instance that exits while the stack runs, for whatever reason, is started again
with the same command and environment after a back-off (0.5 s, doubling up to 10 s, back to
0.5 s once it had stayed up 30 s); it replays its journal from the data dir and resumes the
payments it had accepted, while Nginx sends everything to the others. Nginx or an emulated
processor dying stops the stack (exit 1, naming it). On the way out every child gets SIGTERM,
then SIGKILL after a timeout, and the sockets are removed.

The data dir (RINHA_DATA_DIR of every instance: their journals, the shared id table, the
internal sockets) is `--data-dir`, else `<run-dir>/data` with --run-dir, else
`/tmp/rinha-up-<port>`, which is kept after stop so that the next `rinha up` on that port resumes
what was left unsettled. Run and data dirs must not be reachable by other users (a new one is
made 0700); the client sockets are 0660, Nginx runs as root for a root run, else as the user.

Python API (tests, benchmarks)::

    with Stack(StackConfig(port=0, default_port=0, fallback_port=0)) as info:
        info.url                    # "http://127.0.0.1:PORT" (Nginx)
        info.default_url, info.fallback_url
        info.sockets, info.internal_sockets, info.data_dir
        info.nginx_pids             # master first, then workers
        info.instance_pids          # one per instance, in order, as started
        info.service_pids           # nginx + instances at start: what the benchmark confines
    # or: stack = Stack(cfg); info = stack.start(); ...; stack.stop()
    stack.instance_pids()           # the current ones (an instance gets a new PID on restart)
    stack.restarts                  # instance restarts so far
    stack.dead_child()              # a child whose death stops the stack, or None

The Python API's data dir defaults to `<run-dir>/data` (a temp run dir, removed on stop, when
none is given). Port 0 means "pick a free port" (for Nginx and the emulators). Importing this
module is cheap: subprocess and friends are loaded by `Stack.start`.

Layout: config.py (StackConfig, StackInfo, StackError), nginx.py (the binary, the template, the
rendered config), processes.py (one child: started, awaited, stopped), supervise.py (`Stack`:
the start order, the restarts, the stop order); the CLI is here.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

from rinha.tools.stack.config import SHM, StackConfig, StackError, StackInfo
from rinha.tools.stack.nginx import NginxNotFound, find_nginx, render_nginx_conf, template_path
from rinha.tools.stack.processes import describe_exit, free_port
from rinha.tools.stack.supervise import Backoff, Stack

__all__ = [
    "Backoff",
    "NginxNotFound",
    "Stack",
    "StackConfig",
    "StackError",
    "StackInfo",
    "add_parser",
    "find_nginx",
    "free_port",
    "render_nginx_conf",
    "run",
    "template_path",
]


# -- CLI ---------------------------------------------------------------------------------


def add_parser(subparsers: Any) -> None:
    """Register the `up` subcommand."""
    parser = subparsers.add_parser(
        "up",
        help="run processors + instances + Nginx locally in the foreground",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    d = StackConfig()
    parser.add_argument(
        "--port", type=int, default=d.port, help="Nginx port (default: %(default)s)"
    )
    parser.add_argument(
        "--host", default=d.host, help="Nginx listen address (default: %(default)s)"
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=d.instances,
        help="service instances (default: %(default)s)",
    )
    parser.add_argument(
        "--default-port",
        type=int,
        default=d.default_port,
        help="port of the emulated default processor (default: %(default)s)",
    )
    parser.add_argument(
        "--fallback-port",
        type=int,
        default=d.fallback_port,
        help="port of the emulated fallback processor (default: %(default)s)",
    )
    parser.add_argument("--default-url", help="use this default processor instead of an emulator")
    parser.add_argument("--fallback-url", help="use this fallback processor instead of an emulator")
    parser.add_argument(
        "--run-dir", help="client sockets and Nginx files go here (default: a temp dir)"
    )
    parser.add_argument(
        "--data-dir",
        help="the instances' journals, shared id table and internal sockets, kept across"
        " restarts (default: RUN_DIR/data with --run-dir, else /tmp/rinha-up-PORT, kept after"
        " stop: the next run on that port resumes what was left unsettled)",
    )
    parser.add_argument("--logs", metavar="DIR", help="write each child's output to DIR/NAME.log")
    parser.add_argument(
        "--no-restart",
        action="store_true",
        help="an instance that exits stops the stack instead of being restarted",
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=d.ready_timeout,
        help="seconds to wait for everything to answer (default: %(default)s)",
    )
    parser.set_defaults(handler=run)


class _Stop(Exception):
    pass


def _default_ids_path(data_dir: str | None, run_dir: str | None, port: int) -> str | None:
    """The CLI's id table: beside a data dir given by the user (""), in a temp dir on tmpfs
    for port 0 (None), else on tmpfs per port, kept like /tmp/rinha-up-<port>."""
    if data_dir or run_dir:
        return ""
    if not port:
        return None
    return os.path.join(SHM, f"rinha-up-{port}", "ids.bin") if os.path.isdir(SHM) else ""


def _default_data_dir(run_dir: str | None, port: int) -> str | None:
    """--data-dir's default: in the run dir, else one per port that outlives the stack (None,
    the temp run dir's, for port 0: a random port would never be seen again)."""
    if run_dir:
        return os.path.join(run_dir, "data")
    return f"/tmp/rinha-up-{port}" if port else None


def run(args: argparse.Namespace) -> int:
    """Run the stack until a signal (exit 0) or the death of Nginx or a processor (exit 1);
    instances that exit are restarted (unless --no-restart)."""
    config = StackConfig(
        port=args.port,
        host=args.host,
        instances=args.instances,
        default_port=args.default_port,
        fallback_port=args.fallback_port,
        default_url=args.default_url,
        fallback_url=args.fallback_url,
        run_dir=args.run_dir,
        data_dir=args.data_dir or _default_data_dir(args.run_dir, args.port),
        ids_path=_default_ids_path(args.data_dir, args.run_dir, args.port),
        log_dir=args.logs,
        ready_timeout=args.ready_timeout,
        restart_instances=not args.no_restart,
    )
    stack = Stack(config)
    stopping: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        if stopping:  # already on the way out: let the cleanup finish
            return
        stopping.append(signal.Signals(signum).name)
        raise _Stop

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    code = 0
    try:
        try:
            info = stack.start()
        except NginxNotFound as exc:
            print(f"rinha up: {exc}", file=sys.stderr)
            return 2
        except StackError as exc:
            print(f"rinha up: {exc}", file=sys.stderr)
            return 1
        for name, pid, sock, internal in zip(
            (f"api{i + 1}" for i in range(len(info.sockets))),
            info.instance_pids,
            info.sockets,
            info.internal_sockets,
            strict=True,
        ):
            print(f"rinha up: {name} pid {pid}, clients unix:{sock}, peers unix:{internal}")
        print(f"rinha up: data dir {info.data_dir} (journals and the id table)")
        print(
            f"rinha up: {info.url} ready ({len(info.instance_pids)} instances;"
            f" default {info.default_url}, fallback {info.fallback_url};"
            f" run dir {info.run_dir}; Ctrl-C stops)",
            flush=True,
        )
        while True:
            dead = stack.dead_child()
            if dead is not None:
                name, kind, pid, exit_code = dead
                print(
                    f"rinha up: {name} ({kind}, pid {pid}) exited with"
                    f" {describe_exit(exit_code)}; stopping the stack",
                    file=sys.stderr,
                    flush=True,
                )
                code = 1
                break
            time.sleep(0.1)
    except _Stop:
        pass
    finally:
        # a second Ctrl-C must not interrupt the cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stopping:
        print(f"rinha up: {stopping[0]}: stack stopped", file=sys.stderr, flush=True)
    return code
