"""Confines the backend (nginx + instances) to 1.5 CPU and 350 MB with cgroup v1, and measures it.

Each controller's group is created under the cgroup this process already lives in for that
controller (/proc/self/cgroup, read by rinha.tools.procfs), so a sandbox that accounts our
memory still does.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rinha.tools.procfs import cgroups, descendants

ROOT = Path("/sys/fs/cgroup")
NAME = "rinha-bench"
CFS_PERIOD_US = 100_000
CONTROLLERS = ("cpu", "cpuacct", "memory")


class CgroupError(RuntimeError):
    pass


@dataclass
class Usage:
    cpu_seconds: float | None = None  # cpuacct.usage since the reset
    peak_bytes: int | None = None  # memory.max_usage_in_bytes (pages charged to the group)
    peak_rss_bytes: int | None = None  # sampled sum of the backend's RSS
    oom_kills: int | None = None
    throttled_periods: int | None = None
    throttled_seconds: float | None = None


@dataclass
class BenchCgroup:
    """Create with `create()`, move processes with `add()`, read `usage()`, undo with `remove()`."""

    cpus: float = 1.5
    memory_bytes: int = 350 * 1024 * 1024
    name: str = NAME
    root: Path = ROOT
    dirs: dict[str, Path] = field(default_factory=dict)

    def _dir_for(self, controller: str, base: str) -> Path:
        return self.root / controller / base.lstrip("/") / self.name

    def create(self) -> None:
        mine = cgroups()
        for c in CONTROLLERS:
            if not (self.root / c / "cgroup.procs").exists():
                raise CgroupError(f"no cgroup v1 '{c}' hierarchy under {self.root}")
            d = self._dir_for(c, mine.get(c, "/"))
            if d.exists():  # a leftover of an interrupted run
                self._evacuate(d)
                d.rmdir()
            try:
                d.mkdir()
            except OSError as exc:
                self.remove()
                raise CgroupError(f"cannot create {d}: {exc}") from exc
            self.dirs[c] = d
        quota = int(round(self.cpus * CFS_PERIOD_US))
        self._write("cpu", "cpu.cfs_period_us", CFS_PERIOD_US)
        self._write("cpu", "cpu.cfs_quota_us", quota)
        self._write("memory", "memory.limit_in_bytes", self.memory_bytes)
        with contextlib.suppress(OSError):  # no swap beyond the limit, where swap accounting exists
            self._write("memory", "memory.memsw.limit_in_bytes", self.memory_bytes)

    def _write(self, controller: str, filename: str, value: int | str) -> None:
        (self.dirs[controller] / filename).write_text(f"{value}\n")

    def _read(self, controller: str, filename: str) -> str | None:
        try:
            return (self.dirs[controller] / filename).read_text()
        except (OSError, KeyError):
            return None

    def add(self, pids: list[int]) -> list[int]:
        """Moves `pids` and their descendants in; returns the PIDs moved."""
        moved = []
        for pid in descendants(pids):
            try:
                for d in self.dirs.values():
                    (d / "cgroup.procs").write_text(f"{pid}\n")
            except (OSError, ValueError):
                continue  # the process exited meanwhile
            moved.append(pid)
        return moved

    def members(self) -> set[int]:
        """PIDs currently in the memory group (or the cpu group when there is none)."""
        d = self.dirs.get("memory") or self.dirs.get("cpu")
        if d is None:
            return set()
        try:
            return {int(p) for p in (d / "cgroup.procs").read_text().split()}
        except OSError:
            return set()

    def join_wrapper(self, path: Path, real: str, only_if: str | None = None) -> Path:
        """A shell script that puts itself in every group, then execs `real` with its arguments
        (only when its arguments contain `only_if`, if given). Memory is charged to the group a
        page is first touched in, and this kernel does not move charges with a process: the
        backend has to be born inside the group for its memory to count."""
        joins = "\n".join(f'  echo $$ > "{d / "cgroup.procs"}"' for d in self.dirs.values())
        body = (
            f"{joins}\n"
            if only_if is None
            else f'case " $* " in\n  *" {only_if} "*)\n{joins}\n  ;;\nesac\n'
        )
        path.write_text(f'#!/bin/sh\n{body}exec "{real}" "$@"\n')
        path.chmod(0o755)
        return path

    def reset_cpu(self) -> None:
        with contextlib.suppress(OSError, KeyError):
            self._write("cpuacct", "cpuacct.usage", 0)

    def usage(self) -> Usage:
        u = Usage()
        if (raw := self._read("cpuacct", "cpuacct.usage")) is not None:
            u.cpu_seconds = int(raw) / 1e9
        if (raw := self._read("memory", "memory.max_usage_in_bytes")) is not None:
            u.peak_bytes = int(raw)
        if (raw := self._read("memory", "memory.oom_control")) is not None:
            for line in raw.splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    u.oom_kills = int(value)
        if (raw := self._read("cpu", "cpu.stat")) is not None:
            stat = dict(line.split() for line in raw.splitlines() if " " in line)
            if "nr_throttled" in stat:
                u.throttled_periods = int(stat["nr_throttled"])
            if "throttled_time" in stat:
                u.throttled_seconds = int(stat["throttled_time"]) / 1e9
        return u

    def _evacuate(self, d: Path) -> None:
        """Moves every process still in `d` to the group above it (where the group was made)."""
        try:
            pids = (d / "cgroup.procs").read_text().split()
        except OSError:
            return
        for pid in pids:
            with contextlib.suppress(OSError):
                (d.parent / "cgroup.procs").write_text(f"{pid}\n")

    def remove(self) -> None:
        """Moves any process left inside to the parent group, then deletes the groups."""
        for c, d in list(self.dirs.items()):
            self._evacuate(d)
            try:
                d.rmdir()
            except OSError as exc:
                sys.stderr.write(f"rinha bench: could not remove {d}: {exc}\n")
                continue
            del self.dirs[c]
