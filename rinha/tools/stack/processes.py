"""The stack's children one by one: started, awaited, described, stopped; and the checks on the
ports, sockets and directories they are given. Supervision is in supervise.py."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from rinha.tools.stack.config import StackError

if TYPE_CHECKING:
    import subprocess

    from rinha.tools.stack.supervise import Backoff

SUN_PATH_MAX = 107  # bytes of a unix socket path, NUL excluded (Linux sockaddr_un)


class Child:
    """One child process of the stack, and what it takes to start it again."""

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


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on host (the usual bind-to-0 race applies)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def connects(address: str) -> bool:
    """True once something accepts connections at `unix:/path` or `host:port`."""
    from rinha.address import Address  # imports socket: not at this module's import

    try:
        with Address.parse(address).connect(timeout=0.5):  # s
            pass
    except OSError:
        return False
    return True


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def private_dir(path: str, what: str) -> str:
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


def check_socket_path(path: str) -> None:
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise StackError(
            f"socket path {path} is longer than {SUN_PATH_MAX} bytes, the limit of a unix"
            " socket: use a shorter --run-dir / --data-dir"
        )


def popen(
    cmd: list[str], env: dict[str, str], log: Any, die_with_parent: bool
) -> subprocess.Popen[bytes]:
    """Start one child; `die_with_parent`: it gets SIGTERM when the forking thread ends."""
    import subprocess

    return subprocess.Popen(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT if log else None,
        # own process group: a terminal's Ctrl-C reaches only us, and we stop the
        # children in order; killpg also reaches whatever a child forked (Nginx workers)
        start_new_session=True,
        preexec_fn=_die_with_parent if die_with_parent else None,
    )


def wait_ready(child: Child, address: str, deadline: float, ready_timeout: float) -> None:
    """Until `child` accepts connections at `address`; StackError if it exits or is late."""
    while True:
        code = child.proc.poll()
        if code is not None:
            raise StackError(
                f"{child.name} ({child.kind}, pid {child.proc.pid}) exited during start-up"
                f" with {describe_exit(code)}"
            )
        if connects(address):
            return
        if time.monotonic() > deadline:
            raise StackError(
                f"{child.name} ({child.kind}, pid {child.proc.pid}) not accepting"
                f" connections at {address} after {ready_timeout:g}s"
            )
        time.sleep(0.05)


def wait_http(children: list[Child], url: str, deadline: float) -> None:
    """GET url through Nginx until it answers 200 (the whole path works)."""
    import urllib.error
    import urllib.request

    last = ""
    while True:
        # no supervisor yet: any death during the start fails it
        for child in children:
            code = child.proc.poll()
            if code is not None:
                raise StackError(
                    f"{child.name} ({child.kind}, pid {child.proc.pid}) exited with"
                    f" {describe_exit(code)}"
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


def stop_group(children: list[Child], stop_timeout: float) -> None:
    """SIGTERM each child's process group, SIGKILL what is left after `stop_timeout` s."""
    import subprocess

    for child in children:
        if child.proc.poll() is None:
            killpg(child.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + stop_timeout
    for child in children:
        try:
            child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(
                f"rinha up: {child.name} (pid {child.proc.pid}) ignored SIGTERM for"
                f" {stop_timeout:g}s: SIGKILL",
                file=sys.stderr,
            )
            killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait()
        # leftovers of the group (e.g. workers of a crashed Nginx master)
        killpg(child.proc.pid, signal.SIGKILL)


def say(message: str) -> None:
    print(f"rinha up: {message}", file=sys.stderr, flush=True)


def killpg(pgid: int, sig: signal.Signals) -> None:
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
