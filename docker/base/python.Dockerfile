# Local stand-in for python:*-slim: Debian bookworm + python3 (see docker/build-base-images.sh).
ARG MINBASE=rinha-local/bookworm:minbase
FROM ${MINBASE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/*
