"""`rinha up` for real: emulators + two instances + Nginx on free ports, as a subprocess.

Needs nginx (skipped with the reason when it is missing; CI installs it).
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rinha.tools import procfs
from rinha.tools.stack import NginxNotFound, Stack, StackConfig, find_nginx, free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = {"X-Rinha-Token": "123"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _need_nginx() -> None:
    try:
        find_nginx()
    except NginxNotFound as exc:
        pytest.skip(f"{exc} (CI installs it)")


def http(
    method: str, url: str, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


@dataclass
class Up:
    proc: subprocess.Popen[str]
    url: str
    default_url: str
    fallback_url: str
    run_dir: Path
    logs: Path
    banner: list[str] = field(default_factory=list)  # what it printed up to "ready"

    def log_tails(self) -> str:
        parts = []
        for log in sorted(self.logs.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {log.name}\n" + "\n".join(lines))
        return "\n".join(parts)


def _read_until_ready(proc: subprocess.Popen[str], timeout: float) -> list[str]:
    """stdout's lines up to the one saying "ready" (or all there were by `timeout`). Reads
    the pipe's fd itself: the text wrapper would buffer lines that select() then misses."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"ready" not in data:
            if not sel.select(max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
    return data.decode().splitlines(keepends=True)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    port, default_port, fallback_port = free_port(), free_port(), free_port()
    run_dir, logs = tmp_path / "run", tmp_path / "logs"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rinha",
            "up",
            "--port",
            str(port),
            "--default-port",
            str(default_port),
            "--fallback-port",
            str(fallback_port),
            "--run-dir",
            str(run_dir),
            "--logs",
            str(logs),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    handle = Up(
        proc,
        f"http://127.0.0.1:{port}",
        f"http://127.0.0.1:{default_port}",
        f"http://127.0.0.1:{fallback_port}",
        run_dir,
        logs,
    )
    try:
        # one line per instance, the data dir, then the one saying "ready"
        lines = _read_until_ready(proc, 40) or [""]
        if "ready" not in lines[-1]:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"rinha up did not get ready: {lines!r}\n{err}\n{handle.log_tails()}")
        assert handle.url in lines[-1]
        handle.banner = lines
        yield handle
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _admin(url: str) -> dict:
    status, body = http("GET", url + "/admin/payments-summary", headers=TOKEN)
    assert status == 200
    return json.loads(body)


def test_payments_through_nginx_match_the_processors_then_sigterm(up: Up) -> None:
    sent = 12
    for i in range(sent):
        status, _ = http(
            "POST",
            up.url + "/payments",
            {"correlationId": str(uuid.uuid4()), "amount": round(19.9 + i, 2)},
        )
        assert 200 <= status < 300
    deadline = time.monotonic() + 15
    while True:
        theirs = {"default": _admin(up.default_url), "fallback": _admin(up.fallback_url)}
        if sum(v["totalRequests"] for v in theirs.values()) >= sent or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert sum(v["totalRequests"] for v in theirs.values()) == sent, up.log_tails()
    status, body = http("GET", up.url + "/payments-summary")
    assert status == 200
    ours = json.loads(body)
    for name in ("default", "fallback"):
        assert ours[name]["totalRequests"] == theirs[name]["totalRequests"], (ours, theirs)
        assert round(ours[name]["totalAmount"] * 100) == round(theirs[name]["totalAmount"] * 100)
    # the instances' internal routes are not reachable through Nginx
    assert http("GET", up.url + "/internal/summary")[0] == 404

    sockets = sorted(up.run_dir.glob("api*.sock"))
    assert [p.name for p in sockets] == ["api1.sock", "api2.sock"]
    data_dir = up.run_dir / "data"
    internal = sorted(data_dir.glob("internal-*.sock"))
    assert [p.name for p in internal] == ["internal-0.sock", "internal-1.sock"]
    # Nginx reaches the clients' sockets through the group (or as their owner); the peers'
    # sockets are the instances' own
    assert {oct(p.stat().st_mode & 0o777) for p in sockets} == {"0o660"}
    assert {oct(p.stat().st_mode & 0o777) for p in internal} == {"0o600"}
    # the banner: one line per instance, then the data dir, then "ready"
    for i, line in enumerate(up.banner[:2]):
        assert re.fullmatch(
            rf"rinha up: api{i + 1} pid \d+, clients unix:{up.run_dir}/api{i + 1}\.sock,"
            rf" peers unix:{data_dir}/internal-{i}\.sock\n",
            line,
        ), line
    assert up.banner[2].startswith(f"rinha up: data dir {data_dir} ")
    children = procfs.children(up.proc.pid)
    assert len(children) == 5  # 2 processors, 2 instances, the Nginx master
    up.proc.send_signal(signal.SIGTERM)
    _, err = up.proc.communicate(timeout=20)
    assert up.proc.returncode == 0, err
    assert "SIGTERM: stack stopped" in err
    assert not list(up.run_dir.glob("api*.sock")), "sockets removed"
    assert not list(data_dir.glob("internal-*.sock")), "internal sockets removed"
    assert data_dir.is_dir(), "the data dir (journals) stays"
    for pid in children:
        assert not Path(f"/proc/{pid}").exists(), f"child {pid} still running"


