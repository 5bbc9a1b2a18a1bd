"""`rinha serve` as a real process: start, serve, stop on SIGTERM with the queue drained."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid

import aiohttp
import pytest

pytestmark = pytest.mark.timeout(60)


async def spawn_serve(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rinha",
        "serve",
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def wait_for_socket(path: str, proc: asyncio.subprocess.Process) -> None:
    for _ in range(200):
        if os.path.exists(path):
            return
        if proc.returncode is not None:
            break
        await asyncio.sleep(0.05)
    _, err = await proc.communicate()
    raise AssertionError(f"rinha serve did not start: {err.decode()}")


async def test_sigterm_drains_queue_and_exits_zero(stack, tmp_path):
    sock = str(tmp_path / "api.sock")
    proc = await spawn_serve(
        {
            "RINHA_BIND": f"unix:{sock}",
            "RINHA_DEFAULT_URL": stack.default.url,
            "RINHA_FALLBACK_URL": stack.fallback.url,
            "RINHA_DATA_DIR": str(tmp_path / "data"),
        }
    )
    await wait_for_socket(sock, proc)
    # Nginx's worker shares the owner or the group; nobody else may connect
    assert os.stat(sock).st_mode & 0o777 == 0o660
    assert os.stat(tmp_path / "data" / "internal-0.sock").st_mode & 0o777 == 0o600
    await stack.configure(stack.default, delay=300)  # calls still in flight at SIGTERM
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=sock)) as session:
        for _ in range(10):
            body = {"correlationId": str(uuid.uuid4()), "amount": 1.00}
            async with session.post("http://x/payments", json=body) as r:
                assert r.status == 202
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    assert stack.default.state.payments == 10, "in-flight calls were not finished"
    assert not os.path.exists(sock)
    log = err.decode()
    assert "listening" in log and "stopped accepted=10" in log


async def test_bad_setting_exits_2_with_message():
    proc = await spawn_serve({"RINHA_MAX_IN_FLIGHT": "lots"})
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert "RINHA_MAX_IN_FLIGHT must be an integer" in err.decode()


async def test_help_lists_every_setting():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "rinha", "serve", "--help", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    from rinha.config import SETTINGS

    for _, env, _, _ in SETTINGS:
        assert env in out.decode()


# `rinha serve` in a process where the compiled module cannot be imported
WITHOUT_EXTENSION = (
    "import sys; sys.modules['rinha._fast'] = None; "
    "from rinha.__main__ import main; sys.exit(main(['serve']))"
)


async def test_refuses_to_start_without_the_compiled_module(tmp_path):
    sock = str(tmp_path / "api.sock")
    env = {k: v for k, v in os.environ.items() if k != "RINHA_NO_EXTENSIONS"}
    env["RINHA_BIND"] = f"unix:{sock}"
    env["RINHA_DATA_DIR"] = str(tmp_path / "data")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WITHOUT_EXTENSION, env=env, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2, err.decode()
    assert "not compiled" in err.decode() and "RINHA_NO_EXTENSIONS=1" in err.decode()

    env["RINHA_NO_EXTENSIONS"] = "1"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WITHOUT_EXTENSION, env=env, stderr=asyncio.subprocess.PIPE
    )
    await wait_for_socket(sock, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    assert "implementation=reference" in err.decode()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RINHA_DEFAULT_URL": "localhost"}, "RINHA_DEFAULT_URL: address must be"),
        ({"RINHA_BIND": "127.0.0.1:99999"}, "RINHA_BIND: port 99999"),
        ({"RINHA_LOG_LEVEL": "loud"}, "RINHA_LOG_LEVEL must be"),
        ({"RINHA_SOCKET_MODE": "0666"}, "world-writable"),
        ({"RINHA_JOURNAL_FSYNC": "sometimes"}, "RINHA_JOURNAL_FSYNC must be"),
    ],
)
async def test_a_bad_setting_is_one_line_naming_it_and_exit_2(env, message):
    proc = await spawn_serve(env)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


async def test_a_busy_port_is_a_message_not_a_traceback(tmp_path):
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    proc = await spawn_serve(
        {"RINHA_BIND": f"127.0.0.1:{port}", "RINHA_DATA_DIR": str(tmp_path / "data")}
    )
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    busy.close()
    assert proc.returncode == 2
    assert "cannot start" in err.decode() and "Traceback" not in err.decode()


async def test_json_logs_and_an_unreachable_processor_said_at_once(tmp_path):
    import json

    sock = str(tmp_path / "api.sock")
    proc = await spawn_serve(
        {
            "RINHA_BIND": f"unix:{sock}",
            "RINHA_LOG_FORMAT": "json",
            "RINHA_DATA_DIR": str(tmp_path / "data"),
            "RINHA_DEFAULT_URL": "http://127.0.0.1:1",
        }
    )
    await wait_for_socket(sock, proc)
    await asyncio.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    entries = [json.loads(line) for line in err.decode().splitlines()]
    assert any(
        e["message"].startswith("config ") and "RINHA_DEFAULT_URL" in e["message"] for e in entries
    )
    assert any(e["level"] == "WARNING" and "default unreachable" in e["message"] for e in entries)
