"""`rinha processor` as a process: starts, answers, stops on SIGTERM with exit code 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.mark.timeout(20)
@pytest.mark.parametrize("entry", [["-m", "rinha", "processor"], ["-m", "rinha.tools.emulator"]])
def test_cli_serves_until_sigterm(entry: list[str]) -> None:
    cmd = [sys.executable, *entry, "--port", "0", "--delay-ms", "7", "--failure"]
    with subprocess.Popen(
        cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            started = json.loads(line)
            assert started["event"] == "processor_started"
            url = started["url"] + "/payments/service-health"
            with urllib.request.urlopen(url, timeout=5) as resp:
                assert json.load(resp) == {"failing": True, "minResponseTime": 7}
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            assert json.loads(proc.stdout.readline())["event"] == "processor_stopped"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_import_is_cheap() -> None:
    code = "import sys, rinha.tools.emulator; sys.exit('aiohttp' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env()).returncode == 0
