"""A transport that records what a protocol writes, and when it is closed (loop time), for the
protocol tests (no socket)."""

from __future__ import annotations

import asyncio


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.closed_at: float | None = None  # loop time of close() or abort()
        self.aborted = False

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    def write(self, data: bytes) -> None:  # type: ignore[override]
        assert not self.closed, "write after close"
        self.data += data

    def close(self) -> None:
        if self.closed_at is None:
            self.closed_at = asyncio.get_running_loop().time()

    def abort(self) -> None:
        self.close()
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass
