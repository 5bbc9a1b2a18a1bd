"""Best possible score: each accepted payment on the cheapest processor available then."""

from fractions import Fraction

from rinha.tools.bench import schedules
from rinha.tools.bench.schedules import Phase, ProcState, Schedule
from rinha.tools.bench.scoring import best_possible, cheapest_available

FAIL = ProcState(0, True)


def test_cheapest_available_on_published() -> None:
    s = schedules.get("published")
    assert cheapest_available(s, 5) == "default"
    assert cheapest_available(s, 15) == "default"  # slow is still available
    assert cheapest_available(s, 25) == "fallback"  # default failing
    assert cheapest_available(s, 35) == "default"  # both failing: wait for 40 s, default is back
    assert cheapest_available(s, 55) == "default"


def test_waits_for_the_next_phase_with_a_working_processor() -> None:
    s = Schedule(
        "t", (Phase(0), Phase(10, default=FAIL, fallback=FAIL), Phase(20, default=FAIL), Phase(30))
    )
    assert cheapest_available(s, 12) == "fallback"  # at 20 s only fallback works
    assert cheapest_available(s, 25) == "fallback"
    assert cheapest_available(s, 30) == "default"


def test_nothing_available_to_the_end() -> None:
    s = Schedule("t", (Phase(0), Phase(10, default=FAIL, fallback=FAIL)))
    assert cheapest_available(s, 11) is None


def test_best_possible_by_hand() -> None:
    # 1 s buckets; default fails over [2, 4), both fail from 5 s to the end
    s = Schedule(
        "t",
        (Phase(0), Phase(2, default=FAIL), Phase(4), Phase(5, default=FAIL, fallback=FAIL)),
        length_s=6,
    )
    accepted = [10, 20, 30, 0, 40, 50]
    best = best_possible(s, accepted, 1.0, 1990)
    # midpoints 0.5, 1.5 → default; 2.5 → fallback; 4.5 → default; 5.5 → nothing to the end
    assert best.per_processor == {"default": 70, "fallback": 30}
    assert best.unplaceable == 50
    # (70 × 1990 × 0.95 + 30 × 1990 × 0.85) × 1.2 = (132_335 + 50_745) × 1.2 cents
    assert best.score == Fraction(219_696)
    assert best.score_cents == 219_696


def test_best_possible_healthy_is_all_default_with_full_bonus() -> None:
    best = best_possible(schedules.get("healthy"), [100] * 60, 1.0, 1990)
    assert best.per_processor == {"default": 6000, "fallback": 0}
    assert best.score_cents == round(6000 * 1990 * Fraction(95, 100) * Fraction(12, 10))


def test_deferring_waits_for_default_when_it_comes_back() -> None:
    s = schedules.get("published")
    assert cheapest_available(s, 25, defer=True) == "default"  # default is back at 40 s
    assert cheapest_available(s, 35, defer=True) == "default"
    mid = schedules.get("default-failing-from-mid")
    assert cheapest_available(mid, 45, defer=True) == "fallback"  # default never returns
    assert cheapest_available(mid, 45) == "fallback"
    gone = Schedule("t", (Phase(0), Phase(10, default=FAIL, fallback=FAIL)))
    assert cheapest_available(gone, 11, defer=True) is None


def test_deferred_best_is_never_below_best() -> None:
    accepted = [7] * 60
    for name in schedules.NAMES:
        s = schedules.get(name, seed=3)
        now = best_possible(s, accepted, 1.0, 1990)
        later = best_possible(s, accepted, 1.0, 1990, defer=True)
        assert later.score >= now.score
