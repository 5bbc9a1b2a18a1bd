"""The routing decision, the processor state it reads and the catch-up pacing, without any
network."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rinha.config import SETTINGS, Config, help_table
from rinha.fast import Payment
from rinha.pacing import catch_up
from rinha.processors import (
    DEFAULT,
    FAILED,
    FALLBACK,
    NO_EVIDENCE,
    STORED,
    Processor,
)
from rinha.routing import MAX_PROBES, choose_processor

CONFIG = Config(hold_ms=10_000, last_resort_ms=30_000, slow_ms=1_200, max_in_flight=100)
T0 = 1_750_000_000_000  # epoch ms
ID_A = "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"
ID_B = "5b8a02c9-8e37-4e0e-bb2a-5ed2d8d071c4"


def pair() -> tuple[Processor, Processor]:
    return (
        Processor(DEFAULT, "http://127.0.0.1:1", CONFIG),
        Processor(FALLBACK, "http://127.0.0.1:2", CONFIG),
    )


def fail(p: Processor, at: int, latency: int = 5) -> None:
    p.observe(at, at - latency, False)
    p.refresh(at)


def succeed(p: Processor, at: int, latency: int = 5) -> None:
    p.observe(at, at - latency, True)
    p.refresh(at)


def test_healthy_default_always_wins():
    d, f = pair()
    succeed(d, T0)
    succeed(f, T0, latency=1.0)
    assert choose_processor(d, f, T0, CONFIG, 0) == DEFAULT


def test_capacity_bound_holds():
    d, f = pair()
    assert choose_processor(d, f, T0, CONFIG, CONFIG.max_in_flight) is None


def test_failing_default_is_probed_one_call_at_a_time_after_backoff():
    d, f = pair()
    fail(d, T0)
    assert choose_processor(d, f, T0, CONFIG, 0) is None, "inside the back-off"
    later = d.next_probe_ms
    assert choose_processor(d, f, later, CONFIG, 0) == DEFAULT
    d.in_flight, d.last_probe_ms = 1, later
    assert choose_processor(d, f, later, CONFIG, 1) is None, "probes are spaced"
    spaced = later + CONFIG.retry_max_ms
    assert choose_processor(d, f, spaced, CONFIG, 1) == DEFAULT, (
        "a failing processor whose answers take long gets a new probe anyway"
    )
    d.in_flight = MAX_PROBES
    assert choose_processor(d, f, spaced, CONFIG, MAX_PROBES) is None, "but not unboundedly"


def test_backoff_doubles_and_is_capped():
    d, _ = pair()
    waits = []
    for i in range(8):
        fail(d, T0 + i)
        waits.append(d.backoff_ms)
    assert waits[:4] == [20, 40, 80, 160] and max(waits) == CONFIG.retry_max_ms == 250


def test_spill_to_fallback_only_after_hold_budget():
    d, f = pair()
    succeed(f, T0)
    fail(d, T0)
    d.next_probe_ms = T0 + 10**9  # no probe due, to isolate the spill rule
    assert choose_processor(d, f, T0 + CONFIG.hold_ms - 1, CONFIG, 0) is None
    d.refresh(T0 + CONFIG.hold_ms)
    assert choose_processor(d, f, T0 + CONFIG.hold_ms, CONFIG, 0) == FALLBACK


def test_both_recovering_together_default_gets_its_chance_first():
    d, f = pair()
    fail(f, T0)
    fail(d, T0 + 1)
    d.next_probe_ms = T0 + 10**9
    d.in_flight, f.in_flight = 1, 0  # a default probe is out, answers take seconds
    now = T0 + CONFIG.hold_ms + 100
    succeed(f, now)  # fallback is back first
    d.refresh(now)
    assert choose_processor(d, f, now, CONFIG, 1) is None, (
        "no default failure seen since fallback recovered: wait for default's probe"
    )
    fail(d, now + 50, latency=10)  # a probe sent after fallback's recovery fails
    assert choose_processor(d, f, now + 50, CONFIG, 1) == FALLBACK


def test_stale_answers_do_not_undo_newer_evidence():
    d, _ = pair()
    d.observe(T0 + 100, T0 + 90, True)  # sent at +90: ok
    d.observe(T0 + 2000, T0, False)  # sent at +0: 500, 2 s later
    assert d.refresh(T0 + 2000), "an older call's failure is old news"
    assert d.bad_sent_ms == T0, "but it still counts as a failure seen"


def test_no_spill_to_a_failing_or_slow_fallback():
    d, f = pair()
    fail(d, T0)
    succeed(f, T0, latency=5_000)  # working but slower than the judge's window edge
    d.next_probe_ms = f.next_probe_ms = T0 + 10**9
    now = T0 + CONFIG.hold_ms + 1
    assert choose_processor(d, f, now, CONFIG, 0) is None


def test_default_recovers_after_one_good_probe():
    d, f = pair()
    fail(d, T0)
    succeed(d, T0 + 100)
    assert choose_processor(d, f, T0 + 100, CONFIG, 0) == DEFAULT


def test_slow_default_detected_from_calls_still_in_flight():
    d, f = pair()
    succeed(d, T0)
    d.call_starts[1] = T0
    d.in_flight = 1
    assert d.usable(T0 + 1_000)
    assert not d.usable(T0 + 1_500), "a call pending 1.5 s means slow"


def test_calls_older_than_the_newest_evidence_do_not_make_it_slow():
    d, f = pair()
    d.call_starts[1] = T0  # a probe still waiting on a failing, slow processor
    d.in_flight = 1
    succeed(d, T0 + 1_900)  # a later probe came back fast: recovered
    assert d.refresh(T0 + 2_000)


def test_last_resort_sends_to_slow_but_working_processor():
    d, f = pair()
    succeed(d, T0, latency=5_000)
    fail(f, T0)
    d.in_flight = MAX_PROBES  # probes are out: no more probes
    f.next_probe_ms = T0 + 10**9
    later = T0 + CONFIG.last_resort_ms
    d.refresh(later)
    f.refresh(later)
    assert choose_processor(d, f, later - 1, CONFIG, MAX_PROBES) is None
    assert choose_processor(d, f, later, CONFIG, MAX_PROBES) == DEFAULT


def test_health_report_speaks_only_for_processors_not_called_recently():
    d, f = pair()
    succeed(d, T0)
    d.apply_health(T0 + 100, True, 0)
    assert d.usable(T0 + 100), "a real success 100 ms ago wins"
    assert not d.usable(T0 + 3_000), "an old success loses to fresh health"
    f.apply_health(T0, False, 2_000)
    assert not f.usable(T0 + 3_000), "health says it is slow"


def test_config_defaults_match_the_documented_table():
    assert Config.from_env({}) == Config()
    assert {env for _, env, _, _ in SETTINGS} <= set(help_table().split())


def test_config_rejects_bad_values():
    import pytest

    with pytest.raises(ValueError, match="RINHA_MAX_IN_FLIGHT"):
        Config.from_env({"RINHA_MAX_IN_FLIGHT": "many"})
    with pytest.raises(ValueError, match="RINHA_INSTANCE_ID"):
        Config.from_env({"RINHA_INSTANCE_ID": "1"})
    assert (
        Config.from_env(
            {"RINHA_PEERS": "unix:/a.sock, http://h:1", "RINHA_INSTANCE_ID": "2"}
        ).cluster_size
        == 3
    )


def test_state_changes_are_logged_and_rate_limited(caplog) -> None:
    import logging

    from rinha.processors import STATE_LOG_EVERY_MS, Processor

    p = Processor(0, "http://127.0.0.1:1", Config(slow_ms=1_200, retry_min_ms=20, retry_max_ms=250))
    caplog.set_level(logging.INFO, logger="rinha.processors")
    t = 1_000_000
    p.observe(t, t, False)
    p.refresh(t)
    p.observe(t + 10, t + 10, True)
    p.refresh(t + 10)  # flaps back within the limit: not logged
    p.observe(t + 20, t + 20, False)
    p.refresh(t + 20)
    now = t + STATE_LOG_EVERY_MS + 20
    p.observe(now, now - 30, True)
    p.refresh(now)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines[0] == ("WARNING", "processor default unusable: failing")
    assert lines[1][0] == "INFO" and "usable again" in lines[1][1]
    assert "2 changes not logged" in lines[1][1] and len(lines) == 2


def test_a_call_is_counted_out_until_it_ends_and_its_outcome_is_the_evidence():
    d, _ = pair()
    payment = Payment(ID_A, 100)
    d.start_call(payment, T0)
    assert d.in_flight == 1 and d.call_starts == {payment: T0}
    d.end_call(payment, T0 + 30, STORED)
    assert d.in_flight == 0 and not d.call_starts and d.processed == 1
    assert d.latency_ms == 30.0 and not d.failing
    d.start_call(payment, T0 + 40)
    d.end_call(payment, T0 + 45, FAILED)
    assert d.failing and d.backoff_ms == CONFIG.retry_min_ms and d.processed == 1


def test_a_429_or_a_refusal_says_nothing_of_the_processors_health():
    d, _ = pair()
    succeed(d, T0)
    payment = Payment(ID_A, 100)
    d.start_call(payment, T0 + 10)
    d.end_call(payment, T0 + 5_000, NO_EVIDENCE)
    assert d.in_flight == 0 and not d.failing and d.latency_ms == 5.0
    assert d.refresh(T0 + 5_000), "still usable: a full queue is not slowness"


def test_a_probe_is_stamped_only_while_unusable():
    d, _ = pair()
    d.start_call(Payment(ID_A, 1), T0)
    assert d.last_probe_ms == 0, "a usable processor's calls are not probes"
    fail(d, T0 + 1)
    d.start_call(Payment(ID_B, 1), T0 + 2)
    assert d.last_probe_ms == T0 + 2


def test_a_lookup_counts_as_out_but_is_no_latency_sample():
    d, _ = pair()
    d.start_lookup()
    assert d.in_flight == 1 and not d.call_starts
    d.end_lookup(T0, STORED)
    assert d.in_flight == 0 and d.processed == 1 and d.latency_ms == 0.0
    d.start_lookup()
    d.end_lookup(T0 + 1, FAILED)
    assert d.failing and d.processed == 1


def test_catch_up_lets_arrivals_through_and_a_backlog_at_its_pace(fast):
    pacing = fast.CatchUp(16, 200, 3_000, 5)
    pacing.at = 100.0
    for _ in range(3):
        pacing.arrive()
    # 3 arrivals + 200/s x 5 ms = 1 backlog call
    assert pacing.budget(100.005, backlog=50) == (4, 3)
    pacing.spent(allowed=4, started=4, arrived=3, backlog=46)
    assert pacing.ends == 100.005 + 3.0, "sending as fast as allowed with more queued: a drain"
    assert pacing.budget(100.010, backlog=46) == (1, 0)
    # an idle second earns no more than two ticks' worth
    pacing.spent(allowed=1, started=0, arrived=0, backlog=46)
    assert pacing.ends == 0.0, "held back by routing: not a drain"
    assert pacing.budget(101.010, backlog=46) == (2, 0)


def test_catch_up_off_allows_a_full_tick_every_time():
    pacing = catch_up(Config(catch_up_per_s=0, launch_per_tick=16))
    assert pacing.budget(5.0, backlog=1_000) == (16, 16)
    pacing.stop()
    assert pacing.budget(6.0, backlog=1_000) == (16, 16)


class _PlainCatchUp:
    """CatchUp's arithmetic with no shortcut: what the fast path must always agree with."""

    def __init__(self, config: Config) -> None:
        self.cap, self.rate = config.launch_per_tick, float(config.catch_up_per_s)
        self.window_s, self.tick_s = config.catch_up_ms / 1000, config.dispatch_tick_ms / 1000
        self.credit, self.at, self.ends = 0.0, 0.0, 0.0

    def budget(self, now_s: float, backlog: int, arrived: int) -> tuple[int, int]:
        rate = self.rate
        if self.ends:
            left_s = self.ends - now_s
            if left_s <= self.tick_s:
                return self.cap, arrived
            rate = max(rate, backlog / left_s)
        earned = (now_s - self.at) * rate
        self.at = now_s
        self.credit = min(self.credit + earned, max(1.0, 2 * rate * self.tick_s))
        return min(self.cap, arrived + int(self.credit + 1e-9)), arrived

    def spent(self, allowed: int, started: int, arrived: int, backlog: int) -> None:
        self.credit = max(0.0, self.credit - max(0, started - arrived))
        if started == allowed and backlog:
            if not self.ends:
                self.ends = self.at + self.window_s
        else:
            self.ends = 0.0


