"""rinha.tools.bench.cgroup: the backend's confinement on cgroup v1 and v2.

v1 and v2 against fake trees in tmp_path (the files a kernel would show; what the code writes
is read back), v1 for real where this machine has it and we are root.
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rinha.tools.bench import cgroup as cgroup_mod
from rinha.tools.bench.cgroup import BenchCgroup, CgroupError, detect

MB = 2**20
OWN = "/user.slice/bench.scope"


@pytest.fixture
def kernel_rmdir(monkeypatch: pytest.MonkeyPatch) -> None:
    """rmdir of a fake cgroup as the kernel does it: its interface files go with it."""
    real = Path.rmdir

    def rmdir(self: Path) -> None:
        if (self / "cgroup.procs").exists() or (self / "cpu.max").exists():
            for f in self.iterdir():
                if f.is_file():
                    f.unlink()
        real(self)

    monkeypatch.setattr(Path, "rmdir", rmdir)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def v2_tree(
    root: Path,
    own: str = OWN,
    procs: tuple[int, ...] = (),
    subtree: str = "",
    controllers: str = "cpu io memory pids",
) -> Path:
    """A unified hierarchy at root, our group at `own`; returns our group's directory."""
    root.mkdir(exist_ok=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (root / "cgroup.procs").write_text("1\n")
    parent = root / own.lstrip("/")
    parent.mkdir(parents=True, exist_ok=True)
    if parent != root:
        (parent / "cgroup.type").write_text("domain\n")  # a non-root group has one
        (parent / "cgroup.controllers").write_text(controllers + "\n")
        (parent / "cgroup.procs").write_text("".join(f"{p}\n" for p in procs))
    (parent / "cgroup.subtree_control").write_text(subtree + "\n")
    return parent


def v1_tree(root: Path) -> None:
    for c in ("cpu", "cpuacct", "memory", "pids"):
        (root / c).mkdir(parents=True)
        (root / c / "cgroup.procs").write_text("1\n")
    (root / "memory" / "process_api" / "x").mkdir(parents=True)


def test_detect_which_hierarchy_the_machine_has(tmp_path: Path) -> None:
    assert detect(tmp_path) == "none"
    v2_tree(tmp_path / "v2")
    assert detect(tmp_path / "v2") == "v2"
    v1_tree(tmp_path / "v1")
    assert detect(tmp_path / "v1") == "v1"
    # a hybrid host: v1 controllers, the unified hierarchy beside them without any
    v2_tree(tmp_path / "v1" / "unified", own="/")
    assert detect(tmp_path / "v1") == "v1"
    assert detect() in ("v1", "v2", "none")  # this machine's


def test_v2_group_gets_the_limits_the_pids_and_is_measured(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], kernel_rmdir: None
) -> None:
    parent = v2_tree(tmp_path)
    cg = BenchCgroup(root=tmp_path, own={"": OWN, "memory": "/ignored-on-v2"})
    cg.create()
    group = parent / "rinha-bench"
    assert cg.version == "v2" and cg.dirs == {"unified": group}
    assert (parent / "cgroup.subtree_control").read_text() == "+cpu +memory\n"
    assert (group / "cpu.max").read_text() == "150000 100000\n"  # 1.5 CPU per 100 ms
    assert (group / "memory.max").read_text() == f"{350 * MB}\n"
    assert (group / "memory.swap.max").read_text() == "0\n"
    assert not (parent / "rinha-bench-runner").exists(), "our group held no process"

    assert cg.add([sleeper.pid]) == [sleeper.pid]
    assert (group / "cgroup.procs").read_text() == f"{sleeper.pid}\n"
    assert cg.members() == {sleeper.pid}
    wrapper = cg.join_wrapper(tmp_path / "w.sh", "/usr/sbin/nginx").read_text()
    assert f'echo $$ > "{group}/cgroup.procs"' in wrapper

    stat = "usage_usec {}\nuser_usec 1\nsystem_usec 1\nnr_periods 9\nnr_throttled 4\n"
    (group / "cpu.stat").write_text(stat.format(2_500_000) + "throttled_usec 300000\n")
    cg.reset_cpu()  # v2 keeps counting: a baseline
    (group / "cpu.stat").write_text(stat.format(4_000_000) + "throttled_usec 300000\n")
    (group / "memory.peak").write_text("123456789\n")
    (group / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n")
    u = cg.usage()
    assert u.cpu_seconds == pytest.approx(1.5)
    assert (u.throttled_periods, u.throttled_seconds) == (4, pytest.approx(0.3))
    assert (u.peak_bytes, u.oom_kills) == (123456789, 1)

    (group / "cgroup.procs").write_text("4242\n")  # still inside at the end
    cg.remove()
    assert not group.exists() and cg.dirs == {}
    assert (parent / "cgroup.procs").read_text() == "4242\n", "evacuated to our group"
    assert (parent / "cgroup.subtree_control").read_text() == "+cpu +memory\n"


def test_v2_without_memory_peak_reports_the_highest_memory_current(tmp_path: Path) -> None:
    v2_tree(tmp_path, subtree="cpu memory")
    cg = BenchCgroup(root=tmp_path, own={"": OWN})
    cg.create()
    group = cg.dirs["unified"]
    for current in (1000, 5000, 3000):
        (group / "memory.current").write_text(f"{current}\n")
        cg.poll()
    assert cg.usage().peak_bytes == 5000


def test_v2_controllers_already_enabled_are_left_as_they_are(tmp_path: Path) -> None:
    parent = v2_tree(tmp_path, subtree="cpu memory pids")
    cg = BenchCgroup(root=tmp_path, own={"": OWN})
    cg.create()
    assert (parent / "cgroup.subtree_control").read_text() == "cpu memory pids\n"
    assert (parent / "rinha-bench" / "cpu.max").exists()


def test_v2_alone_in_our_group_we_step_into_a_leaf_and_back(
    tmp_path: Path, kernel_rmdir: None
) -> None:
    me = os.getpid()
    parent = v2_tree(tmp_path, procs=(me,))
    cg = BenchCgroup(root=tmp_path, own={"": OWN}, cpus=1.0, memory_bytes=100 * MB)
    cg.create()
    leaf = parent / "rinha-bench-runner"
    assert (leaf / "cgroup.procs").read_text() == f"{me}\n", "the bench moved out of the way"
    assert (parent / "cgroup.subtree_control").read_text() == "+cpu +memory\n"
    assert (parent / "rinha-bench" / "cpu.max").read_text() == "100000 100000\n"
    assert (parent / "rinha-bench" / "memory.max").read_text() == f"{100 * MB}\n"
    cg.remove()
    assert not leaf.exists() and not (parent / "rinha-bench").exists()
    assert (parent / "cgroup.subtree_control").read_text() == "-cpu -memory\n", "as it was"
    assert (parent / "cgroup.procs").read_text() == f"{me}\n", "the bench moved back"


def test_a_refused_limit_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_rmdir: None
) -> None:
    me = os.getpid()
    parent = v2_tree(tmp_path, procs=(me,))
    real = BenchCgroup._write

    def write(self: BenchCgroup, key: str, filename: str, value: int | str) -> None:
        if filename == "memory.max":
            raise OSError(22, "Invalid argument")
        real(self, key, filename, value)

    monkeypatch.setattr(BenchCgroup, "_write", write)
    cg = BenchCgroup(root=tmp_path, own={"": OWN})
    with pytest.raises(OSError, match="Invalid argument"):
        cg.create()
    assert not (parent / "rinha-bench").exists() and not (parent / "rinha-bench-runner").exists()
    assert (parent / "cgroup.subtree_control").read_text() == "-cpu -memory\n"
    assert (parent / "cgroup.procs").read_text() == f"{me}\n"


