#!/usr/bin/env bash
# Build the local base images (no Docker Hub needed): a debootstrapped Debian bookworm
# minbase, then python3 / python3 build tools / nginx on top of it.
#   rinha-local/bookworm:minbase      debootstrap --variant=minbase, imported
#   rinha-local/python:bookworm       + python3                     (runtime base)
#   rinha-local/python-build:bookworm + python3-venv python3-dev gcc (build base)
#   rinha-local/nginx:bookworm        + nginx
# Images already present are kept; FORCE=1 rebuilds them all.
# Needs: root, debootstrap, a running engine (DOCKER_HOST), HTTP access to a Debian mirror.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# CA certificates of this machine that a container also needs (e.g. a TLS-intercepting
# egress proxy); every *.crt here is installed into the images. Empty = none.
extra_ca_dir=${RINHA_EXTRA_CA_DIR-/usr/local/share/ca-certificates}
force=${FORCE:-0}

have() { [ "$force" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

step() { # step NAME CMD... : run CMD and print how long it took
    local name=$1 t0=$EPOCHREALTIME
    shift
    "$@"
    awk -v n="$name" -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "[base] %-28s %6.1fs\n", n, b - a }'
}

make_minbase() {
    local root
    root=$(mktemp -d /var/tmp/rinha-rootfs.XXXXXX)
    chmod 0755 "$root"  # becomes the image's /: mktemp made it 0700
    debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$mirror" \
        >"$root.log" 2>&1 || { tail -20 "$root.log"; return 1; }
    rm -f "$root.log"
    if [ -n "$extra_ca_dir" ] && compgen -G "$extra_ca_dir/*.crt" >/dev/null; then
        cp "$extra_ca_dir"/*.crt "$root/usr/local/share/ca-certificates/"
        chroot "$root" update-ca-certificates >/dev/null 2>&1
    fi
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change 'CMD ["/bin/bash"]' - rinha-local/bookworm:minbase >/dev/null
    rm -rf "$root"
}

build() { # build TAG DOCKERFILE  (host network: the engine may have no bridge for builds)
    local log
    log=$(mktemp)
    if ! docker build --network host -t "$1" -f "$here/base/$2" "$here/base" >"$log" 2>&1; then
        tail -30 "$log"
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}

have rinha-local/bookworm:minbase || step "debootstrap+import minbase" make_minbase
have rinha-local/python:bookworm || step "python:bookworm" build rinha-local/python:bookworm python.Dockerfile
have rinha-local/python-build:bookworm || step "python-build:bookworm" build rinha-local/python-build:bookworm python-build.Dockerfile
# an nginx image built before it had the user `nginx` (gid 101, the sockets' group) is rebuilt
nginx_user() { docker run --rm --entrypoint id rinha-local/nginx:bookworm -g nginx 2>/dev/null; }
if ! have rinha-local/nginx:bookworm || [ "$(nginx_user)" != 101 ]; then
    step "nginx:bookworm" build rinha-local/nginx:bookworm nginx.Dockerfile
fi
