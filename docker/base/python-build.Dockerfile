# Build base: the local python image plus what `pip install .` needs to compile the extension.
ARG PYTHON_IMAGE=rinha-local/python:bookworm
FROM ${PYTHON_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv python3-dev gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
