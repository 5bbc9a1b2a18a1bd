"""`rinha up`'s supervision, for real: Nginx, emulated processors and no-op instances
(rinha.tools.bench.noop, which answer every request at once) as child processes; instances killed
with SIGKILL, no mocks.

The no-op stands in for `rinha serve` so that these tests depend on nothing but the stack
itself; tests/integration/test_stack.py does the same with real instances.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rinha.tools.stack import NginxNotFound, Stack, StackConfig, StackInfo, find_nginx

pytestmark = pytest.mark.slow

NOOP = ("-m", "rinha.tools.bench.noop", "serve")


@pytest.fixture(scope="module", autouse=True)
def _need_nginx() -> None:
    try:
        find_nginx()
    except NginxNotFound as exc:
        pytest.skip(f"{exc} (CI installs it)")


def post(url: str) -> int:
    body = b'{"correlationId":"%s","amount":19.9}' % str(uuid.uuid4()).encode()
    req = urllib.request.Request(
        url + "/payments", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code


def alive(pid: int) -> bool:
    """Running, not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"


def accepts(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
        except OSError:
            return False
    return True


def config(tmp_path: Path, **overrides: object) -> StackConfig:
    cfg = StackConfig(
        port=0,
        default_port=0,
        fallback_port=0,
        instance_args=NOOP,
        run_dir=str(tmp_path / "run"),
        log_dir=str(tmp_path / "logs"),
    )
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Stack, StackInfo]]:
    stack = Stack(config(tmp_path))
    info = stack.start()
    try:
        yield stack, info
    finally:
        stack.stop()


def test_a_killed_instance_is_restarted_while_nginx_keeps_serving(
    running: tuple[Stack, StackInfo], capfd: pytest.CaptureFixture[str]
) -> None:
    stack, info = running
    assert stack.instance_pids() == info.instance_pids
    assert stack.restarts == 0
    old = info.instance_pids[0]
    os.kill(old, signal.SIGKILL)
    time.sleep(0.05)  # Nginx sees its idle keep-alive connections to api1 close
    killed = time.monotonic()
    answers = []
    while stack.instance_pids()[0] == old:
        # the restart waits 0.5 s at least: every one of these is sent while api1 is down
        answers.append(post(info.url))
        assert time.monotonic() - killed < 5, "api1 not restarted within 5 s"
    assert len(answers) >= 10 and set(answers) == {202}, answers
    new = stack.instance_pids()[0]
    assert alive(new) and not alive(old)
    assert b"rinha.tools.bench.noop" in Path(f"/proc/{new}/cmdline").read_bytes()
    assert stack.instance_pids()[1] == info.instance_pids[1], "api2 untouched"
    assert stack.restarts == 1
    assert info.instance_pids[0] == old, "StackInfo keeps the PIDs as started"
    assert stack.dead_child() is None, "a restarted instance does not stop the stack"
    # the new api1 listens on the same socket, and Nginx keeps answering
    deadline = time.monotonic() + 5
    while not accepts(info.sockets[0]):
        assert time.monotonic() < deadline, "the restarted api1 does not accept connections"
        time.sleep(0.05)
    assert [post(info.url) for _ in range(10)] == [202] * 10
    err = capfd.readouterr().err
    assert re.search(
        rf"api1 \(instance, pid {old}\) exited with killed by SIGKILL; restarting it in 0\.5s",
        err,
    ), err
    assert re.search(
        rf"api1 \(instance, pid {old}, killed by SIGKILL\) restarted: new pid {new} \(restart 1\)",
        err,
    ), err


