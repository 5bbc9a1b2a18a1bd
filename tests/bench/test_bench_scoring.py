"""Scoring by hand-computed examples: profit, bonus and its clamp, the fine, disqualification."""

from fractions import Fraction

import pytest

from rinha.tools.bench.scoring import (
    ScoreInput,
    Totals,
    bonus,
    profit,
    round_cents,
    score,
    to_cents,
)

# 1000 payments of 19.90 on default, 100 on fallback
REPORTED = {"default": Totals(1000, 1_990_000), "fallback": Totals(100, 199_000)}
# 1_990_000 × 0.95 + 199_000 × 0.85 = 1_890_500 + 169_150
PROFIT = 2_059_650


def test_to_cents_rounds_half_even() -> None:
    assert to_cents(19.9) == 1990
    assert to_cents(19.90) == 1990
    assert to_cents(415542345.98) == 41_554_234_598
    assert to_cents("0.005") == 0
    assert to_cents("0.015") == 2
    assert to_cents(0) == 0


def test_profit_takes_each_processors_fee() -> None:
    assert profit(REPORTED) == PROFIT
    assert profit({"default": Totals(1, 1990)}) == Fraction(189_050, 100)  # 18.905 → exact


@pytest.mark.parametrize(
    ("p99", "expected"),
    [
        (1.25, Fraction(195, 1000)),  # (11 − 1.25) × 0.02
        (1.0, Fraction(20, 100)),
        (0.4, Fraction(20, 100)),  # capped at 20 %
        (10.5, Fraction(1, 100)),
        (11.0, Fraction(0)),
        (41.7, Fraction(0)),  # never negative
    ],
)
def test_bonus(p99: float, expected: Fraction) -> None:
    assert bonus(p99) == expected


def test_score_with_bonus_and_no_fine() -> None:
    s = score(
        ScoreInput(requested=1200, accepted=1150, p99_ms=1.25, reported=REPORTED, inconsistencies=0)
    )
    assert s.profit == PROFIT
    assert s.fine == 0
    # 2_059_650 × 1.195 = 2_461_281.75 cents
    assert s.score == Fraction(246_128_175, 100)
    assert s.score_cents == 2_461_282
    assert s.lag == 50
    assert s.reported_requests == 1100
    assert not s.disqualified
    assert s.fallback_share == pytest.approx(100 / 1100)


def test_one_inconsistency_fines_35_percent_of_the_whole_profit() -> None:
    s = score(
        ScoreInput(requested=1100, accepted=1100, p99_ms=1.25, reported=REPORTED, inconsistencies=1)
    )
    assert s.fine == Fraction(35, 100)
    # 2_059_650 × (1 + 0.195 − 0.35) = 1_740_404.25
    assert s.score_cents == 1_740_404
    assert s.lag == 0


def test_fine_without_bonus_at_slow_p99() -> None:
    s = score(
        ScoreInput(
            requested=1100, accepted=1100, p99_ms=200.0, reported=REPORTED, inconsistencies=3
        )
    )
    assert s.bonus == 0
    assert s.score == PROFIT * Fraction(65, 100)


def test_reporting_more_than_requested_disqualifies() -> None:
    s = score(
        ScoreInput(requested=1099, accepted=1099, p99_ms=1.0, reported=REPORTED, inconsistencies=0)
    )
    assert s.disqualified
    assert s.score == 0
    assert s.lag == -1


def test_reporting_more_than_accepted_is_only_negative_lag() -> None:
    # a POST that timed out at the client can still be processed: not a disqualification
    s = score(
        ScoreInput(requested=1100, accepted=1090, p99_ms=1.0, reported=REPORTED, inconsistencies=0)
    )
    assert not s.disqualified
    assert s.lag == -10


def test_nothing_reported() -> None:
    s = score(ScoreInput(requested=10, accepted=0, p99_ms=1.0, reported={}, inconsistencies=0))
    assert s.score == 0 and s.fallback_share == 0.0 and s.lag == 0


def test_round_cents_half_even() -> None:
    assert round_cents(Fraction(5, 2)) == 2
    assert round_cents(Fraction(7, 2)) == 4
