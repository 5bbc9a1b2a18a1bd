"""Schedule definitions: names, phase times, scaling, lookup, the seeded random one."""

import pytest

from rinha.tools.bench import schedules
from rinha.tools.bench.schedules import OK, Phase, ProcState, Schedule


def test_names() -> None:
    assert set(schedules.NAMES) == {
        "healthy",
        "published",
        "default-down-40s",
        "default-flapping",
        "default-slow-1s-40s",
        "default-failing-from-mid",
        "both-down-25s",
        "both-down-late",
        "random",
    }


@pytest.mark.parametrize("name", [n for n in schedules.NAMES if n != "random"])
def test_presets_start_healthy_at_zero_and_stay_within_60s(name: str) -> None:
    s = schedules.get(name)
    assert s.phases[0] == Phase(0)
    assert all(0 <= p.at_s < 60 for p in s.phases)


def test_published_is_six_phases_of_10s() -> None:
    s = schedules.get("published")
    assert [p.at_s for p in s.phases] == [0, 10, 20, 30, 40, 50]
    assert s.phase_at(15).default == ProcState(100, False)
    assert s.phase_at(25).default.failing and not s.phase_at(25).fallback.failing
    both = s.phase_at(35)
    assert both.default == ProcState(2000, True) and both.fallback == ProcState(1000, True)
    assert s.phase_at(45).default == ProcState(20) == s.phase_at(45).fallback
    assert s.phase_at(59).fallback == ProcState(5000)


def test_durations_of_the_named_outages() -> None:
    down = schedules.get("default-down-40s")
    assert [(p.at_s, p.default.failing) for p in down.phases] == [
        (0, False),
        (10, True),
        (50, False),
    ]
    slow = schedules.get("default-slow-1s-40s")
    assert slow.phase_at(30).default == ProcState(1000) and slow.phase_at(50).default == OK
    both = schedules.get("both-down-25s")
    fail = [p for p in both.phases if p.default.failing and p.fallback.failing]
    assert len(fail) == 1
    assert both.phases[both.phases.index(fail[0]) + 1].at_s - fail[0].at_s == 25
    late = schedules.get("both-down-late")
    assert late.phase_at(34.9) == Phase(0)
    assert late.phase_at(35).default.failing and late.phase_at(54.9).fallback.failing
    assert late.phase_at(55) == Phase(55)
    mid = schedules.get("default-failing-from-mid")
    assert mid.phase_at(29.9).default == OK and mid.phase_at(30).default.failing
    assert mid.phase_at(1e9).default.failing


def test_flapping_toggles_every_3s_and_ends_healthy() -> None:
    s = schedules.get("default-flapping")
    times = [p.at_s for p in s.phases[1:]]
    assert all(b - a == 3 for a, b in zip(times, times[1:], strict=False))
    flags = [p.default.failing for p in s.phases[1:]]
    assert flags[0] is True
    assert all(a != b for a, b in zip(flags, flags[1:], strict=False))
    assert not s.phases[-1].default.failing
    assert all(not p.fallback.failing for p in s.phases)


def test_scaling_stretches_phase_times() -> None:
    s = schedules.get("published", 15)
    assert [p.at_s for p in s.phases] == [0, 2.5, 5, 7.5, 10, 12.5]
    assert s.length_s == 15
    assert schedules.get("published", 120).phases[-1].at_s == 100


def test_random_is_seeded() -> None:
    a = schedules.get("random", seed=7)
    assert a == schedules.get("random", seed=7)
    assert any(schedules.get("random", seed=k).phases != a.phases for k in range(8, 12))
    assert a.name == "random-7"
    assert len(a.phases) == 6 and a.phases[0] == Phase(0)
    assert [p.at_s for p in a.phases] == [0, 10, 20, 30, 40, 50]
    assert [p.at_s for p in schedules.get("random", 30, seed=7).phases] == [0, 5, 10, 15, 20, 25]


def test_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown schedule"):
        schedules.get("nope")


def test_invalid_schedules() -> None:
    with pytest.raises(ValueError):
        Schedule("x", (Phase(5),))
    with pytest.raises(ValueError):
        Schedule("x", (Phase(0), Phase(10), Phase(10)))
    with pytest.raises(ValueError):
        Schedule("x", ())


def test_labels_and_json() -> None:
    p = Phase(30, default=ProcState(2000, True), fallback=ProcState(100))
    assert p.label() == "D:fail+2s F:100ms"
    assert Phase(0).label() == "D:ok F:ok"
    assert p.to_json() == {
        "at_s": 30,
        "label": "D:fail+2s F:100ms",
        "default": {"delay": 2000, "failure": True},
        "fallback": {"delay": 100, "failure": False},
    }