def test_the_restarted_instance_gets_the_same_environment(
    running: tuple[Stack, StackInfo],
) -> None:
    stack, info = running

    def environ(pid: int) -> dict[str, str]:
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        return dict(e.decode().partition("=")[::2] for e in raw if e)

    before = environ(info.instance_pids[1])
    assert before["RINHA_BIND"] == f"unix:{info.sockets[1]}"
    assert before["RINHA_INTERNAL_BIND"] == f"unix:{info.internal_sockets[1]}"
    assert before["RINHA_PEERS"] == f"unix:{info.internal_sockets[0]}"
    assert before["RINHA_DATA_DIR"] == info.data_dir
    assert before["RINHA_INSTANCE_ID"] == "1"
    os.kill(info.instance_pids[1], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while stack.instance_pids()[1] == info.instance_pids[1]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    after = environ(stack.instance_pids()[1])
    assert {k: v for k, v in after.items() if k.startswith("RINHA_")} == {
        k: v for k, v in before.items() if k.startswith("RINHA_")
    }


def test_a_crash_loop_backs_off_and_stop_ends_the_last_one(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """An instance that fails at once on every restart (here: once a marker file exists) is
    restarted ever more slowly; stop() still ends whatever runs."""
    marker = tmp_path / "broken"
    script = tmp_path / "instance.py"
    script.write_text(
        "import os, runpy, sys\n"
        f"if os.path.exists({str(marker)!r}):\n"
        "    sys.exit(3)\n"
        "sys.argv = ['noop', 'serve']\n"
        "runpy.run_module('rinha.tools.bench.noop', run_name='__main__')\n",
        encoding="utf-8",
    )
    stack = Stack(
        config(tmp_path, instance_args=(str(script),), restart_first=0.1, restart_max=0.4)
    )
    info = stack.start()
    try:
        marker.touch()
        os.kill(info.instance_pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while stack.restarts < 5:
            assert time.monotonic() < deadline, f"{stack.restarts} restarts in 10 s"
            time.sleep(0.05)
        assert stack.dead_child() is None
        # api2 alone serves meanwhile
        assert post(info.url) == 202
        marker.unlink()
        last = stack.instance_pids()[0]
    finally:
        stack.stop()
    err = capfd.readouterr().err
    delays = [
        float(d)
        for d in re.findall(
            r"api1 \(instance, pid \d+\) exited with .*?; "
            r"restarting it in ([\d.]+)s",
            err,
        )
    ]
    assert delays[:5] == [0.1, 0.2, 0.4, 0.4, 0.4], err
    assert "exited with exit code 3" in err
    assert not alive(last)


def test_stop_while_a_restart_is_pending_leaves_nothing(tmp_path: Path) -> None:
    stack = Stack(config(tmp_path, restart_first=30.0))
    info = stack.start()
    os.kill(info.instance_pids[0], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(info.instance_pids[0]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)  # the supervisor has seen it: a restart is due in 30 s
    assert stack.restarts == 0
    t0 = time.monotonic()
    stack.stop()
    assert time.monotonic() - t0 < 10, "stop() does not wait for the pending restart"
    for pid in (*info.service_pids, *info.processor_pids):
        assert not alive(pid)
    assert not any(Path(p).exists() for p in (*info.sockets, *info.internal_sockets))


@pytest.mark.parametrize("victim", ["nginx", "default"])
def test_nginx_or_a_processor_dying_is_fatal(tmp_path: Path, victim: str) -> None:
    stack = Stack(config(tmp_path))
    info = stack.start()
    try:
        pid = info.nginx_pids[0] if victim == "nginx" else info.processor_pids[0]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while (dead := stack.dead_child()) is None:
            assert time.monotonic() < deadline, "the death was not reported"
            time.sleep(0.05)
        kind = "nginx" if victim == "nginx" else "processor"
        assert dead == (victim, kind, pid, -signal.SIGKILL)
        time.sleep(1.0)
        assert stack.restarts == 0 and stack.instance_pids() == info.instance_pids
    finally:
        stack.stop()


def test_without_restarts_an_instance_death_is_fatal(tmp_path: Path) -> None:
    stack = Stack(config(tmp_path, restart_instances=False))
    info = stack.start()
    try:
        os.kill(info.instance_pids[1], signal.SIGKILL)
        deadline = time.monotonic() + 5
        while (dead := stack.dead_child()) is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert dead == ("api2", "instance", info.instance_pids[1], -signal.SIGKILL)
        time.sleep(0.8)
        assert stack.instance_pids() == info.instance_pids and stack.restarts == 0
    finally:
        stack.stop()


def test_the_run_and_data_dirs_are_private(running: tuple[Stack, StackInfo]) -> None:
    _, info = running
    for d in (info.run_dir, info.data_dir):
        assert os.stat(d).st_mode & 0o077 == 0, f"{d} is reachable by others"
    assert info.data_dir == os.path.join(info.run_dir, "data")
