"""rinha.tools.bench.noop, the stand-in instance of `rinha bench --floor`."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest

from rinha.tools.bench import noop
from rinha.tools.bench.runner import _Run


def test_noop_answers_every_request_at_once_pipelined(tmp_path: Path) -> None:
    path = str(tmp_path / "noop.sock")

    async def scenario() -> bytes:
        server = asyncio.create_task(noop.serve(f"unix:{path}"))
        for _ in range(100):
            if Path(path).exists():
                break
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_unix_connection(path)
        body = b'{"correlationId":"x","amount":1}'
        writer.write(
            b"POST /payments HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
            + b"GET /payments-summary HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        await writer.drain()
        want = len(noop.ACCEPTED) + len(noop.EMPTY_SUMMARY)
        got = b""
        while len(got) < want:
            chunk = await asyncio.wait_for(reader.read(4096), 5)
            assert chunk, "connection closed early"
            got += chunk
        writer.close()
        server.cancel()
        return got

    assert asyncio.run(scenario()) == noop.ACCEPTED + noop.EMPTY_SUMMARY


def test_noop_usage() -> None:
    assert noop.main(["noop"]) == 2
    assert noop.main(["noop", "serve", "extra"]) == 2


def test_floor_needs_a_stack_of_its_own(tmp_path: Path) -> None:
    args = argparse.Namespace(
        url="http://127.0.0.1:1",
        floor=True,
        default_url="d",
        fallback_url="f",
        metrics=None,
        pids=None,
    )
    with pytest.raises(SystemExit, match="--floor"):
        _Run(args).start_stack(tmp_path)
