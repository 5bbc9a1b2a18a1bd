"""What `rinha up` is given (StackConfig) and what it answers (StackInfo), and its one error."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

SHM = "/dev/shm"  # tmpfs: the id table there takes no page fault per claim


class StackError(RuntimeError):
    """The stack could not start, or one of its children died."""


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
