"""`Stack`: the processors, the instances and Nginx started in order, the instances restarted
when they exit (with a back-off), everything stopped in order."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from rinha.tools.procfs import children
from rinha.tools.stack.config import SHM, StackConfig, StackError, StackInfo
from rinha.tools.stack.nginx import find_nginx, render_nginx_conf, source_root
from rinha.tools.stack.processes import (
    Child,
    check_socket_path,
    connects,
    describe_exit,
    free_port,
    popen,
    port_in_use,
    private_dir,
    say,
    stop_group,
    wait_http,
    wait_ready,
)

if TYPE_CHECKING:
    import subprocess
    import threading


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


class Stack:
    """Processors + instances + Nginx as child processes; `start()` / `stop()` or `with`."""

    def __init__(self, config: StackConfig | None = None, **overrides: Any) -> None:
        self.config = config or StackConfig()
        for key, value in overrides.items():
            if not hasattr(self.config, key):
                raise TypeError(f"unknown StackConfig field {key!r}")
            setattr(self.config, key, value)
        self.children: list[Child] = []
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
            self._run_dir = private_dir(cfg.run_dir, "run dir")
        else:
            self._run_dir = tempfile.mkdtemp(prefix="rinha-up-")  # 0700
            self._own_run_dir = True
        run_dir = self._run_dir
        data_dir = private_dir(cfg.data_dir or os.path.join(run_dir, "data"), "data dir")
        ids_path = cfg.ids_path
        if ids_path is None and os.path.isdir(SHM):
            self._ids_dir = tempfile.mkdtemp(prefix="rinha-ids-", dir=SHM)  # 0700
            ids_path = os.path.join(self._ids_dir, "ids.bin")

        port = cfg.port or free_port(cfg.host)
        if port_in_use(cfg.host, port):
            raise StackError(f"port {cfg.host}:{port} is already in use")

        # instances' addresses first: a refusal must come before anything is started
        sockets = [os.path.join(run_dir, f"api{i + 1}.sock") for i in range(cfg.instances)]
        internal = [os.path.join(data_dir, f"internal-{i}.sock") for i in range(cfg.instances)]
        for path in (*sockets, *internal):
            check_socket_path(path)
            if os.path.exists(path):
                if connects(f"unix:{path}"):
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
                if port_in_use("127.0.0.1", pport):
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
        wait_http(self.children, url + "/payments-summary", deadline)

        self.info = StackInfo(
            url=url,
            default_url=default_url,
            fallback_url=fallback_url,
            run_dir=run_dir,
            data_dir=data_dir,
            sockets=tuple(sockets),
            internal_sockets=tuple(internal),
            nginx_pids=(nginx_child.proc.pid, *children(nginx_child.proc.pid)),
            instance_pids=tuple(c.proc.pid for c in instance_children),
            processor_pids=tuple(processor_pids),
        )
        if cfg.restart_instances:
            self._supervisor = threading.Thread(
                target=self._supervise, name="rinha-up-supervisor", daemon=True
            )
            self._supervisor.start()
        return self.info

    def _spawn(self, name: str, kind: str, cmd: list[str], env: dict[str, str]) -> Child:
        log = None
        if self.config.log_dir:
            os.makedirs(self.config.log_dir, exist_ok=True)
            log = open(os.path.join(self.config.log_dir, f"{name}.log"), "ab")  # noqa: SIM115
        # children run the very rinha that runs us, installed or not
        env = dict(env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root(), env.get("PYTHONPATH")]))
        child = Child(name, kind, self._popen(cmd, env, log), log, cmd, env)
        self.children.append(child)
        return child

    def _popen(self, cmd: list[str], env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
        import threading

        here = threading.current_thread()
        # PDEATHSIG is tied to the forking *thread*: only from one that lives as long as
        # the stack (a to_thread worker of `async with` may end first)
        return popen(cmd, env, log, here is threading.main_thread() or here is self._supervisor)

    def _wait_ready(self, child: Child, address: str, deadline: float) -> None:
        wait_ready(child, address, deadline, self.config.ready_timeout)

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

    def _tend(self, child: Child, now: float) -> None:
        """One look at one supervised instance (lock held): note its exit, or restart it."""
        assert child.backoff is not None
        if child.due is None:
            code = child.proc.poll()
            if code is None:
                return
            delay = child.backoff.delay(now - child.started)
            child.due = now + delay
            say(
                f"{child.name} (instance, pid {child.proc.pid}) exited with"
                f" {describe_exit(code)}; restarting it in {delay:g}s"
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
            say(f"{child.name}: restart failed ({exc}); next try in {delay:g}s")
            return
        child.started = now
        child.due = None
        child.restarts += 1
        say(
            f"{child.name} (instance, pid {old_pid}, {describe_exit(code)}) restarted:"
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
            stop_group([c for c in self.children if c.kind == kind], self.config.stop_timeout)
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
