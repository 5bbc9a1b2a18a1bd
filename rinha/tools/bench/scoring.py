"""The official scoring rules (SPEC §5), exactly: money in integer cents, rates as Fractions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from rinha.tools.bench.schedules import PROCESSORS, Schedule

FEES: dict[str, Fraction] = {"default": Fraction(5, 100), "fallback": Fraction(15, 100)}
MAX_BONUS = Fraction(20, 100)  # SPEC: "20 % at p99 <= 1 ms"
BONUS_PER_MS = Fraction(2, 100)
BONUS_ZERO_AT_MS = 11
FINE = Fraction(35, 100)  # on the whole profit, as soon as one check disagrees


def to_cents(amount: float | int | str | Decimal) -> int:
    """A JSON money value (float at the edge) as integer cents, rounded half to even."""
    cents = (Decimal(str(amount)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return int(cents)


def round_cents(value: Fraction) -> int:
    """Exact cents → whole cents, half to even (Python's round on a Fraction)."""
    return round(value)


def bonus(p99_ms: float) -> Fraction:
    """max((11 − p99) × 0.02, 0), capped at the 20 % that SPEC §5 names for p99 ≤ 1 ms."""
    raw = (BONUS_ZERO_AT_MS - Fraction(Decimal(repr(float(p99_ms))))) * BONUS_PER_MS
    return min(max(raw, Fraction(0)), MAX_BONUS)


@dataclass(frozen=True)
class Totals:
    """One processor's line of a summary: count and amount in cents."""

    requests: int = 0
    cents: int = 0


@dataclass(frozen=True)
class ScoreInput:
    requested: int  # POST /payments sent by the clients (any outcome)
    accepted: int  # of those, answered 2xx
    p99_ms: float  # k6 http_req_duration p(99) over every HTTP request of the test
    reported: Mapping[str, Totals]  # our /payments-summary over the final window
    inconsistencies: int  # consistency checks that found a difference


@dataclass(frozen=True)
class Score:
    profit: Fraction  # cents, exact
    bonus: Fraction
    fine: Fraction
    score: Fraction  # cents, exact; 0 when disqualified
    lag: int  # accepted − reported
    reported_requests: int
    disqualified: bool
    fallback_share: float  # fraction of reported payments that went to fallback

    @property
    def score_cents(self) -> int:
        return round_cents(self.score)

    @property
    def profit_cents(self) -> int:
        return round_cents(self.profit)


def profit(reported: Mapping[str, Totals]) -> Fraction:
    """Amount minus each processor's fee, in exact cents."""
    return sum(
        (Fraction(reported.get(p, Totals()).cents) * (1 - FEES[p]) for p in PROCESSORS),
        Fraction(0),
    )


def score(inp: ScoreInput) -> Score:
    """Score = profit + profit × bonus − profit × fine; reporting more than requested → 0."""
    reported_requests = sum(inp.reported.get(p, Totals()).requests for p in PROCESSORS)
    gross = profit(inp.reported)
    b = bonus(inp.p99_ms)
    fine = FINE if inp.inconsistencies > 0 else Fraction(0)
    disqualified = reported_requests > inp.requested
    total = Fraction(0) if disqualified else gross * (1 + b - fine)
    fallback = inp.reported.get("fallback", Totals()).requests
    return Score(
        profit=gross,
        bonus=b,
        fine=fine,
        score=total,
        lag=inp.accepted - reported_requests,
        reported_requests=reported_requests,
        disqualified=disqualified,
        fallback_share=fallback / reported_requests if reported_requests else 0.0,
    )


def cheapest_available(schedule: Schedule, t: float, defer: bool = False) -> str | None:
    """Where a payment arriving at `t` goes at best: default unless it is failing then, else
    fallback if that is not failing, else whichever works first at the next phase that has one.
    With `defer`, a payment may also wait for default to recover at any later phase."""
    later = [phase for phase in schedule.phases if phase.at_s > t]
    ahead = (schedule.phase_at(t), *later)
    if defer:
        for p in PROCESSORS:
            if any(not phase.state(p).failing for phase in ahead):
                return p
        return None
    for phase in ahead:
        for p in PROCESSORS:
            if not phase.state(p).failing:
                return p
    return None


@dataclass(frozen=True)
class Best:
    score: Fraction  # cents, exact
    per_processor: Mapping[str, int]  # payments placed on each
    unplaceable: int  # accepted while both failed to the end: nothing can earn on them

    @property
    def score_cents(self) -> int:
        return round_cents(self.score)


def best_possible(
    schedule: Schedule,
    accepted_per_bucket: Sequence[int],
    bucket_s: float,
    amount_cents: int,
    defer: bool = False,
) -> Best:
    """The best score this run's accepted payments allowed: each on the cheapest processor
    available when it arrived (bucket midpoint), with the full bonus and no fine. With
    `defer`, the ceiling of holding payments back until default works again, if it ever does
    before the end (what a service that waits out default's failures can reach)."""
    placed = {p: 0 for p in PROCESSORS}
    lost = 0
    for i, n in enumerate(accepted_per_bucket):
        if not n:
            continue
        where = cheapest_available(schedule, (i + 0.5) * bucket_s, defer)
        if where is None:
            lost += n
        else:
            placed[where] += n
    gross = profit({p: Totals(n, n * amount_cents) for p, n in placed.items()})
    return Best(gross * (1 + MAX_BONUS), placed, lost)