def _instances(up: Up) -> list[int]:
    return [
        pid
        for pid in procfs.children(up.proc.pid)
        if b"serve" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def test_a_killed_instance_comes_back_and_a_dead_nginx_brings_the_stack_down(up: Up) -> None:
    instances = _instances(up)
    assert len(instances) == 2
    os.kill(instances[0], signal.SIGKILL)
    time.sleep(0.05)
    deadline = time.monotonic() + 10
    while len(now := _instances(up)) < 2 or instances[0] in now:
        # the other instance answers meanwhile, summaries aside (a peer is missing: 503)
        body = {"correlationId": str(uuid.uuid4()), "amount": 10.0}
        assert http("POST", up.url + "/payments", body)[0] == 202
        assert time.monotonic() < deadline, "the killed instance was not restarted"
        time.sleep(0.02)
    deadline = time.monotonic() + 10
    while http("GET", up.url + "/payments-summary")[0] != 200:
        assert time.monotonic() < deadline, "the cluster did not answer summaries again"
        time.sleep(0.1)

    nginx = [
        p
        for p in procfs.children(up.proc.pid)
        if p not in now and b"nginx" in Path(f"/proc/{p}/cmdline").read_bytes()
    ]
    assert len(nginx) == 1
    others = [pid for pid in procfs.children(up.proc.pid) if pid != nginx[0]]
    os.kill(nginx[0], signal.SIGKILL)
    _, err = up.proc.communicate(timeout=30)
    assert up.proc.returncode == 1, err
    assert re.search(
        rf"api1 \(instance, pid {instances[0]}\) exited with killed by SIGKILL;"
        r" restarting it in 0\.5s",
        err,
    ), err
    new = next(pid for pid in now if pid != instances[1])
    assert re.search(
        rf"api1 \(instance, pid {instances[0]}, killed by SIGKILL\) restarted: new"
        rf" pid {new} \(restart 1\)",
        err,
    ), err
    assert re.search(
        rf"nginx \(nginx, pid {nginx[0]}\) exited with killed by SIGKILL;"
        r" stopping the stack",
        err,
    ), err
    for pid in others:
        assert not Path(f"/proc/{pid}").exists(), f"child {pid} still running"
    assert not list(up.run_dir.glob("api*.sock"))


def test_a_restarted_instance_resumes_the_payments_it_held(up: Up) -> None:
    """Both processors fail: the payments wait in the instances' queues (and journals). The
    instances are killed; restarted, they replay their journals and, once the processors are
    back, process every payment they had accepted, exactly once."""
    for url in (up.default_url, up.fallback_url):
        assert (
            http("PUT", url + "/admin/configurations/failure", {"failure": True}, TOKEN)[0] == 200
        )
    sent = 20
    for i in range(sent):
        body = {"correlationId": str(uuid.uuid4()), "amount": round(10.0 + i, 2)}
        assert http("POST", up.url + "/payments", body)[0] == 202
    instances = _instances(up)
    for pid in instances:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while len(now := _instances(up)) < 2 or set(now) & set(instances):
        assert time.monotonic() < deadline, "the instances were not restarted"
        time.sleep(0.05)
    for url in (up.default_url, up.fallback_url):
        assert (
            http("PUT", url + "/admin/configurations/failure", {"failure": False}, TOKEN)[0] == 200
        )
    deadline = time.monotonic() + 60
    while True:
        theirs = {"default": _admin(up.default_url), "fallback": _admin(up.fallback_url)}
        stored = sum(v["totalRequests"] for v in theirs.values())
        if stored >= sent or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert stored == sent, up.log_tails()
    deadline = time.monotonic() + 10
    while (answer := http("GET", up.url + "/payments-summary"))[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    ours = json.loads(answer[1])
    for name in ("default", "fallback"):
        assert ours[name]["totalRequests"] == theirs[name]["totalRequests"], (ours, theirs)


def test_python_api_gives_urls_and_pids(tmp_path: Path) -> None:
    config = StackConfig(port=0, default_port=0, fallback_port=0, log_dir=str(tmp_path / "logs"))
    stack = Stack(config)
    with stack as info:
        assert len(info.instance_pids) == 2 and len(info.nginx_pids) == 2  # master + 1 worker
        assert info.service_pids == info.nginx_pids + info.instance_pids
        assert stack.instance_pids() == info.instance_pids and stack.restarts == 0
        assert info.data_dir == os.path.join(info.run_dir, "data")
        assert info.internal_sockets == tuple(
            os.path.join(info.data_dir, f"internal-{i}.sock") for i in range(2)
        )
        for pid in (*info.service_pids, *info.processor_pids):
            assert Path(f"/proc/{pid}").exists()
        status, body = http("GET", info.url + "/payments-summary")
        assert status == 200 and b"default" in body
        run_dir = Path(info.run_dir)
        assert (run_dir / "api1.sock").exists()
    assert not run_dir.exists(), "a temp run dir is removed"
    for pid in (*info.service_pids, *info.processor_pids):
        assert not Path(f"/proc/{pid}").exists()


def test_a_rinha_folder_in_the_working_directory_is_not_what_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # e.g. `rinha up` started inside a checkout whose extension is not compiled: the
    # children must import the installed package, not ./rinha
    decoy = tmp_path / "rinha"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise ImportError('the decoy in the cwd was imported')\n")
    (decoy / "__main__.py").write_text("raise SystemExit('the decoy in the cwd was run')\n")
    monkeypatch.chdir(tmp_path)
    config = StackConfig(port=0, default_port=0, fallback_port=0, run_dir=str(tmp_path / "run"))
    with Stack(config) as info:
        status, _ = http("GET", info.url + "/payments-summary")
        assert status == 200


def test_existing_processors_are_used_instead_of_emulators(tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "rinha", "processor", "--port", str(p), "--fee", fee],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        for p, fee in zip(ports, ("0.05", "0.15"), strict=True)
    ]
    try:
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        deadline = time.monotonic() + 20
        while True:
            try:
                for url in urls:
                    _admin(url)
                break
            except (OSError, AssertionError):
                assert time.monotonic() < deadline, "emulators did not start"
                time.sleep(0.1)
        config = StackConfig(
            port=0,
            default_url=urls[0],
            fallback_url=urls[1],
            instances=3,
            log_dir=str(tmp_path / "logs"),
        )
        with Stack(config) as info:
            assert info.processor_pids == ()
            assert (info.default_url, info.fallback_url) == (urls[0], urls[1])
            assert len(info.instance_pids) == 3
            body = {"correlationId": str(uuid.uuid4()), "amount": 10.0}
            assert http("POST", info.url + "/payments", body)[0] // 100 == 2
            deadline = time.monotonic() + 10
            while _admin(urls[0])["totalRequests"] < 1:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        for p in procs:
            assert p.poll() is None, "external processors are left running"
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


def test_floor_stack_runs_noop_upstreams_behind_the_same_nginx(tmp_path: Path) -> None:
    """`rinha bench --floor`: the instances are rinha.tools.bench.noop, which answer at once and
    never reach a processor."""
    config = StackConfig(
        port=0,
        default_port=0,
        fallback_port=0,
        log_dir=str(tmp_path / "logs"),
        instance_args=("-m", "rinha.tools.bench.noop", "serve"),
    )
    with Stack(config) as info:
        for pid in info.instance_pids:
            assert b"rinha.tools.bench.noop" in Path(f"/proc/{pid}/cmdline").read_bytes()
        body = {"correlationId": str(uuid.uuid4()), "amount": 10.0}
        assert http("POST", info.url + "/payments", body) == (202, b"")
        assert http("POST", info.url + "/payments", body) == (202, b""), "no duplicate check"
        status, summary = http("GET", info.url + "/payments-summary")
        assert status == 200
        assert json.loads(summary)["default"]["totalRequests"] == 0
        time.sleep(0.2)
        assert _admin(info.default_url)["totalRequests"] == 0, "nothing reached a processor"
