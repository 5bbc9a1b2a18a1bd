"""`make submission`: the contest bundle (docker/submission.py) is complete and valid."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docker" / "submission.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120
    )


def test_the_bundle_holds_what_the_contest_asks_and_no_source(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    done = run("--image", "ghcr.io/someone/rinha:1.2.3", "--out", str(out))
    assert done.returncode == 0, done.stderr
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "docker-compose.yml",
        "info.json",
        "nginx/docker-entrypoint.sh",
        "nginx/nginx.conf.template",
    ]
    compose = yaml.safe_load((out / "docker-compose.yml").read_text())
    assert all("build" not in s for s in compose["services"].values())
    assert not any(key.startswith("x-") for key in compose)
    info = json.loads((out / "info.json").read_text())
    assert info["load-balancers"] == ["nginx"] and "python" in info["langs"]
    # the Nginx service mounts ./nginx: the bundle's own copy
    assert "./nginx:/etc/rinha/nginx:ro" in compose["services"]["nginx"]["volumes"]
    if "not validated" not in done.stdout:
        assert "docker compose config: ok" in done.stdout


@pytest.mark.parametrize("image", ["", "rinha:local", "ghcr.io/someone/rinha"])
def test_an_image_that_cannot_be_pulled_is_refused(tmp_path: Path, image: str) -> None:
    done = run("--image", image, "--out", str(tmp_path / "bundle"))
    assert done.returncode == 2 and "REGISTRY/NAME:TAG" in done.stderr
    assert not (tmp_path / "bundle").exists()
