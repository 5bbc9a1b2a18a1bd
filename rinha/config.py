"""The service configuration: one frozen dataclass read from the environment. Each field says
its default and meaning once (`setting(...)`); SETTINGS, `rinha serve --help`, the README table
and `rinha_config_info` are generated from the fields."""

from __future__ import annotations

import os
from dataclasses import Field, dataclass, field, fields
from typing import Any


def setting(default: Any, help: str, *, minimum: int | None = None) -> Any:
    """One knob: its default and meaning (the field's name, upper-cased after RINHA_, is its
    environment variable); `minimum` for the numbers that must be at least that. `rinha serve
    --help`, the README's table and rinha_config_info all come from these."""
    meta: dict[str, object] = {"help": help, "minimum": minimum}
    if isinstance(default, tuple):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


def _split_addresses(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class Config:
    bind: str = setting(
        "127.0.0.1:9999",
        "where this instance listens for clients: HOST:PORT or unix:/path.sock",
    )
    internal_bind: str = setting(
        "",
        "where this instance listens for its peers (/internal/*, socket mode 0600); "
        "empty: unix:<RINHA_DATA_DIR>/internal-<RINHA_INSTANCE_ID>.sock",
    )
    socket_mode: str = setting(
        "0660",
        "file mode (octal) of the client unix socket: Nginx's worker must be owner or in the group",
    )
    data_dir: str = setting(
        "/tmp/rinha-data",
        "this instance's journal (journal-<id>.bin) and the peers' sockets; every "
        "instance of one stack must use the same directory, and it must outlive a restart",
    )
    ids_path: str = setting(
        "",
        "the cluster's shared id table (every instance of a stack maps the same file); "
        "empty: <RINHA_DATA_DIR>/ids.bin. On tmpfs (e.g. /dev/shm/...) it costs no page "
        "fault per claim, as it does on a disk file system after each writeback",
    )
    journal_fsync: str = setting(
        "off",
        "off: the journal outlives the process (page cache); always: fdatasync before "
        "each 202, outlives the machine; a number N: fdatasync every N ms (loses at most "
        "N ms on power loss)",
    )
    max_ids: int = setting(
        1_000_000,
        "correlationIds the shared id table holds until a purge; past it POST /payments gets 503",
        minimum=1,
    )
    max_backlog: int = setting(
        50_000,
        "payments queued per instance at most; past it POST /payments gets 503 with Retry-After",
        minimum=1,
    )
    admin_token: str = setting(
        "",
        "if set, POST /purge-payments needs the header X-Rinha-Token with this value",
    )
    default_url: str = setting(
        "http://127.0.0.1:8001",
        "default processor: http://host:port or unix:/path",
    )
    fallback_url: str = setting("http://127.0.0.1:8002", "fallback processor")
    peers: tuple[str, ...] = setting(
        (),
        "comma-separated addresses of the other instances (unix:/p.sock or http://host:port)",
    )
    instance_id: int = setting(
        0,
        "this instance's index 0..N-1 (N = peers + 1); health checks take turns by it",
    )
    max_in_flight: int = setting(
        400,
        "processor calls in flight at most, per instance (enough for a 1 s/call default)",
        minimum=1,
    )
    dispatch_tick_ms: int = setting(
        5,
        "queued payments are sent in batches, once per tick: fewer wake-ups, lower p99",
    )
    launch_per_tick: int = setting(
        16,
        "new processor calls started per tick at most (bounds the event-loop stall)",
        minimum=1,
    )
    catch_up_per_s: int = setting(
        1000,
        "payments held during an outage are sent at most this fast (per second, per "
        "instance) on top of new arrivals: a recovery must not starve the clients' "
        "answers; 0 = no limit",
    )
    catch_up_ms: int = setting(
        3000,
        "a paced drain takes this long at most: a bigger backlog is sent faster, so that "
        "one built late in a run is still processed before its end",
    )
    call_timeout_ms: int = setting(
        10_000,
        "a processor call with no answer by then has an unknown outcome (settled on retry)",
        minimum=1,
    )
    slow_ms: int = setting(
        1200,
        "a processor slower than this (ms per call) is avoided: completions later than "
        "the judge's 1.5 s window edge would make the counts disagree",
    )
    hold_ms: int = setting(
        15_000,
        "how long payments wait for default to come back before spilling to fallback",
    )
    last_resort_ms: int = setting(
        30_000,
        "after this long with no usable processor, send to a slow one rather than hold",
    )
    settle_after_ms: int = setting(
        30_000,
        "a payment pinned to a processor (outcome unknown) that stays unusable this long "
        "is looked up there (GET /payments/{id}) and recorded if found; if not, it stays "
        "pinned",
    )
    retry_min_ms: int = setting(
        20,
        "first back-off after a failed call; doubles up to RINHA_RETRY_MAX_MS",
    )
    retry_max_ms: int = setting(
        250,
        "longest back-off; also the spacing of probes to a failing processor",
    )
    health_interval_ms: int = setting(
        5100,
        "service-health poll period per processor, shared by the whole cluster (its limit: 1/5 s)",
        minimum=1,
    )
    peer_timeout_ms: int = setting(
        250,
        "a peer that does not answer a summary by then makes the summary fail with 503",
        minimum=1,
    )
    peer_connections: int = setting(
        8,
        "connections per peer at most (more requests wait for one); idle ones close after 30 s",
        minimum=1,
    )
    header_timeout_ms: int = setting(
        10_000,
        "a request's head and body must arrive within this, or the connection gets 408 and closes",
        minimum=1,
    )
    idle_timeout_ms: int = setting(
        75_000,
        "a client connection idle this long between requests is closed (longer than Nginx's 65 s)",
        minimum=1,
    )
    drain_ms: int = setting(
        3000,
        "on SIGTERM: how long queued payments and calls in flight may take to finish",
    )
    intake: str = setting(
        "on",
        "on: whole, plain POST /payments requests are framed and answered in C before the "
        "general HTTP parser; off: every request goes through httptools (same answers)",
    )
    max_body_bytes: int = setting(4096, "larger request bodies get 413", minimum=1)
    log_level: str = setting("INFO", "DEBUG, INFO, WARNING or ERROR")
    log_format: str = setting("text", "text, or json: one JSON object per line")

    @property
    def cluster_size(self) -> int:
        return len(self.peers) + 1

    @property
    def internal_address(self) -> str:
        """Where the peers reach this instance (RINHA_INTERNAL_BIND, or its default)."""
        return self.internal_bind or f"unix:{self.data_dir}/internal-{self.instance_id}.sock"

    @property
    def journal_path(self) -> str:
        return os.path.join(self.data_dir, f"journal-{self.instance_id}.bin")

    @property
    def ids_file(self) -> str:
        """RINHA_IDS_PATH, or its default in the data dir."""
        return self.ids_path or os.path.join(self.data_dir, "ids.bin")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            var = env_var(f)
            raw = env.get(var)
            if raw is None:
                continue  # the field's default
            if f.name == "peers":
                values[f.name] = _split_addresses(raw)
            elif f.type == "int":
                try:
                    number = int(raw)
                except ValueError:
                    raise ValueError(f"{var} must be an integer, got {raw!r}") from None
                if number < 0:
                    raise ValueError(f"{var} must not be negative, got {number}")
                values[f.name] = number
            else:
                values[f.name] = raw
        config = cls(**values)  # type: ignore[arg-type]
        config.validate()
        return config

    def validate(self) -> None:
        """ValueError naming the variable and what is wrong with it, for the first bad one."""
        from .address import Address

        config = self
        for var, text in (
            ("RINHA_BIND", config.bind),
            ("RINHA_INTERNAL_BIND", config.internal_address),
            ("RINHA_DEFAULT_URL", config.default_url),
            ("RINHA_FALLBACK_URL", config.fallback_url),
            *(("RINHA_PEERS", peer) for peer in config.peers),
        ):
            try:
                Address.parse(text)
            except ValueError as exc:
                raise ValueError(f"{var}: {exc}") from None
        if config.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError(
                f"RINHA_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {config.log_level!r}"
            )
        if config.intake not in ("on", "off"):
            raise ValueError(f"RINHA_INTAKE must be on or off, got {config.intake!r}")
        if config.log_format not in ("text", "json"):
            raise ValueError(f"RINHA_LOG_FORMAT must be text or json, got {config.log_format!r}")
        for f in fields(config):
            minimum = f.metadata["minimum"]
            if minimum is not None and getattr(config, f.name) < minimum:
                raise ValueError(f"{env_var(f)} must be at least {minimum}")
        if config.instance_id >= config.cluster_size:
            raise ValueError(
                f"RINHA_INSTANCE_ID={config.instance_id} but the cluster has "
                f"{config.cluster_size} instance(s) (RINHA_PEERS lists the others)"
            )
        if config.cluster_size > 255:
            raise ValueError(
                "at most 255 instances (RINHA_PEERS): the id table keeps the "
                "owner of each id in 8 bits"
            )
        if config.journal_fsync not in ("off", "always") and not (
            config.journal_fsync.isdigit() and int(config.journal_fsync) > 0
        ):
            raise ValueError(
                "RINHA_JOURNAL_FSYNC must be off, always or a period in ms, "
                f"got {config.journal_fsync!r}"
            )
        try:
            mode = int(config.socket_mode, 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o777:
            raise ValueError(
                f"RINHA_SOCKET_MODE must be an octal file mode such as 0660, "
                f"got {config.socket_mode!r}"
            )
        if mode & 0o002:
            raise ValueError(
                "RINHA_SOCKET_MODE must not make the socket world-writable "
                f"(got {config.socket_mode}); give Nginx the group instead"
            )


def env_var(f: Field[Any]) -> str:
    return "RINHA_" + f.name.upper()


def _default_text(f: Field[Any]) -> str:
    default = f.default_factory() if callable(f.default_factory) else f.default
    return ",".join(default) if isinstance(default, tuple) else str(default)


# One row per knob, from the fields: (field, env var, default as text, meaning)
SETTINGS: tuple[tuple[str, str, str, str], ...] = tuple(
    (f.name, env_var(f), _default_text(f), f.metadata["help"]) for f in fields(Config)
)


def markdown_table() -> str:
    """The README's configuration table (`make readme-config` writes it there);
    tests/unit/test_docs.py compares them."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [
        f"| `{env}` | {f'`{default}`' if default else '(empty)'} | {meaning} |"
        for _, env, default, meaning in SETTINGS
    ]
    rows.append(
        "| `RINHA_NO_EXTENSIONS` | (unset) | `1` runs the pure-Python reference of "
        "`_fast` (tests, debugging); otherwise the service refuses to start without "
        "the compiled module |"
    )
    return "\n".join(rows)


def write_readme_table(path: str) -> bool:
    """Rewrite the README's `<!-- config-table ... -->` block from the fields; True if it
    changed (`make readme-config`)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    head, rest = text.split("<!-- config-table", 1)
    marker, rest = rest.split("\n", 1)
    _, tail = rest.split("<!-- /config-table -->", 1)
    new = f"{head}<!-- config-table{marker}\n{markdown_table()}\n<!-- /config-table -->{tail}"
    if new != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
    return new != text


def help_table() -> str:
    """The environment variables as plain text, for `rinha serve --help`."""
    width = max(len(env) for _, env, _, _ in SETTINGS)
    lines = [
        f"  {env:<{width}}  (default {default or 'empty'})\n  {'':<{width}}  {meaning}"
        for _, env, default, meaning in SETTINGS
    ]
    return "environment:\n" + "\n".join(lines)
