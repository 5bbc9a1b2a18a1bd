"""Confines the backend (nginx + instances) to 1.5 CPU and 350 MB in a cgroup, and measures it.

Either hierarchy, whichever the machine has (`detect`):

- cgroup v1: one group per controller (cpu, cpuacct, memory), each made under the group this
  process already lives in for that controller, so a sandbox that accounts our memory still
  does; limits in cpu.cfs_quota_us / cpu.cfs_period_us and memory.limit_in_bytes.
- cgroup v2 (the unified hierarchy, /sys/fs/cgroup/cgroup.controllers): one group under ours,
  with +cpu +memory enabled in our group's cgroup.subtree_control where they are not yet;
  limits in cpu.max and memory.max. The kernel enables controllers for child groups only in a
  group without processes of its own (the root group aside): when the bench is alone in its
  group, it moves itself into a leaf beside the backend's group, and on remove disables what
  it enabled and moves back; with other processes there it refuses, and the run goes
  unconfined.

Our own groups come from /proc/self/cgroup (rinha.tools.procfs); the filesystem root is a
parameter, so that both can be tested on a fake tree.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rinha.tools.procfs import cgroups, descendants

ROOT = Path("/sys/fs/cgroup")
NAME = "rinha-bench"
RUNNER_LEAF = "rinha-bench-runner"  # v2: where the bench itself waits while it confines
CFS_PERIOD_US = 100_000
V1_CONTROLLERS = ("cpu", "cpuacct", "memory")
V2_CONTROLLERS = ("cpu", "memory")


class CgroupError(RuntimeError):
    pass


def detect(root: Path = ROOT) -> str:
    """ "v1" (cpu, cpuacct and memory hierarchies under root, a hybrid host included), "v2"
    (the unified hierarchy mounted at root) or "none"."""
    if all((root / c / "cgroup.procs").exists() for c in V1_CONTROLLERS):
        return "v1"
    if (root / "cgroup.controllers").exists():
        return "v2"
    return "none"


@dataclass
class Usage:
    cpu_seconds: float | None = None  # v1 cpuacct.usage, v2 cpu.stat usage_usec: since reset
    peak_bytes: int | None = None  # pages charged to the group: max_usage_in_bytes, memory.peak
    peak_rss_bytes: int | None = None  # sampled sum of the backend's RSS
    oom_kills: int | None = None
    throttled_periods: int | None = None
    throttled_seconds: float | None = None


def _int_lines(text: str | None) -> dict[str, int]:
    """`key value` lines (cpu.stat, memory.events) → {key: value}."""
    out = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


@dataclass
class BenchCgroup:
    """Create with `create()`, move processes with `add()`, read `usage()`, undo with `remove()`."""

    cpus: float = 1.5
    memory_bytes: int = 350 * 1024 * 1024
    name: str = NAME
    root: Path = ROOT
    own: dict[str, str] | None = None  # controller → our group ("": v2); None: /proc/self/cgroup
    dirs: dict[str, Path] = field(default_factory=dict)  # v1: per controller; v2: "unified"
    version: str = "none"  # which hierarchy create() used
    _runner: Path | None = field(default=None, init=False, repr=False)  # v2: our leaf
    _enabled: list[str] = field(default_factory=list, init=False, repr=False)  # v2, by us
    _cpu_base_usec: int = field(default=0, init=False, repr=False)  # v2: usage at reset_cpu
    _current_max: int | None = field(default=None, init=False, repr=False)  # v2: polled bytes

    @property
    def cpu_quota_us(self) -> int:
        """CPU time the group may use per CFS period of CFS_PERIOD_US, µs."""
        return int(round(self.cpus * CFS_PERIOD_US))

    def create(self) -> None:
        version = detect(self.root)
        mine = self.own if self.own is not None else cgroups()
        if version not in ("v1", "v2"):
            raise CgroupError(
                f"no cgroup v1 ({', '.join(V1_CONTROLLERS)}) nor v2 under {self.root}"
            )
        try:
            if version == "v1":
                self._create_v1(mine)
            else:
                self._create_v2(mine)
        except BaseException:  # a limit refused: nothing half made stays behind
            self.remove()
            raise
        self.version = version

    def _make(self, key: str, d: Path) -> None:
        if d.exists():  # a leftover of an interrupted run
            self._evacuate(d, self._runner)
            d.rmdir()
        try:
            d.mkdir()
        except OSError as exc:
            raise CgroupError(f"cannot create {d}: {exc}") from exc
        self.dirs[key] = d

    def _create_v1(self, mine: dict[str, str]) -> None:
        for c in V1_CONTROLLERS:
            self._make(c, self.root / c / mine.get(c, "/").lstrip("/") / self.name)
        self._write("cpu", "cpu.cfs_period_us", CFS_PERIOD_US)
        self._write("cpu", "cpu.cfs_quota_us", self.cpu_quota_us)
        self._write("memory", "memory.limit_in_bytes", self.memory_bytes)
        with contextlib.suppress(OSError):  # no swap beyond the limit, where swap accounting exists
            self._write("memory", "memory.memsw.limit_in_bytes", self.memory_bytes)

    def _create_v2(self, mine: dict[str, str]) -> None:
        parent = self.root / mine.get("", "/").lstrip("/")
        available = (parent / "cgroup.controllers").read_text().split()
        missing = [c for c in V2_CONTROLLERS if c not in available]
        if missing:
            raise CgroupError(
                f"cgroup v2: {' and '.join(missing)} not available in {parent}"
                " (cgroup.controllers): ask for them to be delegated"
            )
        subtree = parent / "cgroup.subtree_control"
        wanted = [c for c in V2_CONTROLLERS if c not in subtree.read_text().split()]
        if wanted:
            self._empty_for_controllers(parent)
            try:
                subtree.write_text(" ".join(f"+{c}" for c in wanted) + "\n")
            except OSError as exc:
                raise CgroupError(f"cannot enable {wanted} in {subtree}: {exc}") from exc
            self._enabled = wanted
        self._make("unified", parent / self.name)
        self._write("unified", "cpu.max", f"{self.cpu_quota_us} {CFS_PERIOD_US}")
        self._write("unified", "memory.max", self.memory_bytes)
        with contextlib.suppress(OSError):  # no swap beyond the limit, where swap is accounted
            self._write("unified", "memory.swap.max", 0)

    def _empty_for_controllers(self, parent: Path) -> None:
        """A non-root v2 group that holds processes cannot enable controllers for its children:
        when the only one is us, move into a leaf; with others there, refuse."""
        if not (parent / "cgroup.type").exists():  # the root group: exempt
            return
        held = [int(p) for p in (parent / "cgroup.procs").read_text().split()]
        others = [p for p in held if p != os.getpid()]
        if others:
            raise CgroupError(
                f"cgroup v2: {parent} holds other processes ({', '.join(map(str, others[:5]))}"
                f"{', …' if len(others) > 5 else ''}), so cpu and memory cannot be enabled for"
                " a group under it: run the bench in a group of its own (e.g. `systemd-run"
                " --scope -p Delegate=yes rinha bench …`)"
            )
        if held:
            leaf = parent / RUNNER_LEAF
            leaf.mkdir(exist_ok=True)
            (leaf / "cgroup.procs").write_text(f"{os.getpid()}\n")
            self._runner = leaf

    def _write(self, key: str, filename: str, value: int | str) -> None:
        (self.dirs[key] / filename).write_text(f"{value}\n")

    def _read(self, key: str, filename: str) -> str | None:
        try:
            return (self.dirs[key] / filename).read_text()
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
        d = self.dirs.get("memory") or self.dirs.get("cpu") or self.dirs.get("unified")
        if d is None:
            return set()
        try:
            return {int(p) for p in (d / "cgroup.procs").read_text().split()}
        except OSError:
            return set()

    def join_wrapper(self, path: Path, real: str, only_if: str | None = None) -> Path:
        """A shell script that puts itself in every group, then execs `real` with its arguments
        (only when its arguments contain `only_if`, if given). Memory is charged to the group a
        page is first touched in, and the kernel does not move charges with a process: the
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
        """CPU usage counts from here on (v1 zeroes cpuacct.usage; v2 cannot: a baseline)."""
        if self.version == "v2":
            self._cpu_base_usec = _int_lines(self._read("unified", "cpu.stat")).get("usage_usec", 0)
            return
        with contextlib.suppress(OSError, KeyError):
            self._write("cpuacct", "cpuacct.usage", 0)

    def poll(self) -> None:
        """One reading of the group's memory now, for a kernel without memory.peak (v2 < 5.19)."""
        raw = self._read("unified", "memory.current")
        if raw is not None and raw.strip().isdigit():
            self._current_max = max(self._current_max or 0, int(raw))

    def usage(self) -> Usage:
        return self._usage_v2() if self.version == "v2" else self._usage_v1()

    def _usage_v1(self) -> Usage:
        u = Usage()
        if (raw := self._read("cpuacct", "cpuacct.usage")) is not None:
            u.cpu_seconds = int(raw) / 1e9
        if (raw := self._read("memory", "memory.max_usage_in_bytes")) is not None:
            u.peak_bytes = int(raw)
        oom = _int_lines(self._read("memory", "memory.oom_control"))
        if "oom_kill" in oom:
            u.oom_kills = oom["oom_kill"]
        stat = _int_lines(self._read("cpu", "cpu.stat"))
        if "nr_throttled" in stat:
            u.throttled_periods = stat["nr_throttled"]
        if "throttled_time" in stat:
            u.throttled_seconds = stat["throttled_time"] / 1e9
        return u

    def _usage_v2(self) -> Usage:
        u = Usage()
        stat = _int_lines(self._read("unified", "cpu.stat"))
        if "usage_usec" in stat:
            u.cpu_seconds = (stat["usage_usec"] - self._cpu_base_usec) / 1e6
        if "nr_throttled" in stat:
            u.throttled_periods = stat["nr_throttled"]
        if "throttled_usec" in stat:
            u.throttled_seconds = stat["throttled_usec"] / 1e6
        if (raw := self._read("unified", "memory.peak")) is not None:
            u.peak_bytes = int(raw)
        else:
            self.poll()
            u.peak_bytes = self._current_max
        events = _int_lines(self._read("unified", "memory.events"))
        if "oom_kill" in events:
            u.oom_kills = events["oom_kill"]
        return u

    def _evacuate(self, d: Path, into: Path | None = None) -> None:
        """Moves every process still in `d` to `into`, by default the group above it (where the
        group was made)."""
        try:
            pids = (d / "cgroup.procs").read_text().split()
        except OSError:
            return
        for pid in pids:
            with contextlib.suppress(OSError):
                ((into or d.parent) / "cgroup.procs").write_text(f"{pid}\n")

    def remove(self) -> None:
        """Moves any process left inside to the parent group, then deletes the groups (and
        moves the bench back out of its v2 leaf)."""
        for key, d in list(self.dirs.items()):
            self._evacuate(d, self._runner)  # v2: a group with controllers enabled takes none
            try:
                d.rmdir()
            except OSError as exc:
                sys.stderr.write(f"rinha bench: could not remove {d}: {exc}\n")
                continue
            del self.dirs[key]
        if self._runner is not None and not self.dirs:
            parent = self._runner.parent
            if self._enabled:  # the parent takes processes again only without them
                with contextlib.suppress(OSError):
                    (parent / "cgroup.subtree_control").write_text(
                        " ".join(f"-{c}" for c in self._enabled) + "\n"
                    )
                self._enabled = []
            self._evacuate(self._runner)
            try:
                self._runner.rmdir()
            except OSError as exc:
                sys.stderr.write(f"rinha bench: could not remove {self._runner}: {exc}\n")
            else:
                self._runner = None
