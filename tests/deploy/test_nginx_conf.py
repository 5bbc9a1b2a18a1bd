"""The one Nginx config (nginx/nginx.conf.template): both renderers agree and `nginx -t` passes."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from rinha.tools.stack import NginxNotFound, find_nginx, render_nginx_conf

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "nginx" / "docker-entrypoint.sh"


def nginx_or_skip() -> str:
    try:
        return find_nginx()
    except NginxNotFound as exc:
        pytest.skip(f"{exc} (CI installs it)")


def code_lines(conf: str) -> list[str]:
    return [ln.strip() for ln in conf.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def block(lines: list[str], opening: str) -> list[str]:
    """The directives inside the block that opens with the line `opening` (nested ones too)."""
    start = lines.index(opening)
    depth = 0
    for i in range(start, len(lines)):
        depth += lines[i].count("{") - lines[i].count("}")
        if depth == 0:
            return lines[start + 1 : i]
    raise AssertionError(f"{opening!r} is never closed")


def top_level(lines: list[str]) -> list[str]:
    """`lines` without the nested blocks."""
    out, depth = [], 0
    for line in lines:
        if depth == 0 and "{" not in line:
            out.append(line)
        depth += line.count("{") - line.count("}")
    return out


def render(tmp_path: Path, user: str | None = None, listen: str = "127.0.0.1:9999") -> str:
    return render_nginx_conf(
        ["unix:/run/x/api1.sock", "unix:/run/x/api2.sock"],
        listen=listen,
        pid=str(tmp_path / "nginx.pid"),
        temp=str(tmp_path / "temp"),
        user=user,
    )


def test_rendered_config_has_what_the_design_needs(tmp_path: Path) -> None:
    lines = code_lines(render(tmp_path))
    text = "\n".join(lines)
    assert "${" not in text
    for needed in (
        "worker_processes 1;",
        "daemon off;",
        "error_log stderr warn;",
        "access_log off;",
        "least_conn;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_buffering off;",
        "listen 127.0.0.1:9999 backlog=4096;",
        f"pid {tmp_path}/nginx.pid;",
    ):
        assert needed in lines, f"missing: {needed}"
    assert re.search(r"^keepalive \d+;$", text, re.M), "upstream keepalive"
    # the internal instance-to-instance routes are never proxied
    assert block(lines, "location /internal/ {") == ["return 404;"]
    assert not any(ln.startswith("user ") for ln in lines)
    assert "user root;" in code_lines(render(tmp_path, user="root"))


def test_a_restarting_instance_is_skipped_then_used_again_soon(tmp_path: Path) -> None:
    upstream = block(code_lines(render(tmp_path)), "upstream rinha {")
    servers = [ln for ln in upstream if ln.startswith("server ")]
    # one refused connect() puts an instance aside for 1 s only (Nginx's default: 10 s)
    assert servers == [
        "server unix:/run/x/api1.sock max_fails=1 fail_timeout=1s;",
        "server unix:/run/x/api2.sock max_fails=1 fail_timeout=1s;",
    ]
    # a POST already sent is never sent again to another instance (it may have been accepted)
    assert not any("non_idempotent" in ln for ln in code_lines(render(tmp_path)))


def test_summaries_are_capped_and_payments_are_not(tmp_path: Path) -> None:
    lines = code_lines(render(tmp_path))
    zone = [ln for ln in lines if ln.startswith("limit_conn_zone ")]
    assert len(zone) == 1
    key, name = zone[0].split()[1], zone[0].split()[2].removeprefix("zone=").split(":")[0]
    # an empty key is not counted: $server_name is empty here (no server_name), a constant is not
    assert "$" not in key, zone
    summary = block(lines, "location = /payments-summary {")
    assert f"limit_conn {name} 64;" in summary
    assert "limit_conn_status 503;" in summary
    assert "proxy_pass http://rinha;" in summary
    payments = block(lines, "location / {")
    assert payments == ["proxy_pass http://rinha;"], "nothing more on the payments' path"
    server = top_level(block(lines, "server {"))
    assert not any(ln.startswith("limit_") for ln in server), "no limit outside the summary"
    # what both proxied locations inherit from the server block
    for needed in (
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_buffering off;",
        "proxy_request_buffering off;",
    ):
        assert needed in server, needed


def test_render_rejects_no_upstreams(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        render_nginx_conf([], listen="1", pid="p", temp="t")


def _fake_nginx(bin_dir: Path) -> Path:
    """An `nginx` that records its arguments instead of serving."""
    record = bin_dir / "nginx.args"
    fake = bin_dir / "nginx"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n', encoding="utf-8")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return record


def _bound_unix_socket(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    return s


def test_docker_entrypoint_renders_the_same_config(tmp_path: Path) -> None:
    """The shell renderer (Docker) and the Python one (`rinha up`) give the same file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = _fake_nginx(bin_dir)
    out_dir = tmp_path / "out"
    socks = [tmp_path / "api1.sock", tmp_path / "api2.sock"]
    listeners = [_bound_unix_socket(p) for p in socks]
    try:
        env = dict(
            os.environ,
            PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            RINHA_LISTEN="9999",
            RINHA_UPSTREAMS=" ".join(f"unix:{p}" for p in socks),
            RINHA_NGINX_USER="nginx",
            RINHA_NGINX_DIR=str(out_dir),
        )
        res = subprocess.run(
            ["sh", str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=30
        )
    finally:
        for s in listeners:
            s.close()
    assert res.returncode == 0, res.stderr
    args = record.read_text(encoding="utf-8").split()
    conf_path = out_dir / "nginx.conf"
    assert args == ["-e", "stderr", "-p", str(out_dir), "-c", str(conf_path)]
    assert (out_dir / "temp").is_dir()
    expected = render_nginx_conf(
        [f"unix:{p}" for p in socks],
        listen="9999",
        pid=f"{out_dir}/nginx.pid",
        temp=f"{out_dir}/temp",
        user="nginx",
    )
    assert code_lines(conf_path.read_text(encoding="utf-8")) == code_lines(expected)
    assert "user nginx;" in code_lines(expected)


def test_docker_entrypoint_needs_upstreams(tmp_path: Path) -> None:
    env = dict(os.environ, RINHA_NGINX_DIR=str(tmp_path))
    env.pop("RINHA_UPSTREAMS", None)
    res = subprocess.run(
        ["sh", str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=30
    )
    assert res.returncode != 0
    assert "RINHA_UPSTREAMS" in res.stderr


def nginx_test(tmp_path: Path, config: str) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on `config`, with tmp_path as the prefix (temp dirs under tmp_path/temp)."""
    nginx = nginx_or_skip()
    (tmp_path / "temp").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(config, encoding="utf-8")
    return subprocess.run(
        [nginx, "-t", "-e", "stderr", "-p", str(tmp_path), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_nginx_accepts_the_rendered_config(tmp_path: Path) -> None:
    res = nginx_test(tmp_path, render(tmp_path, user="root" if os.geteuid() == 0 else None))
    assert res.returncode == 0, res.stderr
    assert "test is successful" in res.stderr
    assert "[warn]" not in res.stderr, res.stderr


def test_nginx_accepts_the_docker_rendered_config(tmp_path: Path) -> None:
    """The config the Docker entrypoint writes (no `user`, listen on all addresses)."""
    res = nginx_test(tmp_path, render(tmp_path, listen="9999"))
    assert res.returncode == 0, res.stderr