def test_v2_the_root_group_takes_controllers_with_processes_in_it(tmp_path: Path) -> None:
    v2_tree(tmp_path, own="/")
    cg = BenchCgroup(root=tmp_path, own={"": "/"})
    cg.create()
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +memory\n"
    assert (tmp_path / "rinha-bench" / "cpu.max").exists()
    assert not (tmp_path / "rinha-bench-runner").exists()


def test_v2_refusals_leave_nothing_behind(tmp_path: Path) -> None:
    parent = v2_tree(tmp_path / "busy", procs=(os.getpid(), 4242))
    cg = BenchCgroup(root=tmp_path / "busy", own={"": OWN})
    with pytest.raises(CgroupError, match=r"holds other processes \(4242\)"):
        cg.create()
    assert sorted(p.name for p in parent.iterdir()) == [
        "cgroup.controllers",
        "cgroup.procs",
        "cgroup.subtree_control",
        "cgroup.type",
    ]
    assert (parent / "cgroup.subtree_control").read_text() == "\n"

    v2_tree(tmp_path / "bare", controllers="cpu pids")
    with pytest.raises(CgroupError, match="memory not available"):
        BenchCgroup(root=tmp_path / "bare", own={"": OWN}).create()

    with pytest.raises(CgroupError, match="no cgroup v1 .* nor v2"):
        BenchCgroup(root=tmp_path / "nothing", own={}).create()


