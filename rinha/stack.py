"""`rinha up`: two emulated processors, N service instances and Nginx as one foreground stack.

CLI::

    rinha up [--port 9999] [--host 127.0.0.1] [--instances 2]
             [--default-port 8001] [--fallback-port 8002]
             [--default-url URL --fallback-url URL] [--run-dir DIR] [--logs DIR]

Starts the processors (unless both URLs are given), the instances (`rinha serve` on unix
sockets `<run-dir>/api1.sock` … with RINHA_INSTANCE_ID 0 … N-1) and Nginx (config rendered
from `nginx/nginx.conf.template`), waits until each answers, prints one line with the URLs,
then runs until SIGINT/SIGTERM (exit 0) or until a child dies (exit 1, naming it). Either
way every child gets SIGTERM, then SIGKILL after a timeout, and the sockets are removed.

Python API (tests, benchmarks)::

    with Stack(StackConfig(port=0, default_port=0, fallback_port=0)) as info:
        info.url                    # "http://127.0.0.1:PORT" (Nginx)
        info.default_url, info.fallback_url
        info.nginx_pids             # master first, then workers
        info.instance_pids          # one per instance, in order
        info.service_pids           # nginx + instances: what the benchmark confines
    # or: stack = Stack(cfg); info = stack.start(); ...; stack.check(); stack.stop()

Port 0 means "pick a free port" (for Nginx and the emulators). Importing this module is cheap:
subprocess and friends are loaded by `Stack.start`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess

__all__ = [
    "NginxNotFound",
    "Stack",
    "StackConfig",
    "StackError",
    "StackInfo",
    "add_parser",
    "find_nginx",
    "render_nginx_conf",
    "run",
]

TEMPLATE_NAME = "nginx.conf.template"
NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


class StackError(RuntimeError):
    """The stack could not start, or one of its children died."""


class NginxNotFound(StackError):
    """No nginx binary on this machine."""


@dataclass
class StackConfig:
    """What `rinha up` starts. Port 0 = a free port chosen at start."""

    port: int = 9999  # Nginx
    host: str = "127.0.0.1"  # Nginx listen address
    instances: int = 2
    default_port: int = 8001  # emulators (when no URL is given)
    fallback_port: int = 8002
    default_fee: str = "0.05"
    fallback_fee: str = "0.15"
    default_url: str | None = None  # existing processors: no emulator is started
    fallback_url: str | None = None
    run_dir: str | None = None  # None: a temp dir, removed on stop
    log_dir: str | None = None  # None: children write to our stdout/stderr
    python: str = sys.executable
    nginx: str | None = None  # None: find_nginx()
    env: dict[str, str] = field(default_factory=dict)  # extra env for the instances
    # what each instance runs, after the python binary (`rinha bench --floor`: a no-op)
    instance_args: tuple[str, ...] = ("-m", "rinha", "serve")
    ready_timeout: float = 30.0  # s, for the whole start
    stop_timeout: float = 5.0  # s per stage before SIGKILL


@dataclass(frozen=True)
class StackInfo:
    """Where the running stack is, and who it is."""

    url: str
    default_url: str
    fallback_url: str
    run_dir: str
    sockets: tuple[str, ...]
    nginx_pids: tuple[int, ...]  # master first
    instance_pids: tuple[int, ...]
    processor_pids: tuple[int, ...]  # empty when external processors are used

    @property
    def nginx_pid(self) -> int:
        return self.nginx_pids[0]

    @property
    def service_pids(self) -> tuple[int, ...]:
        return self.nginx_pids + self.instance_pids


class _Child:
    __slots__ = ("name", "kind", "proc", "log")

    def __init__(self, name: str, kind: str, proc: subprocess.Popen[bytes], log: Any) -> None:
        self.name = name  # "default", "api1", "nginx", …
        self.kind = kind  # "processor" | "instance" | "nginx"
        self.proc = proc
        self.log = log  # open file when logging to files, else None


def find_nginx() -> str:
    """Path of the nginx binary (PATH, then the usual sbin dirs); NginxNotFound if none."""
    import shutil

    found = shutil.which("nginx")
    if found:
        return found
    for path in NGINX_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    raise NginxNotFound(
        "nginx not found on PATH nor in /usr/sbin: install it "
        "(Debian/Ubuntu: `apt-get install nginx`)"
    )


def template_path() -> str:
    """The Nginx template: $RINHA_NGINX_TEMPLATE, else nginx/ of the source tree (checkout or
    editable install), else <prefix>/share/rinha/nginx/ (a wheel's data files)."""
    override = os.environ.get("RINHA_NGINX_TEMPLATE")
    if override:
        return override
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = (
        os.path.join(os.path.dirname(here), "nginx", TEMPLATE_NAME),
        os.path.join(sys.prefix, "share", "rinha", "nginx", TEMPLATE_NAME),
    )
    for candidate in candidates:
        if os.path.exists(candidate):
            return candidate
    raise StackError(
        f"{TEMPLATE_NAME} not found (looked in {', '.join(candidates)}); "
        "set RINHA_NGINX_TEMPLATE to its path"
    )


def render_nginx_conf(
    upstreams: list[str],
    listen: str,
    pid: str,
    temp: str,
    user: str | None = None,
    template: str | None = None,
) -> str:
    """The Nginx config for these upstreams (`unix:/p.sock` or `host:port`)."""
    if not upstreams:
        raise ValueError("at least one upstream")
    with open(template or template_path(), encoding="utf-8") as f:
        text = f.read()
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):  # comments stay as written (they name the placeholders)
            lines.append(line)
            continue
        if stripped == "${RINHA_NGINX_USER}":
            if user:
                lines.append(f"user {user};")
            continue
        if stripped == "${RINHA_UPSTREAMS}":
            lines.extend(f"        server {u};" for u in upstreams)
            continue
        line = line.replace("${RINHA_LISTEN}", listen)
        line = line.replace("${RINHA_PID}", pid).replace("${RINHA_TEMP}", temp)
        lines.append(line)
    left = [ln.strip() for ln in lines if "${RINHA_" in ln and not ln.lstrip().startswith("#")]
    if left:
        raise StackError(f"unrendered placeholders in the Nginx template: {left}")
    return "\n".join(lines) + "\n"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on host (the usual bind-to-0 race applies)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_in_use(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _connects(address: str) -> bool:
    """True once something accepts connections at `unix:/path` or `host:port`."""
    import socket

    try:
        if address.startswith("unix:"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                s.connect(address[5:])
        else:
            host, _, port = address.rpartition(":")
            with socket.create_connection((host, int(port)), timeout=0.5):
                pass
    except OSError:
        return False
    return True


def _children_of(pid: int) -> list[int]:
    """PIDs whose parent is pid (Nginx workers of a master)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            out.append(int(entry))
    return sorted(out)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Stack:
    """Processors + instances + Nginx as child processes; `start()` / `stop()` or `with`."""

    def __init__(self, config: StackConfig | None = None, **overrides: Any) -> None:
        self.config = config or StackConfig()
        for key, value in overrides.items():
            if not hasattr(self.config, key):
                raise TypeError(f"unknown StackConfig field {key!r}")
            setattr(self.config, key, value)
        self.children: list[_Child] = []
        self.info: StackInfo | None = None
        self._own_run_dir = False
        self._run_dir = ""
        self._created: list[str] = []  # sockets and pid file of ours, removed on stop

    # -- start ---------------------------------------------------------------------------

    def start(self) -> StackInfo:
        """Start everything and wait until it answers; StackError (all stopped) on failure."""
        if self.info is not None:
            raise StackError("stack already started")
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> StackInfo:
        import tempfile

        cfg = self.config
        if cfg.instances < 1:
            raise StackError("--instances must be at least 1")
        if (cfg.default_url is None) != (cfg.fallback_url is None):
            raise StackError("give both --default-url and --fallback-url, or neither")
        nginx = cfg.nginx or find_nginx()
        deadline = time.monotonic() + cfg.ready_timeout

        if cfg.run_dir:
            self._run_dir = os.path.abspath(cfg.run_dir)
            os.makedirs(self._run_dir, exist_ok=True)
        else:
            self._run_dir = tempfile.mkdtemp(prefix="rinha-up-")
            self._own_run_dir = True
        run_dir = self._run_dir

        port = cfg.port or free_port(cfg.host)
        if _port_in_use(cfg.host, port):
            raise StackError(f"port {cfg.host}:{port} is already in use")

        # processors
        processor_pids: list[int] = []
        if cfg.default_url is not None and cfg.fallback_url is not None:
            default_url, fallback_url = cfg.default_url, cfg.fallback_url
        else:
            urls, started = [], []
            for name, pport, fee in (
                ("default", cfg.default_port, cfg.default_fee),
                ("fallback", cfg.fallback_port, cfg.fallback_fee),
            ):
                pport = pport or free_port()
                if _port_in_use("127.0.0.1", pport):
                    raise StackError(f"port 127.0.0.1:{pport} for the {name} processor is in use")
                cmd = [cfg.python, "-m", "rinha", "processor", "--port", str(pport), "--fee", fee]
                child = self._spawn(name, "processor", cmd, dict(os.environ))
                processor_pids.append(child.proc.pid)
                urls.append(f"http://127.0.0.1:{pport}")
                started.append((child, f"127.0.0.1:{pport}"))
            for child, address in started:
                self._wait_ready(child, address, deadline)
            default_url, fallback_url = urls

        # instances
        sockets = [os.path.join(run_dir, f"api{i + 1}.sock") for i in range(cfg.instances)]
        for path in sockets:
            if os.path.exists(path):
                if _connects(f"unix:{path}"):
                    raise StackError(f"{path} is in use by another process")
                os.unlink(path)
        instance_children = []
        for i, path in enumerate(sockets):
            env = dict(os.environ)
            env.update(cfg.env)
            env.update(
                RINHA_BIND=f"unix:{path}",
                RINHA_PEERS=",".join(f"unix:{p}" for p in sockets if p != path),
                RINHA_INSTANCE_ID=str(i),
                RINHA_DEFAULT_URL=default_url,
                RINHA_FALLBACK_URL=fallback_url,
            )
            cmd = [cfg.python, *cfg.instance_args]
            self._created.append(path)
            instance_children.append(self._spawn(f"api{i + 1}", "instance", cmd, env))
        for child, path in zip(instance_children, sockets, strict=True):
            self._wait_ready(child, f"unix:{path}", deadline)

        # nginx
        prefix = os.path.join(run_dir, "nginx")
        os.makedirs(os.path.join(prefix, "temp"), exist_ok=True)
        conf_path = os.path.join(prefix, "nginx.conf")
        listen = f"{cfg.host}:{port}"
        conf = render_nginx_conf(
            [f"unix:{p}" for p in sockets],
            listen=listen,
            pid=os.path.join(prefix, "nginx.pid"),
            temp=os.path.join(prefix, "temp"),
            # root's workers would run as nobody, which cannot reach a private run dir
            user="root" if os.geteuid() == 0 else None,
        )
        with open(conf_path, "w", encoding="utf-8") as f:
            f.write(conf)
        cmd = [nginx, "-e", "stderr", "-p", prefix, "-c", conf_path]
        self._created.append(os.path.join(prefix, "nginx.pid"))
        nginx_child = self._spawn("nginx", "nginx", cmd, dict(os.environ))
        self._wait_ready(nginx_child, listen, deadline)
        url = f"http://{cfg.host}:{port}"
        self._wait_http(url + "/payments-summary", deadline)

        self.info = StackInfo(
            url=url,
            default_url=default_url,
            fallback_url=fallback_url,
            run_dir=run_dir,
            sockets=tuple(sockets),
            nginx_pids=(nginx_child.proc.pid, *_children_of(nginx_child.proc.pid)),
            instance_pids=tuple(c.proc.pid for c in instance_children),
            processor_pids=tuple(processor_pids),
        )
        return self.info

    def _spawn(self, name: str, kind: str, cmd: list[str], env: dict[str, str]) -> _Child:
        import subprocess
        import threading

        log = None
        if self.config.log_dir:
            os.makedirs(self.config.log_dir, exist_ok=True)
            log = open(os.path.join(self.config.log_dir, f"{name}.log"), "ab")
        preexec = None
        if threading.current_thread() is threading.main_thread():
            # PDEATHSIG is tied to the forking *thread*: only safe from the main thread
            preexec = _die_with_parent
        # children run the very rinha that runs us, installed or not
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT if log else None,
            # own process group: a terminal's Ctrl-C reaches only us, and we stop the
            # children in order; killpg also reaches whatever a child forked (Nginx workers)
            start_new_session=True,
            preexec_fn=preexec,
        )
        child = _Child(name, kind, proc, log)
        self.children.append(child)
        return child

    def _wait_ready(self, child: _Child, address: str, deadline: float) -> None:
        while True:
            code = child.proc.poll()
            if code is not None:
                raise StackError(
                    f"{child.name} ({child.kind}, pid {child.proc.pid}) exited during start-up"
                    f" with {_describe_exit(code)}"
                )
            if _connects(address):
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"{child.name} ({child.kind}, pid {child.proc.pid}) not accepting"
                    f" connections at {address} after {self.config.ready_timeout:g}s"
                )
            time.sleep(0.05)

    def _wait_http(self, url: str, deadline: float) -> None:
        """GET url through Nginx until it answers 200 (the whole path works)."""
        import urllib.error
        import urllib.request

        last = ""
        while True:
            self._raise_if_dead()
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
                    last = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except OSError as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise StackError(f"GET {url} did not answer 200 in time (last: {last})")
            time.sleep(0.1)

    # -- running -------------------------------------------------------------------------

    def dead_child(self) -> tuple[str, str, int, int] | None:
        """(name, kind, pid, exit code) of the first child that exited, or None."""
        for child in self.children:
            code = child.proc.poll()
            if code is not None:
                return child.name, child.kind, child.proc.pid, code
        return None

    def _raise_if_dead(self) -> None:
        dead = self.dead_child()
        if dead is not None:
            name, kind, pid, code = dead
            raise StackError(f"{name} ({kind}, pid {pid}) exited with {_describe_exit(code)}")

    def check(self) -> None:
        """StackError if any child has exited."""
        self._raise_if_dead()

    # -- stop ----------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM Nginx, then the instances, then the processors (SIGKILL after
        stop_timeout each); remove the sockets (and the run dir if it was ours)."""
        for kind in ("nginx", "instance", "processor"):
            self._stop_group([c for c in self.children if c.kind == kind])
        for child in self.children:
            if child.log is not None:
                child.log.close()
        self.children.clear()
        self.info = None
        for path in self._created:
            if os.path.exists(path):
                os.unlink(path)
        self._created.clear()
        if self._own_run_dir:
            import shutil

            shutil.rmtree(self._run_dir, ignore_errors=True)
        self._own_run_dir = False
        self._run_dir = ""

    def _stop_group(self, children: list[_Child]) -> None:
        import subprocess

        for child in children:
            if child.proc.poll() is None:
                _killpg(child.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.stop_timeout
        for child in children:
            try:
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(
                    f"rinha up: {child.name} (pid {child.proc.pid}) ignored SIGTERM for"
                    f" {self.config.stop_timeout:g}s: SIGKILL",
                    file=sys.stderr,
                )
                _killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait()
            # leftovers of the group (e.g. workers of a crashed Nginx master)
            _killpg(child.proc.pid, signal.SIGKILL)

    # -- context managers ----------------------------------------------------------------

    def __enter__(self) -> StackInfo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> StackInfo:
        import asyncio

        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        import asyncio

        await asyncio.to_thread(self.stop)


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if `rinha up` dies without cleaning up."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    except Exception:  # best effort: the stack works without it
        pass


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
    parser.add_argument("--run-dir", help="sockets and Nginx files go here (default: a temp dir)")
    parser.add_argument("--logs", metavar="DIR", help="write each child's output to DIR/NAME.log")
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=d.ready_timeout,
        help="seconds to wait for everything to answer (default: %(default)s)",
    )
    parser.set_defaults(handler=run)


class _Stop(Exception):
    pass


def run(args: argparse.Namespace) -> int:
    """Run the stack until a signal (exit 0) or a child's death (exit 1)."""
    config = StackConfig(
        port=args.port,
        host=args.host,
        instances=args.instances,
        default_port=args.default_port,
        fallback_port=args.fallback_port,
        default_url=args.default_url,
        fallback_url=args.fallback_url,
        run_dir=args.run_dir,
        log_dir=args.logs,
        ready_timeout=args.ready_timeout,
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
                    f" {_describe_exit(exit_code)}; stopping the stack",
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
