"""docker-compose.yml against the competition's rules (SPEC §4), read statically: no Docker."""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PROCESSORS_COMPOSE = ROOT / "docker" / "processors-compose.yml"

MAX_CPUS = 1.5
MAX_MEMORY_BYTES = 350 * 10**6  # the strictest reading of "350 MB" (Docker's MB is MiB)

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-((?:[^${}]|\$\{[^}]*\})*))?\}")


def interpolate(value: object, env: dict[str, str]) -> object:
    """Compose's ${VAR}, ${VAR:-default} (nested defaults too), as `docker compose` would."""
    if isinstance(value, str):
        previous = None
        while previous != value:
            previous = value
            value = _VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
        return value
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    return value


def load(path: Path, env: dict[str, str] | None = None) -> dict:
    with path.open(encoding="utf-8") as f:
        return interpolate(yaml.safe_load(f), env or {})  # type: ignore[return-value]


def memory_bytes(text: str | int) -> int:
    """Docker's units: b, k/kb, m/mb, g/gb, all powers of 1024."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmg]?)b?\s*", str(text).lower())
    assert m, f"memory limit {text!r} is not in Docker's format"
    scale = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}[m.group(2)]
    return int(float(m.group(1)) * scale)


def _submission(tmp_dir: Path) -> dict:
    """The contest bundle that `make submission` writes (docker/submission.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("submission", ROOT / "docker" / "submission.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return load(module.write(tmp_dir, "registry.example/rinha:1.0", "rinha"))


# every rule holds for our compose file and for the submission bundle made from it
@pytest.fixture(scope="module", params=["repository", "submission"])
def compose(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    if request.param == "submission":
        return _submission(tmp_path_factory.mktemp("submission"))
    return load(COMPOSE)


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def instances(services: dict[str, dict]) -> dict[str, dict]:
    return {n: s for n, s in services.items() if "RINHA_BIND" in (s.get("environment") or {})}


def test_interpolation_helper() -> None:
    assert interpolate("${A:-x}", {}) == "x"
    assert interpolate("${A:-x}", {"A": "y"}) == "y"
    assert interpolate("${B:-${A:-z}}", {}) == "z"
    assert interpolate("${B:-${A:-z}}", {"A": "a"}) == "a"
    assert memory_bytes("150MB") == 150 * 2**20
    assert memory_bytes("30m") == 30 * 2**20
    assert memory_bytes("1g") == 2**30


def test_every_service_has_limits_and_their_sum_fits(services: dict[str, dict]) -> None:
    cpus = 0.0
    memory = 0
    for name, service in services.items():
        limits = (service.get("deploy") or {}).get("resources", {}).get("limits") or {}
        assert "cpus" in limits and "memory" in limits, f"{name} has no CPU/memory limit"
        cpus += float(limits["cpus"])
        memory += memory_bytes(limits["memory"])
    assert cpus <= MAX_CPUS + 1e-9, f"CPU limits sum to {cpus}"
    assert memory <= MAX_MEMORY_BYTES, f"memory limits sum to {memory / 1e6:.1f} MB"


def test_at_least_two_instances_of_our_image(
    request: pytest.FixtureRequest, services: dict[str, dict]
) -> None:
    apis = instances(services)
    assert len(apis) >= 2, "SPEC §4: at least two web-server instances"
    images = {s.get("image") for s in apis.values()}
    assert len(images) == 1 and None not in images, "all instances run one image"
    submission = "submission" in request.node.callspec.id
    for name, service in apis.items():
        build = service.get("build") or {}
        if submission:  # no source in a submission: a public image, nothing to build
            assert not build and images == {"registry.example/rinha:1.0"}, name
            continue
        assert build.get("context") == ".", f"{name} is built from this repo's Dockerfile"
        assert "BASE_IMAGE" in (build.get("args") or {}), f"{name}: BASE_IMAGE build arg"


def internal_address(env: dict[str, str]) -> str:
    """Where an instance listens for its peers: RINHA_INTERNAL_BIND, else its default (see
    rinha/config.py: internal_bind)."""
    data_dir = env.get("RINHA_DATA_DIR", "/tmp/rinha-data")
    return env.get("RINHA_INTERNAL_BIND") or (
        f"unix:{data_dir}/internal-{env.get('RINHA_INSTANCE_ID', '0')}.sock"
    )


def mounts(service: dict) -> dict[str, str]:
    """Container path -> volume name (or host path) of a service's short-syntax mounts."""
    out = {}
    for volume in service.get("volumes") or []:
        source, target = str(volume).split(":")[:2]
        out[target] = source
    return out


def test_instances_form_one_cluster(services: dict[str, dict]) -> None:
    apis = instances(services)
    binds = {n: s["environment"]["RINHA_BIND"] for n, s in apis.items()}
    assert all(b.startswith("unix:/") for b in binds.values()), binds
    assert len(set(binds.values())) == len(binds), "each instance binds its own socket"
    internal = {n: internal_address(s["environment"]) for n, s in apis.items()}
    assert all(a.startswith("unix:/") for a in internal.values()), internal
    assert len(set(internal.values())) == len(internal), "each its own internal socket"
    assert not set(internal.values()) & set(binds.values())
    ids = sorted(int(s["environment"]["RINHA_INSTANCE_ID"]) for s in apis.values())
    assert ids == list(range(len(apis))), "RINHA_INSTANCE_ID: 0..N-1, each once"
    for name, service in apis.items():
        peers = set(filter(None, service["environment"].get("RINHA_PEERS", "").split(",")))
        # the peers talk on their internal sockets (/internal/* is served nowhere else)
        assert peers == set(internal.values()) - {internal[name]}, (
            f"{name}: peers = the others' internal addresses"
        )
        env = service["environment"]
        assert env["RINHA_DEFAULT_URL"] == "http://payment-processor-default:8080"
        assert env["RINHA_FALLBACK_URL"] == "http://payment-processor-fallback:8080"


def test_load_balancer_on_9999_reaches_every_instance(services: dict[str, dict]) -> None:
    published = {
        name: [str(p) for p in service.get("ports") or []] for name, service in services.items()
    }
    exposing = [
        n for n, ports in published.items() if any(p.split(":")[0] == "9999" for p in ports)
    ]
    assert exposing == ["nginx"], f"only the load balancer publishes 9999: {published}"
    assert "9999:9999" in published["nginx"]
    for name in set(services) - {"nginx"}:
        assert not published[name], f"{name} must not publish ports"
    nginx = services["nginx"]
    upstreams = set(nginx["environment"]["RINHA_UPSTREAMS"].split())
    binds = {s["environment"]["RINHA_BIND"] for s in instances(services).values()}
    assert upstreams == binds, "Nginx balances over exactly the instances' sockets"
    depends = nginx.get("depends_on") or []
    assert set(depends) >= set(instances(services)), "Nginx starts after the instances"


def test_sockets_are_shared_through_a_volume(compose: dict, services: dict[str, dict]) -> None:
    mounts = {n: [str(v) for v in s.get("volumes") or []] for n, s in services.items()}
    socket_dirs = {
        os.path.dirname(s["environment"]["RINHA_BIND"][5:]) for s in instances(services).values()
    }
    assert len(socket_dirs) == 1
    socket_dir = socket_dirs.pop()
    for name in [*instances(services), "nginx"]:
        vols = [m.split(":")[0] for m in mounts[name] if m.split(":")[1] == socket_dir]
        assert vols and vols[0] in compose.get("volumes", {}), (
            f"{name}: named volume at {socket_dir}"
        )


def test_instances_share_a_data_dir_that_outlives_them(
    compose: dict, services: dict[str, dict]
) -> None:
    apis = instances(services)
    data_dirs = {s["environment"].get("RINHA_DATA_DIR") for s in apis.values()}
    assert len(data_dirs) == 1 and None not in data_dirs, "one RINHA_DATA_DIR for all (ids.bin)"
    data_dir = data_dirs.pop()
    volumes = {mounts(s).get(data_dir) for s in apis.values()}
    assert len(volumes) == 1, f"every instance mounts the same volume at {data_dir}: {volumes}"
    volume = volumes.pop()
    assert volume in (compose.get("volumes") or {}), f"{data_dir}: a named volume"
    opts = (compose["volumes"][volume] or {}).get("driver_opts") or {}
    assert opts.get("type") != "tmpfs", "the journals must survive a container's restart"
    for name, service in apis.items():
        # the peers reach each other's internal socket in the shared volume
        path = internal_address(service["environment"])[5:]
        assert os.path.dirname(path) == data_dir, f"{name}: internal socket in {data_dir}"
    assert data_dir not in mounts(services["nginx"]), "Nginx has no business in the data dir"


def test_instances_restart_after_a_crash(services: dict[str, dict]) -> None:
    for name, service in instances(services).items():
        assert service.get("restart") in ("unless-stopped", "on-failure", "always"), (
            f"{name}: a crashed instance must come back (restart policy)"
        )


def test_sockets_are_not_world_writable(compose: dict, services: dict[str, dict]) -> None:
    apis = instances(services)
    for name, service in apis.items():
        mode = int(service["environment"].get("RINHA_SOCKET_MODE", "0660"), 8)
        assert not mode & 0o007, f"{name}: RINHA_SOCKET_MODE {mode:04o} lets others in"
        # the group its sockets get (the process's) must be the Nginx workers' (gid 101 in
        # the nginx images, user `nginx`)
        user = str(service.get("user", ""))
        assert user.partition(":")[2] == "101", f"{name}: user {user!r}, not in group 101"
        assert user.partition(":")[0] not in ("", "0", "root"), f"{name}: runs as root"
    assert services["nginx"]["environment"].get("RINHA_NGINX_USER") == "nginx"
    socket_dir = os.path.dirname(next(iter(apis.values()))["environment"]["RINHA_BIND"][5:])
    volume = mounts(next(iter(apis.values())))[socket_dir]
    options = dict(
        opt.split("=", 1)
        for opt in ((compose["volumes"][volume] or {}).get("driver_opts") or {})
        .get("o", "")
        .split(",")
        if "=" in opt
    )
    mode = int(options.get("mode", "0755"), 8)
    assert not mode & 0o007, f"the sockets' volume has mode {mode:04o}: others may enter"
    assert options.get("gid") == "101", "the sockets' volume belongs to Nginx's group"
    # Docker copies the image's directory (owner, mode) onto the empty volume: the same there
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert f"install -d -o rinha -g 101 -m {mode:04o} {socket_dir}" in dockerfile


def test_network_rules(compose: dict, services: dict[str, dict]) -> None:
    networks = compose.get("networks") or {}
    assert (networks.get("payment-processor") or {}).get("external") is True
    for name, service in services.items():
        assert service.get("network_mode") in (None, "bridge"), f"{name}: bridge networking only"
        assert not service.get("privileged"), f"{name}: no privileged"
        assert "replicas" not in (service.get("deploy") or {}), f"{name}: no deploy.replicas"
        assert service.get("platform", "linux/amd64") == "linux/amd64", f"{name}: linux/amd64"
        for net in service.get("networks") or []:
            assert net == "default" or net in networks, f"{name}: unknown network {net}"
    for name, service in instances(services).items():
        assert "payment-processor" in (service.get("networks") or []), (
            f"{name} calls the processors: must join the external network payment-processor"
        )


def test_nginx_config_comes_from_the_nginx_dir(services: dict[str, dict]) -> None:
    nginx = services["nginx"]
    mounts = [str(v) for v in nginx.get("volumes") or []]
    target = next(
        (m.split(":")[1] for m in mounts if m.split(":")[0] in ("./nginx", "nginx")), None
    )
    assert target, f"nginx/ must be mounted into the Nginx container: {mounts}"
    entry = " ".join(nginx.get("entrypoint") or [])
    assert f"{target}/docker-entrypoint.sh" in entry, entry
    assert (ROOT / "nginx" / "docker-entrypoint.sh").exists()
    assert (ROOT / "nginx" / "nginx.conf.template").exists()


def test_images_are_overridable() -> None:
    env = {"NGINX_IMAGE": "my/nginx:1", "BASE_IMAGE": "my/python:3", "RINHA_IMAGE": "my/rinha:2"}
    services = load(COMPOSE, env)["services"]
    assert services["nginx"]["image"] == "my/nginx:1"
    for service in instances(services).values():
        assert service["image"] == "my/rinha:2"
        assert service["build"]["args"]["BASE_IMAGE"] == "my/python:3"
        assert service["build"]["args"]["BUILD_IMAGE"] == "my/python:3"
    defaults = load(COMPOSE)["services"]
    assert defaults["nginx"]["image"].startswith("nginx:")
    assert all(
        s["build"]["args"]["BASE_IMAGE"].startswith("python:") for s in instances(defaults).values()
    )


def test_processors_compose_matches_the_competition_names() -> None:
    processors = load(PROCESSORS_COMPOSE)
    assert processors["networks"]["payment-processor"]["name"] == "payment-processor"
    services = processors["services"]
    assert set(services) == {"payment-processor-default", "payment-processor-fallback"}
    for name, fee in (
        ("payment-processor-default", "0.05"),
        ("payment-processor-fallback", "0.15"),
    ):
        command = services[name]["command"]
        assert command[:2] == ["rinha", "processor"]
        assert command[command.index("--port") + 1] == "8080"
        assert command[command.index("--fee") + 1] == fee
        assert command[command.index("--host") + 1] == "0.0.0.0"


def test_dockerfile_shape() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^ARG BASE_IMAGE=python:3\.\d+-slim$", text, re.M)
    stages = re.findall(r"^FROM \S+ AS (\S+)$", text, re.M)
    assert stages == ["deps", "build", "build-tools", "runtime", "processor", "service"]
    assert stages[-1] == "service", "the default target (the last stage) is the service"
    service = text.split("AS service", 1)[1]
    assert "COPY --from=build /opt/venv /opt/venv" in service, "the service venv, not the tools'"
    build = text.split("AS build\n", 1)[1].split("\nFROM ", 1)[0]
    assert "RINHA_SERVICE_ONLY=1 pip install" in build, "built without rinha.tools"
    assert "pip install" in text and "/opt/venv" in text
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0"), "runs as a non-root user"
    assert re.search(r'^CMD \["rinha", "serve"\]$', text, re.M)
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert "*" in ignore and "!rinha" in ignore and "!pyproject.toml" in ignore


def in_docker_context(path: str, patterns: list[str]) -> bool:
    """Does `path` (relative to the context) survive .dockerignore? The last pattern that
    matches the path or one of its parent directories decides; `**/` matches at any depth."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for pattern in patterns:
        keep = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes)
        if hit:
            included = keep
    return included


def test_the_docker_build_context_has_what_pip_install_needs() -> None:
    # the image is built by `pip install .` from this context: a file it reads that the
    # context leaves out fails the build (the data files did, once)
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = ["pyproject.toml", "setup.py", "README.md", "rinha/_fast.pyx", "rinha/_fast.pxd"]
    for files in project["tool"]["setuptools"].get("data-files", {}).values():
        needed += files
    for path in needed:
        assert (ROOT / path).is_file(), path
        assert in_docker_context(path, patterns), f"{path} is left out by .dockerignore"
    for left_out in ("tests/conftest.py", "rinha/__pycache__/x.pyc", "rinha/_fast.c", "bench"):
        assert not in_docker_context(left_out, patterns), left_out


def test_instances_map_one_id_table_on_a_shared_tmpfs_volume_big_enough(
    compose: dict, services: dict[str, dict]
) -> None:
    apis = instances(services)
    paths = {s["environment"].get("RINHA_IDS_PATH") for s in apis.values()}
    assert len(paths) == 1 and None not in paths, "one RINHA_IDS_PATH for all instances"
    directory = os.path.dirname(paths.pop())
    volumes = {mounts(s).get(directory) for s in apis.values()}
    assert len(volumes) == 1 and None not in volumes, f"one volume at {directory}"
    opts = (compose["volumes"][volumes.pop()] or {}).get("driver_opts") or {}
    assert opts.get("type") == "tmpfs"
    size = re.search(r"size=(\d+)m", opts.get("o", ""))
    # 8 bytes a slot, slots the power of two >= RINHA_MAX_IDS * 4/3 (default 1,000,000)
    max_ids = int(next(iter(apis.values()))["environment"].get("RINHA_MAX_IDS", 1_000_000))
    slots = 1 << (max_ids * 4 // 3 - 1).bit_length()
    assert size and int(size.group(1)) << 20 >= slots * 8 + 4096, "the id table must fit"
