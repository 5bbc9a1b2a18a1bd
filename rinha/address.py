"""`Address`: where something listens, written `unix:/path.sock`, `host:port` or
`http://host:port`. The one parser for the binds, the processors' URLs, the peers and the tools'
targets."""

from __future__ import annotations

import socket
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Address:
    """A unix socket path, or a host and a TCP port (never both)."""

    host: str | None
    port: int | None
    unix_path: str | None

    @classmethod
    def parse(cls, text: str) -> Address:
        """ValueError (saying what is expected) for anything else; a port in 0..65535."""
        if text.startswith("unix:"):
            path = text[5:]
            if not path:
                raise ValueError(f"empty unix socket path in {text!r}")
            return cls(None, None, path)
        rest = text.removeprefix("http://").rstrip("/")
        host, sep, port = rest.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"address must be http://host:port or unix:/path, got {text!r}")
        if int(port) > 65535:
            raise ValueError(f"port {port} is not in 0..65535")
        return cls(host, int(port), None)

    @property
    def host_header(self) -> str:
        return "localhost" if self.unix_path else f"{self.host}:{self.port}"

    def connect(self, timeout: float) -> socket.socket:
        """A connected blocking socket (OSError when nothing listens there)."""
        if self.unix_path is None:
            return socket.create_connection((self.host or "", self.port or 0), timeout=timeout)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        return sock

    def __str__(self) -> str:
        return f"unix:{self.unix_path}" if self.unix_path else f"http://{self.host}:{self.port}"
