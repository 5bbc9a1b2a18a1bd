"""Polls each instance's GET /metrics (Prometheus text) during a run, over TCP or a unix socket."""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field

from rinha.address import Address
from rinha.tools.procfs import CpuTimes, machine_cpu_times


class PrometheusParseError(ValueError):
    pass


def sample_key(name: str, labels: dict[str, str]) -> str:
    """`name` or `name{a="x",b="y"}` with labels sorted: one flat key per series."""
    if not labels:
        return name
    inner = ",".join(f'{k}="{labels[k]}"' for k in sorted(labels))
    return f"{name}{{{inner}}}"


def parse_prometheus(text: str) -> dict[str, float]:
    """Prometheus text exposition → {series key: value}; comments and timestamps are dropped.
    Parsed by prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[sample_key(sample.name, sample.labels)] = sample.value
    except (ValueError, TypeError, IndexError) as exc:
        raise PrometheusParseError(str(exc)) from exc
    return out


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, address: Address, timeout: float) -> None:
        super().__init__(address.host_header, timeout=timeout)
        self._address = address
        self._connect_timeout = timeout  # s

    def connect(self) -> None:
        self.sock = self._address.connect(self._connect_timeout)


def connection_for(address: str, timeout: float = 0.5) -> http.client.HTTPConnection:
    """`unix:/path.sock`, `http://host:port` or `host:port` → a keep-alive HTTP connection;
    ValueError for anything else. `timeout`: s, per connect and per read."""
    where = Address.parse(address)
    if where.unix_path is not None:
        return _UnixHTTPConnection(where, timeout)
    return http.client.HTTPConnection(where.host or "", where.port, timeout=timeout)


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
    machine: list[tuple[float, CpuTimes]] = field(default_factory=list)  # (epoch s, times)
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
            if (times := machine_cpu_times()) is not None:
                self.machine.append((time.time(), times))
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
