"""Polls each instance's GET /metrics (Prometheus text) during a run, over TCP or a unix socket."""

from __future__ import annotations

import http.client
import math
import socket
import threading
import time
from dataclasses import dataclass, field

from rinha.bench.machine import Jiffies, cpu_times


class PrometheusParseError(ValueError):
    pass


def _parse_labels(text: str, pos: int) -> tuple[dict[str, str], int]:
    """Labels from `{` at text[pos]; returns them and the index after the closing `}`."""
    labels: dict[str, str] = {}
    i = pos + 1
    n = len(text)
    while True:
        while i < n and text[i] in " ,":
            i += 1
        if i < n and text[i] == "}":
            return labels, i + 1
        eq = text.find("=", i)
        if eq < 0:
            raise PrometheusParseError(f"label without '=': {text!r}")
        name = text[i:eq].strip()
        i = eq + 1
        while i < n and text[i] == " ":
            i += 1
        if i >= n or text[i] != '"':
            raise PrometheusParseError(f"unquoted label value: {text!r}")
        i += 1
        value = []
        while i < n and text[i] != '"':
            if text[i] == "\\" and i + 1 < n:
                i += 1
                value.append({"n": "\n", "\\": "\\", '"': '"'}.get(text[i], "\\" + text[i]))
            else:
                value.append(text[i])
            i += 1
        if i >= n:
            raise PrometheusParseError(f"unterminated label value: {text!r}")
        labels[name] = "".join(value)
        i += 1


def _parse_value(token: str) -> float:
    special = {"+Inf": math.inf, "Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    if token in special:
        return special[token]
    return float(token)


def sample_key(name: str, labels: dict[str, str]) -> str:
    """`name` or `name{a="x",b="y"}` with labels sorted: one flat key per series."""
    if not labels:
        return name
    inner = ",".join(f'{k}="{labels[k]}"' for k in sorted(labels))
    return f"{name}{{{inner}}}"


def parse_prometheus(text: str) -> dict[str, float]:
    """Prometheus text exposition → {series key: value}; comments and timestamps are dropped."""
    out: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        brace = line.find("{")
        space = line.find(" ")
        if brace >= 0 and (space < 0 or brace < space):
            name = line[:brace]
            labels, end = _parse_labels(line, brace)
            rest = line[end:].split()
        else:
            name, *rest = line.split()
            labels = {}
        if not rest:
            raise PrometheusParseError(f"sample without a value: {raw!r}")
        try:
            out[sample_key(name.strip(), labels)] = _parse_value(rest[0])
        except ValueError as exc:
            raise PrometheusParseError(f"bad value in {raw!r}") from exc
    return out


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def connection_for(address: str, timeout: float = 0.5) -> http.client.HTTPConnection:
    """`unix:/path.sock`, `http://host:port` or `host:port` → a keep-alive HTTP connection."""
    if address.startswith("unix:"):
        return _UnixHTTPConnection(address[5:], timeout)
    hostport = address.removeprefix("http://").rstrip("/")
    host, _, port = hostport.rpartition(":")
    return http.client.HTTPConnection(host or "127.0.0.1", int(port), timeout=timeout)


@dataclass
class Sample:
    t: float  # epoch seconds
    instance: int
    values: dict[str, float]


@dataclass
class MetricsSampler:
    """A daemon thread that GETs /metrics from every address every `interval` seconds, and
    reads the machine's steal counters at the same pace."""

    addresses: list[str]
    interval: float = 0.25
    samples: list[Sample] = field(default_factory=list)
    machine: list[tuple[float, Jiffies]] = field(default_factory=list)  # (epoch s, jiffies)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _get(self, conns: list[http.client.HTTPConnection | None], i: int) -> dict[str, float]:
        conn = conns[i]
        if conn is None:
            conn = conns[i] = connection_for(self.addresses[i])
        try:
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise OSError(f"status {resp.status}")
        except (OSError, http.client.HTTPException):
            conn.close()
            conns[i] = None
            raise
        return parse_prometheus(body.decode("utf-8", "replace"))

    def _run(self) -> None:
        conns: list[http.client.HTTPConnection | None] = [None] * len(self.addresses)
        next_at = time.monotonic()
        while not self._stop.is_set():
            for i in range(len(self.addresses)):
                try:
                    values = self._get(conns, i)
                except (OSError, http.client.HTTPException, PrometheusParseError):
                    self.errors += 1
                    continue
                self.samples.append(Sample(time.time(), i, values))
            if (jiffies := cpu_times()) is not None:
                self.machine.append((time.time(), jiffies))
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        for conn in conns:
            if conn is not None:
                conn.close()

    def start(self) -> MetricsSampler:
        if self.addresses:
            self._thread = threading.Thread(target=self._run, name="metrics-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def latest(self) -> dict[int, dict[str, float]]:
        out: dict[int, dict[str, float]] = {}
        for s in reversed(self.samples):
            out.setdefault(s.instance, s.values)
            if len(out) == len(self.addresses):
                break
        return out