def test_v1_groups_per_controller_under_our_own(tmp_path: Path) -> None:
    v1_tree(tmp_path)
    own = {"cpu": "/", "cpuacct": "/", "memory": "/process_api/x", "": "/"}
    cg = BenchCgroup(root=tmp_path, own=own)
    cg.create()
    assert cg.version == "v1"
    assert cg.dirs == {
        "cpu": tmp_path / "cpu" / "rinha-bench",
        "cpuacct": tmp_path / "cpuacct" / "rinha-bench",
        "memory": tmp_path / "memory" / "process_api" / "x" / "rinha-bench",
    }
    assert (cg.dirs["cpu"] / "cpu.cfs_period_us").read_text() == "100000\n"
    assert (cg.dirs["cpu"] / "cpu.cfs_quota_us").read_text() == "150000\n"
    assert (cg.dirs["memory"] / "memory.limit_in_bytes").read_text() == f"{350 * MB}\n"
    cg.reset_cpu()
    assert (cg.dirs["cpuacct"] / "cpuacct.usage").read_text() == "0\n"
    (cg.dirs["cpuacct"] / "cpuacct.usage").write_text("2000000000\n")
    (cg.dirs["memory"] / "memory.max_usage_in_bytes").write_text(f"{200 * MB}\n")
    (cg.dirs["memory"] / "memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"
    )
    (cg.dirs["cpu"] / "cpu.stat").write_text(
        "nr_periods 10\nnr_throttled 3\nthrottled_time 250000000\n"
    )
    u = cg.usage()
    assert (u.cpu_seconds, u.peak_bytes, u.oom_kills) == (2.0, 200 * MB, 2)
    assert (u.throttled_periods, u.throttled_seconds) == (3, 0.25)


@pytest.mark.skipif(detect() != "v1" or os.geteuid() != 0, reason="needs cgroup v1 and root")
def test_v1_for_real_confines_and_counts_a_spinning_child() -> None:
    cg = BenchCgroup(name=f"rinha-test-{os.getpid()}")  # never the bench's own group name
    try:
        cg.create()
    except (CgroupError, OSError) as exc:
        pytest.skip(f"cgroup v1 not writable here: {exc}")
    spin = "import sys, time\nsys.stdin.readline()\nend = time.process_time() + 0.3\n"
    spin += "while time.process_time() < end: pass\nprint('done', flush=True)\ntime.sleep(60)\n"
    try:
        with subprocess.Popen(
            [sys.executable, "-c", spin], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        ) as child:
            try:
                assert cg.add([child.pid]) == [child.pid] and child.pid in cg.members()
                cg.reset_cpu()
                assert child.stdin is not None and child.stdout is not None
                child.stdin.write("go\n")
                child.stdin.flush()
                assert child.stdout.readline() == "done\n"
                u = cg.usage()
                assert u.cpu_seconds is not None and 0.2 <= u.cpu_seconds <= 2.0
                assert u.peak_bytes is not None and u.peak_bytes > 0
            finally:
                child.kill()
    finally:
        dirs = list(cg.dirs.values())
        cg.remove()
    assert cg.dirs == {} and not any(d.exists() for d in dirs)


def test_the_run_records_which_confinement_it_used(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from rinha.tools.bench import runner

    v2_tree(tmp_path)
    fake = functools.partial(BenchCgroup, root=tmp_path, own={"": OWN})
    monkeypatch.setattr(runner, "BenchCgroup", fake)
    args = argparse.Namespace(no_cgroup=False, url=None, pids=None, cpus=1.5, memory_mb=350)
    run = runner._Run(args)
    run.make_cgroup()
    assert run.confinement == {"cgroup": "v2", "cpus": 1.5, "memory_bytes": 350 * MB}
    assert cgroup_mod.detect(tmp_path) == "v2"

    unconfined = runner._Run(argparse.Namespace(no_cgroup=True))
    unconfined.make_cgroup()
    assert unconfined.confinement == {"cgroup": "none", "cpus": None, "memory_bytes": None}
    assert any("--no-cgroup" in n for n in unconfined.notes)
