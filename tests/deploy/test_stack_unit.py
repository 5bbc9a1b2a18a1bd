"""rinha/tools/stack/ without starting a stack: errors, helpers, the CLI's refusals."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

import rinha.tools.stack as stack
from rinha.__main__ import main
from rinha.tools.stack import NginxNotFound, Stack, StackConfig, StackError
from rinha.tools.stack import nginx as stack_nginx
from rinha.tools.stack.processes import describe_exit


def test_missing_nginx_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(stack_nginx, "NGINX_CANDIDATES", ())
    with pytest.raises(NginxNotFound, match="apt-get install nginx"):
        stack.find_nginx()


def test_rinha_up_without_nginx_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(stack_nginx, "NGINX_CANDIDATES", ())
    assert main(["up", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "nginx not found" in err and "apt-get install nginx" in err


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"instances": 0}, "at least 1"),
        ({"default_url": "http://127.0.0.1:1"}, "both --default-url and --fallback-url"),
    ],
)
def test_bad_configs_are_refused(tmp_path, overrides, message) -> None:  # type: ignore[no-untyped-def]
    s = Stack(StackConfig(nginx="/bin/false", run_dir=str(tmp_path)), **overrides)
    with pytest.raises(StackError, match=message):
        s.start()
    assert s.children == []


def test_unknown_override_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        Stack(portt=1)


def test_busy_port_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        s = Stack(StackConfig(port=port, nginx="/bin/false", run_dir=str(tmp_path)))
        with pytest.raises(StackError, match="already in use"):
            s.start()
    assert s.children == []


def test_a_child_dying_at_start_is_named_and_the_rest_stopped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A 'python' that fails at once: the first processor is reported with its exit code."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    s = Stack(
        StackConfig(
            port=0,
            default_port=0,
            fallback_port=0,
            python=str(fake),
            nginx="/bin/false",
            run_dir=str(tmp_path / "run"),
        )
    )
    with pytest.raises(
        StackError,
        match=r"default \(processor, pid \d+\) exited during "
        r"start-up with exit code 3",
    ):
        s.start()
    assert s.children == []


def test_describe_exit() -> None:
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(-9) == "killed by SIGKILL"


def test_import_is_cheap() -> None:
    """`rinha serve` imports every subcommand module: ours must not drag subprocess & co."""
    code = (
        "import sys; before = set(sys.modules); import rinha.tools.stack; "
        "heavy = {'subprocess', 'tempfile', 'shutil', 'urllib.request', 'socket', 'asyncio'}; "
        "print(sorted(heavy & (set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


def test_a_live_socket_in_the_run_dir_is_refused_and_left_alone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "api1.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(str(path))
        other.listen()
        s = Stack(
            StackConfig(
                port=0,
                default_url="http://127.0.0.1:1",
                fallback_url="http://127.0.0.1:2",
                nginx="/bin/false",
                run_dir=str(tmp_path),
            )
        )
        with pytest.raises(StackError, match="in use by another process"):
            s.start()
        assert path.exists(), "another stack's socket must survive our failed start"


def test_backoff_doubles_up_to_the_cap_and_starts_over_after_a_healthy_spell() -> None:
    b = stack.Backoff(first=0.5, cap=10.0, reset_after=30.0)
    # crashing within seconds of each start: 0.5 s, doubling, then 10 s every time
    assert [b.delay(uptime=1.0) for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    # up for 30 s: healthy then broken, the schedule starts over
    assert b.delay(uptime=30.0) == 0.5
    assert b.delay(uptime=29.9) == 1.0
    assert [stack.Backoff().delay(0.0) for _ in range(2)] == [0.5, 0.5], "defaults, per instance"


def test_run_and_data_dirs_reachable_by_others_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    for field in ("run_dir", "data_dir"):
        s = Stack(
            StackConfig(port=0, nginx="/bin/false", run_dir=str(tmp_path / "run")),
            **{field: str(shared)},
        )
        with pytest.raises(StackError, match=r"mode 0755: other users could reach"):
            s.start()
        assert s.children == []
    made = tmp_path / "new" / "data"
    s = Stack(
        StackConfig(
            port=0,
            nginx="/bin/false",
            run_dir=str(tmp_path / "run"),
            default_url="http://127.0.0.1:1",
            fallback_url="http://127.0.0.1:2",
            python="/bin/false",
            data_dir=str(made),
        )
    )
    with pytest.raises(StackError):
        s.start()  # the instance (/bin/false) exits at once: the dirs were made before it
    assert made.stat().st_mode & 0o777 == 0o700


def test_data_dir_defaults() -> None:
    assert stack._default_data_dir("/srv/run", 9999) == "/srv/run/data"
    assert stack._default_data_dir(None, 9999) == "/tmp/rinha-up-9999"  # kept after stop
    assert stack._default_data_dir(None, 0) is None  # the temp run dir's, removed with it


def test_too_long_socket_paths_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    deep = tmp_path / ("d" * 100)
    s = Stack(
        StackConfig(port=0, nginx="/bin/false", run_dir=str(tmp_path / "run"), data_dir=str(deep))
    )
    with pytest.raises(StackError, match="longer than 107 bytes"):
        s.start()
    assert s.children == []


def test_a_live_internal_socket_in_the_data_dir_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two stacks on one data dir would write the same journals."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    path = data / "internal-1.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(str(path))
        other.listen()
        s = Stack(
            StackConfig(
                port=0, nginx="/bin/false", run_dir=str(tmp_path / "run"), data_dir=str(data)
            )
        )
        with pytest.raises(StackError, match="internal-1.sock is in use by another process"):
            s.start()
        assert path.exists()
    assert s.children == []


def test_cli_up_has_data_dir_and_no_restart() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    stack.add_parser(parser.add_subparsers())
    args = parser.parse_args(["up", "--data-dir", "/d", "--no-restart"])
    assert args.data_dir == "/d" and args.no_restart
    args = parser.parse_args(["up"])
    assert args.data_dir is None and not args.no_restart


def test_setup_py_ships_every_tools_package() -> None:
    """A package missing from setup.py's list is left out of the wheel (`rinha up` breaks)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    text = (root / "setup.py").read_text(encoding="utf-8")
    packages = [
        ".".join(init.parent.relative_to(root).parts)
        for init in sorted((root / "rinha" / "tools").rglob("__init__.py"))
    ]
    assert "rinha.tools.stack" in packages
    for name in packages:
        assert f'"{name}"' in text, f"setup.py does not list {name}"


def test_connects_to_unix_sockets_and_tcp_ports_through_address(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rinha.tools.stack.processes import connects

    path = tmp_path / "s.sock"
    assert not connects(f"unix:{path}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix, socket.socket() as tcp:
        unix.bind(str(path))
        unix.listen()
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        port = tcp.getsockname()[1]
        assert connects(f"unix:{path}")
        assert connects(f"127.0.0.1:{port}") and connects(f"http://127.0.0.1:{port}")
    assert not connects(f"127.0.0.1:{port}")
    with pytest.raises(ValueError):
        connects("no-port")
