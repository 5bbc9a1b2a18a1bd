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
    import threading

__all__ = [
    "Backoff",
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
SHM = "/dev/shm"  # tmpfs: the id table there takes no page fault per claim
SUN_PATH_MAX = 107  # bytes of a unix socket path, NUL excluded (Linux sockaddr_un)


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
    # journals, internal sockets; None: <run_dir>/data (the CLI's default differs)
    data_dir: str | None = None
    # the shared id table; None: a private dir on tmpfs (/dev/shm) removed on stop, else
    # <data_dir>/ids.bin (RINHA_IDS_PATH in the environment wins)
    ids_path: str | None = None
    log_dir: str | None = None  # None: children write to our stdout/stderr
    python: str = sys.executable
    nginx: str | None = None  # None: find_nginx()
    env: dict[str, str] = field(default_factory=dict)  # extra env for the instances
    # what each instance runs, after the python binary (`rinha bench --floor`: a no-op)
    # -P: the installed package runs, never a `rinha/` folder in the working directory
    instance_args: tuple[str, ...] = ("-P", "-m", "rinha", "serve")
    ready_timeout: float = 30.0  # s, for the whole start
    stop_timeout: float = 5.0  # s per stage before SIGKILL
    restart_instances: bool = True  # False: an instance's death stops the stack, as Nginx's does
    restart_first: float = 0.5  # s, back-off before the first restart
    restart_max: float = 10.0  # s, the back-off doubles up to this
    restart_reset: float = 30.0  # s up that count as healthy: the back-off starts over


@dataclass(frozen=True)
class StackInfo:
    """Where the running stack is, and who it is."""

    url: str
    default_url: str
    fallback_url: str
    run_dir: str
    data_dir: str
    sockets: tuple[str, ...]  # the instances' client sockets, in order
    internal_sockets: tuple[str, ...]  # where their peers reach them, in order
    nginx_pids: tuple[int, ...]  # master first
    instance_pids: tuple[int, ...]  # as started: Stack.instance_pids() has the current ones
    processor_pids: tuple[int, ...]  # empty when external processors are used

    @property
    def service_pids(self) -> tuple[int, ...]:
        return self.nginx_pids + self.instance_pids


class Backoff:
    """The delays between the restarts of one crashing instance: `first`, doubling up to `cap`;
    back to `first` once it had stayed up `reset_after` seconds (it was healthy, then broke)."""

    __slots__ = ("first", "cap", "reset_after", "_next")

    def __init__(self, first: float = 0.5, cap: float = 10.0, reset_after: float = 30.0) -> None:
        self.first = first
        self.cap = cap
        self.reset_after = reset_after
        self._next = first

    def delay(self, uptime: float) -> float:
        """Seconds to wait before restarting an instance that exited after `uptime` seconds."""
        if uptime >= self.reset_after:
            self._next = self.first
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay


class _Child:
    __slots__ = (
        "name",
        "kind",
        "proc",
        "log",
        "cmd",
        "env",
        "started",
        "backoff",
        "due",
        "restarts",
    )

    def __init__(
        self,
        name: str,
        kind: str,
        proc: subprocess.Popen[bytes],
        log: Any,
        cmd: list[str],
        env: dict[str, str],
    ) -> None:
        self.name = name  # "default", "api1", "nginx", …
        self.kind = kind  # "processor" | "instance" | "nginx"
        self.proc = proc
        self.log = log  # open file when logging to files, else None
        self.cmd = cmd  # what a restart runs again, exactly
        self.env = env
        self.started = time.monotonic()
        self.backoff: Backoff | None = None  # set for the supervised ones
        self.due: float | None = None  # when it is to be restarted (it exited), else None
        self.restarts = 0


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


def _source_root() -> str:
    """The folder holding the `rinha` package that runs us (a checkout's root when editable)."""
    import rinha

    return os.path.dirname(os.path.dirname(os.path.abspath(rinha.__file__)))


def template_path() -> str:
    """The Nginx template: $RINHA_NGINX_TEMPLATE, else nginx/ of the source tree (checkout or
    editable install), else <prefix>/share/rinha/nginx/ (a wheel's data files)."""
    override = os.environ.get("RINHA_NGINX_TEMPLATE")
    if override:
        return override
    candidates = (
        os.path.join(_source_root(), "nginx", TEMPLATE_NAME),
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
    """The Nginx config for these upstreams (`unix:/p.sock` or `host:port`); `user`: the
    workers' user (`user` directive), none if None."""
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
        if "${RINHA_UPSTREAM}" in line:  # the server line, once per instance
            lines.extend(line.replace("${RINHA_UPSTREAM}", u) for u in upstreams)
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


def _private_dir(path: str, what: str) -> str:
    """`path` made absolute; created 0700 if missing, refused if another user owns it or if
    others may enter it (the instances' sockets and journals live there)."""
    path = os.path.abspath(path)
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.stat(path)
    if st.st_uid != os.geteuid():
        raise StackError(f"the {what} {path} belongs to uid {st.st_uid}, not to us: pick another")
    if st.st_mode & 0o027:
        raise StackError(
            f"the {what} {path} has mode {st.st_mode & 0o7777:04o}: other users could reach"
            f" the sockets in it; `chmod 0700 {path}` (or o-rwx,g-w) first"
        )
    return path


def _check_socket_path(path: str) -> None:
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise StackError(
            f"socket path {path} is longer than {SUN_PATH_MAX} bytes, the limit of a unix"
            " socket: use a shorter --run-dir / --data-dir"
        )


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
        self._ids_dir = ""  # a temp dir on tmpfs holding the id table, removed on stop
        self._created: list[str] = []  # sockets and pid file of ours, removed on stop
        self._lock: threading.Lock | None = None  # children's procs vs. the supervisor
        self._supervisor: threading.Thread | None = None
        self._halt: threading.Event | None = None  # the supervisor stops restarting
        self._release: threading.Event | None = None  # its thread may end (see _supervise)
        self._stopping = False

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
        import threading

        cfg = self.config
        if cfg.instances < 1:
            raise StackError("--instances must be at least 1")
        if (cfg.default_url is None) != (cfg.fallback_url is None):
            raise StackError("give both --default-url and --fallback-url, or neither")
        nginx = cfg.nginx or find_nginx()
        deadline = time.monotonic() + cfg.ready_timeout
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._release = threading.Event()
        self._stopping = False

        if cfg.run_dir:
            self._run_dir = _private_dir(cfg.run_dir, "run dir")
        else:
            self._run_dir = tempfile.mkdtemp(prefix="rinha-up-")  # 0700
            self._own_run_dir = True
        run_dir = self._run_dir
        data_dir = _private_dir(cfg.data_dir or os.path.join(run_dir, "data"), "data dir")
        ids_path = cfg.ids_path
        if ids_path is None and os.path.isdir(SHM):
            self._ids_dir = tempfile.mkdtemp(prefix="rinha-ids-", dir=SHM)  # 0700
            ids_path = os.path.join(self._ids_dir, "ids.bin")

        port = cfg.port or free_port(cfg.host)
        if _port_in_use(cfg.host, port):
            raise StackError(f"port {cfg.host}:{port} is already in use")

        # instances' addresses first: a refusal must come before anything is started
        sockets = [os.path.join(run_dir, f"api{i + 1}.sock") for i in range(cfg.instances)]
        internal = [os.path.join(data_dir, f"internal-{i}.sock") for i in range(cfg.instances)]
        for path in (*sockets, *internal):
            _check_socket_path(path)
            if os.path.exists(path):
                if _connects(f"unix:{path}"):
                    raise StackError(f"{path} is in use by another process")
                os.unlink(path)

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
                cmd = [
                    cfg.python,
                    "-P",
                    "-m",
                    "rinha",
                    "processor",
                    "--port",
                    str(pport),
                    "--fee",
                    fee,
                ]
                child = self._spawn(name, "processor", cmd, dict(os.environ))
                processor_pids.append(child.proc.pid)
                urls.append(f"http://127.0.0.1:{pport}")
                started.append((child, f"127.0.0.1:{pport}"))
            for child, address in started:
                self._wait_ready(child, address, deadline)
            default_url, fallback_url = urls

        # instances
        instance_children = []
        for i, path in enumerate(sockets):
            env = dict(os.environ)
            env.update(cfg.env)
            env.update(
                RINHA_BIND=f"unix:{path}",
                RINHA_INTERNAL_BIND=f"unix:{internal[i]}",
                # peers talk to each other on their internal sockets, never on the clients'
                RINHA_PEERS=",".join(f"unix:{p}" for p in internal if p != internal[i]),
                RINHA_INSTANCE_ID=str(i),
                RINHA_DATA_DIR=data_dir,
                RINHA_IDS_PATH=env.get("RINHA_IDS_PATH") or ids_path or "",
                RINHA_DEFAULT_URL=default_url,
                RINHA_FALLBACK_URL=fallback_url,
            )
            cmd = [cfg.python, *cfg.instance_args]
            self._created += [path, internal[i]]
            child = self._spawn(f"api{i + 1}", "instance", cmd, env)
            if cfg.restart_instances:
                child.backoff = Backoff(cfg.restart_first, cfg.restart_max, cfg.restart_reset)
            instance_children.append(child)
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
            data_dir=data_dir,
            sockets=tuple(sockets),
            internal_sockets=tuple(internal),
            nginx_pids=(nginx_child.proc.pid, *_children_of(nginx_child.proc.pid)),
            instance_pids=tuple(c.proc.pid for c in instance_children),
            processor_pids=tuple(processor_pids),
        )
        if cfg.restart_instances:
            self._supervisor = threading.Thread(
                target=self._supervise, name="rinha-up-supervisor", daemon=True
            )
            self._supervisor.start()
        return self.info

    def _spawn(self, name: str, kind: str, cmd: list[str], env: dict[str, str]) -> _Child:
        log = None
        if self.config.log_dir:
            os.makedirs(self.config.log_dir, exist_ok=True)
            log = open(os.path.join(self.config.log_dir, f"{name}.log"), "ab")  # noqa: SIM115
        # children run the very rinha that runs us, installed or not
        env = dict(env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_source_root(), env.get("PYTHONPATH")]))
        child = _Child(name, kind, self._popen(cmd, env, log), log, cmd, env)
        self.children.append(child)
        return child

    def _popen(self, cmd: list[str], env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
        import subprocess
        import threading

        preexec = None
        here = threading.current_thread()
        if here is threading.main_thread() or here is self._supervisor:
            # PDEATHSIG is tied to the forking *thread*: only from one that lives as long as
            # the stack (a to_thread worker of `async with` may end first)
            preexec = _die_with_parent
        return subprocess.Popen(
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
            # no supervisor yet: any death during the start fails it
            for child in self.children:
                code = child.proc.poll()
                if code is not None:
                    raise StackError(
                        f"{child.name} ({child.kind}, pid {child.proc.pid}) exited with"
                        f" {_describe_exit(code)}"
                    )
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
        """(name, kind, pid, exit code) of the first child whose death stops the stack (Nginx,
        a processor; an instance only when restart_instances is off), or None."""
        for child in self.children:
            if child.backoff is not None:  # supervised: restarted, not fatal
                continue
            code = child.proc.poll()
            if code is not None:
                return child.name, child.kind, child.proc.pid, code
        return None

    def instance_pids(self) -> tuple[int, ...]:
        """The instances' PIDs now, in order (an instance waiting to restart: its last one)."""
        lock = self._lock
        if lock is None:
            return ()
        with lock:
            return tuple(c.proc.pid for c in self.children if c.kind == "instance")

    @property
    def restarts(self) -> int:
        """How many times an instance has been restarted since start()."""
        return sum(c.restarts for c in self.children if c.kind == "instance")

    def _supervise(self) -> None:
        """The supervisor thread: restart every instance that exits, after its back-off."""
        assert self._halt is not None and self._lock is not None and self._release is not None
        while not self._halt.wait(0.1):
            with self._lock:
                if self._stopping:
                    break
                now = time.monotonic()
                for child in self.children:
                    if child.backoff is not None:
                        self._tend(child, now)
        # the restarted instances' PDEATHSIG fires when this thread ends: stay until stop()
        # has stopped them in order (Nginx first)
        self._release.wait()

    def _tend(self, child: _Child, now: float) -> None:
        """One look at one supervised instance (lock held): note its exit, or restart it."""
        assert child.backoff is not None
        if child.due is None:
            code = child.proc.poll()
            if code is None:
                return
            delay = child.backoff.delay(now - child.started)
            child.due = now + delay
            _say(
                f"{child.name} (instance, pid {child.proc.pid}) exited with"
                f" {_describe_exit(code)}; restarting it in {delay:g}s"
            )
            return
        if now < child.due:
            return
        old_pid, code = child.proc.pid, child.proc.returncode
        try:
            child.proc = self._popen(child.cmd, child.env, child.log)
        except OSError as exc:  # e.g. out of processes: try again after a longer back-off
            delay = child.backoff.delay(0.0)
            child.due = now + delay
            _say(f"{child.name}: restart failed ({exc}); next try in {delay:g}s")
            return
        child.started = now
        child.due = None
        child.restarts += 1
        _say(
            f"{child.name} (instance, pid {old_pid}, {_describe_exit(code)}) restarted:"
            f" new pid {child.proc.pid} (restart {child.restarts})"
        )

    # -- stop ----------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM Nginx, then the instances, then the processors (SIGKILL after
        stop_timeout each); remove the sockets (and the run dir if it was ours)."""
        if self._lock is not None:
            with self._lock:  # no restart from here on
                self._stopping = True
        if self._halt is not None:
            self._halt.set()
        for kind in ("nginx", "instance", "processor"):
            self._stop_group([c for c in self.children if c.kind == kind])
        if self._release is not None:
            self._release.set()
        if self._supervisor is not None:
            self._supervisor.join()
            self._supervisor = None
        for child in self.children:
            if child.log is not None:
                child.log.close()
        self.children.clear()
        self.info = None
        for path in self._created:
            if os.path.exists(path):
                os.unlink(path)
        self._created.clear()
        if self._own_run_dir or self._ids_dir:
            import shutil

            if self._own_run_dir:
                shutil.rmtree(self._run_dir, ignore_errors=True)
            if self._ids_dir:
                shutil.rmtree(self._ids_dir, ignore_errors=True)
        self._own_run_dir = False
        self._run_dir = ""
        self._ids_dir = ""

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


def _say(message: str) -> None:
    print(f"rinha up: {message}", file=sys.stderr, flush=True)


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
