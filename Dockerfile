# rinha service image: `rinha serve` alone in a venv (default target); `--target processor`
# builds the emulated Payment Processor (`rinha processor`) for local stacks.
#
# BASE_IMAGE is the runtime base; BUILD_IMAGE (default: the same) must carry the same
# Python at the same path, because the venv's interpreter is a symlink into it. Works with
# python:*-slim (the default) and with a Debian bookworm image that has python3 (+ python3-venv
# in the build image); docker/build-base-images.sh makes such images without Docker Hub.
ARG BASE_IMAGE=python:3.12-slim
ARG BUILD_IMAGE=${BASE_IMAGE}

FROM ${BUILD_IMAGE} AS deps
# the Cython extension needs a C compiler; python:*-slim has the headers but no gcc
# hadolint ignore=DL3008
RUN if ! command -v gcc >/dev/null 2>&1; then \
        apt-get update \
        && apt-get install -y --no-install-recommends gcc libc6-dev \
        && rm -rf /var/lib/apt/lists/*; \
    fi
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
WORKDIR /src
# dependencies first (build requirements included), so that a code change reuses this layer;
# their versions pinned by constraints.txt, the ones the tests ran with
COPY pyproject.toml constraints.txt ./
RUN python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb")); print("\n".join(p["build-system"]["requires"] + p["project"]["dependencies"]))' >/tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt
COPY . .

# the service alone (no rinha.tools, no aiohttp); it must run the compiled hot paths, never
# silently the pure-Python twin
FROM deps AS build
RUN RINHA_SERVICE_ONLY=1 pip install --no-deps --no-build-isolation . \
    && pip uninstall -y Cython \
    && python3 -I -c 'import importlib.util as u, rinha._fast; assert not u.find_spec("rinha.tools")'

# the service and its tools (`rinha processor`: the emulated processors of docker/)
FROM deps AS build-tools
RUN python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb")); print("\n".join(p["project"]["optional-dependencies"]["tools"]))' >/tmp/tools.txt \
    && pip install -c constraints.txt -r /tmp/tools.txt \
    && pip install --no-deps --no-build-isolation . \
    && pip uninstall -y Cython \
    && python3 -I -c 'import rinha._fast, rinha.tools.emulator.app'

FROM ${BASE_IMAGE} AS runtime
# /sockets: the clients' sockets, reachable by the group 101 of the nginx images' worker;
# /data: journals, id table and the instances' internal sockets, theirs alone. Docker copies
# these owners and modes onto empty named volumes mounted there (docker-compose.yml).
RUN groupadd --gid 10001 rinha \
    && useradd --uid 10001 --gid rinha --no-create-home --shell /usr/sbin/nologin rinha \
    && install -d -o rinha -g 101 -m 0750 /sockets \
    && install -d -o rinha -g rinha -m 0700 /data
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /sockets

# `--target processor`: the emulated Payment Processor (docker/processors-compose.yml)
FROM runtime AS processor
COPY --from=build-tools /opt/venv /opt/venv
CMD ["rinha", "processor", "--host", "0.0.0.0", "--port", "8080"]

# the default target, last: the service image the contest runs
FROM runtime AS service
COPY --from=build /opt/venv /opt/venv
CMD ["rinha", "serve"]