@settings(max_examples=200, deadline=None)
@given(
    ticks=st.lists(
        st.tuples(st.integers(0, 20), st.integers(0, 30), st.integers(1, 40), st.booleans()),
        max_size=60,
    )
)
def test_catch_up_shortcut_allows_what_the_plain_arithmetic_allows(fast, ticks):
    """(arrivals, older backlog, ms to the next pump, routing holds some) per pump, in both
    implementations."""
    config = Config(catch_up_per_s=400, catch_up_ms=60, launch_per_tick=16, dispatch_tick_ms=5)
    pacing, plain = fast.CatchUp(16, 400, 60, 5), _PlainCatchUp(config)
    now_s, older = 100.0, 0
    for arrived, extra, step_ms, held in ticks:
        older = min(older, extra)
        backlog = older + arrived
        for _ in range(arrived):
            pacing.arrive()
        allowed, mine = pacing.budget(now_s, backlog)
        plain_allowed, plain_mine = plain.budget(now_s, backlog, arrived)
        # what a pump can start is bounded by what waits: that must agree, not the bound
        assert (min(allowed, backlog), mine) == (min(plain_allowed, backlog), plain_mine)
        started = max(0, min(allowed, backlog) - (1 if held and backlog else 0))
        older = backlog - started
        pacing.spent(allowed, started, arrived, older)
        plain.spent(plain_allowed, started, arrived, older)
        assert pacing.ends == plain.ends  # the same drains, with the same deadlines
        now_s += step_ms / 1000
