#!/usr/bin/env bash
# `make compose-test`: the Docker Compose stack for real (see docker/compose_test.py --help).
set -euo pipefail
exec python3 "$(dirname "$0")/compose_test.py" "$@"
