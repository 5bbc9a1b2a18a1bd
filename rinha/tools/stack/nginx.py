"""Nginx for `rinha up`: where its binary and its config template are, and the config rendered
for the instances' sockets."""

from __future__ import annotations

import os
import sys

from rinha.tools.stack.config import StackError

TEMPLATE_NAME = "nginx.conf.template"
NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


class NginxNotFound(StackError):
    """No nginx binary on this machine."""


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


def source_root() -> str:
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
        os.path.join(source_root(), "nginx", TEMPLATE_NAME),
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
