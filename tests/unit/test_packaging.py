"""The version is written once (rinha.__version__): the installed metadata, `rinha --version`
and pyproject.toml agree with it; the pins of constraints.txt and the dev extra are exact; the
service (rinha/*) imports nothing from its tools (rinha/tools/), and builds without them."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import rinha

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# runtime dependencies and the build's; constraints.txt pins each of them
PINNED = ("uvloop", "httptools", "orjson", "aiohttp", "cython", "setuptools")
LINT_TOOLS = ("ruff", "mypy")


def _name(requirement: str) -> str:
    return Requirement(requirement).name.lower()


def _constraints() -> dict[str, Requirement]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    reqs = [Requirement(line.split("#")[0]) for line in lines if line.split("#")[0].strip()]
    return {r.name.lower(): r for r in reqs}


def test_version_is_a_release_number() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", rinha.__version__)


def test_installed_metadata_has_the_package_version() -> None:
    assert importlib.metadata.version("rinha") == rinha.__version__


def test_pyproject_reads_the_version_from_the_package() -> None:
    assert "version" not in PYPROJECT["project"]
    assert "version" in PYPROJECT["project"]["dynamic"]
    dynamic = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "rinha.__version__"}


def _printed_version(*command: str) -> str:
    run = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_module_prints_its_version() -> None:
    assert _printed_version(sys.executable, "-m", "rinha") == f"rinha {rinha.__version__}\n"


def test_console_script_prints_its_version() -> None:
    script = Path(sysconfig.get_path("scripts")) / "rinha"
    if not script.exists():
        pytest.skip(f"no console script at {script} (rinha is not installed in this Python)")
    assert _printed_version(str(script)) == f"rinha {rinha.__version__}\n"


def test_license_is_mit_and_shipped() -> None:
    assert PYPROJECT["project"]["license"] == "MIT"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 the rinha authors" in text


def test_changelog_has_unreleased_and_the_current_version() -> None:
    headings = re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert headings[0] == "Unreleased"
    assert rinha.__version__ in headings


def test_constraints_pin_every_runtime_and_build_dependency_exactly() -> None:
    pins = _constraints()
    for name in PINNED:
        assert name in pins, f"constraints.txt does not pin {name}"
        (spec,) = pins[name].specifier
        assert spec.operator == "==", f"{name} is not pinned exactly: {pins[name]}"
    extras = PYPROJECT["project"]["optional-dependencies"]
    declared = (
        PYPROJECT["project"]["dependencies"]
        + PYPROJECT["build-system"]["requires"]
        + extras["tools"]
    )
    for requirement in map(Requirement, declared):
        pin = pins[requirement.name.lower()]
        version = next(iter(pin.specifier)).version
        assert requirement.specifier.contains(version), f"{pin} is outside {requirement}"


def test_lint_tools_are_pinned_in_the_dev_extra() -> None:
    dev = {_name(r): Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["dev"]}
    for tool in LINT_TOOLS:
        (spec,) = dev[tool].specifier
        assert spec.operator == "==", f"{tool} is not pinned in the dev extra: {dev[tool]}"


def test_pre_commit_hooks_use_the_virtualenvs_pinned_tools() -> None:
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert {"ruff-check", "ruff-format", "mypy"} <= set(hooks)
    for hook in hooks.values():
        assert hook["language"] == "system"
        assert hook["entry"].startswith(".venv/bin/")


SERVICE_MODULES = sorted(p for p in (ROOT / "rinha").glob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    """Every module an `import` / `from ... import` in `path` names, relative ones resolved."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "rinha." * (node.level > 0) + (node.module or "")
            names.add(base.rstrip("."))
            names.update(f"{base.rstrip('.')}.{alias.name}" for alias in node.names)
    return names


def test_the_service_imports_nothing_from_the_tools() -> None:
    assert len(SERVICE_MODULES) > 10
    for path in SERVICE_MODULES:
        tools = {m for m in _imported_modules(path) if m.startswith("rinha.tools")}
        assert not tools, f"{path.name} imports {sorted(tools)}"
        assert "aiohttp" not in {m.split(".")[0] for m in _imported_modules(path)}, path.name


def test_serving_loads_neither_the_tools_nor_aiohttp() -> None:
    code = (
        "import sys, rinha.server, rinha.app, rinha.protocol, rinha.health, rinha.metrics\n"
        "bad = [m for m in sys.modules if m.startswith('rinha.tools') or m == 'aiohttp']\n"
        "print(bad)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_service_only_wheel_holds_no_tools(tmp_path: Path) -> None:
    """RINHA_SERVICE_ONLY=1 (what the Docker image builds): rinha/ without rinha/tools/."""
    env = dict(os.environ, RINHA_SERVICE_ONLY="1")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("rinha-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "rinha/server.py" in names
    assert any(n.startswith("rinha/_fast.") and n.endswith(".so") for n in names)
    assert not [n for n in names if n.startswith("rinha/tools")]
    requires = next(n for n in names if n.endswith("METADATA"))
    metadata = zipfile.ZipFile(wheel).read(requires).decode()
    runtime = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert not [line for line in runtime if "aiohttp" in line and "extra ==" not in line]


def test_a_build_without_the_tools_says_so_and_exits_2() -> None:
    """The service-only image: `rinha up` names the extra instead of a traceback."""
    code = (
        "import sys, importlib.abc\n"
        "class NoTools(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.startswith('rinha.tools'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoTools())\n"
        "from rinha.__main__ import main\n"
        "sys.exit(main(['up']))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert "rinha[tools]" in run.stderr and "Traceback" not in run.stderr
    helped = subprocess.run(
        [sys.executable, "-c", code.replace("main(['up'])", "main(['--help'])")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert helped.returncode == 0 and "serve" in helped.stdout and "unavailable" in helped.stdout
