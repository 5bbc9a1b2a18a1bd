"""Processor delay/failure schedules for the load test: named presets, seeded random, scaling."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

# every preset is written for the official 60 s ramp and stretched to the run's own length
BASE_S = 60.0
PROCESSORS = ("default", "fallback")


@dataclass(frozen=True)
class ProcState:
    """One processor's settings: a delay in ms (applied to every call) and the failure switch."""

    delay_ms: int = 0
    failing: bool = False

    def label(self) -> str:
        if not self.failing and not self.delay_ms:
            return "ok"
        parts = ["fail"] if self.failing else []
        if self.delay_ms:
            parts.append(
                f"{self.delay_ms / 1000:g}s" if self.delay_ms >= 1000 else f"{self.delay_ms}ms"
            )
        return "+".join(parts)


OK = ProcState()


@dataclass(frozen=True)
class Phase:
    """The processors' settings from `at_s` (seconds after the test start) until the next phase."""

    at_s: float
    default: ProcState = OK
    fallback: ProcState = OK

    def state(self, processor: str) -> ProcState:
        return self.default if processor == "default" else self.fallback

    def label(self) -> str:
        return f"D:{self.default.label()} F:{self.fallback.label()}"

    def to_json(self) -> dict:
        return {
            "at_s": self.at_s,
            "label": self.label(),
            **{
                p: {"delay": self.state(p).delay_ms, "failure": self.state(p).failing}
                for p in PROCESSORS
            },
        }


@dataclass(frozen=True)
class Schedule:
    """Phases sorted by start time; the first starts at 0 and the last holds until the end."""

    name: str
    phases: tuple[Phase, ...]
    length_s: float = BASE_S  # the run length the phase times are written for

    def __post_init__(self) -> None:
        if not self.phases or self.phases[0].at_s != 0:
            raise ValueError(f"schedule {self.name!r}: the first phase must start at 0")
        times = [p.at_s for p in self.phases]
        if times != sorted(times) or len(set(times)) != len(times):
            raise ValueError(f"schedule {self.name!r}: phase times must strictly increase")

    def scaled(self, length_s: float) -> Schedule:
        """The same schedule stretched (or squeezed) to a run of `length_s` seconds."""
        if length_s == self.length_s:
            return self
        k = length_s / self.length_s
        phases = tuple(replace(p, at_s=round(p.at_s * k, 3)) for p in self.phases)
        return Schedule(self.name, phases, length_s)

    def phase_at(self, t: float) -> Phase:
        current = self.phases[0]
        for phase in self.phases:
            if phase.at_s > t:
                break
            current = phase
        return current

    def to_json(self) -> list[dict]:
        return [p.to_json() for p in self.phases]


def _fail(delay_ms: int = 0) -> ProcState:
    return ProcState(delay_ms, True)


def _slow(delay_ms: int) -> ProcState:
    return ProcState(delay_ms, False)


def _published() -> tuple[Phase, ...]:
    return (
        Phase(0),
        Phase(10, default=_slow(100)),
        Phase(20, default=_fail(100)),
        Phase(30, default=_fail(2000), fallback=_fail(1000)),
        Phase(40, default=_slow(20), fallback=_slow(20)),
        Phase(50, default=_slow(20), fallback=_slow(5000)),
    )


def _flapping(
    period_s: float = 3.0, start_s: float = 6.0, end_s: float = 54.0
) -> tuple[Phase, ...]:
    phases = [Phase(0)]
    t, failing = start_s, True
    while t < end_s:
        phases.append(Phase(t, default=ProcState(0, failing)))
        t, failing = t + period_s, not failing
    if phases[-1].default.failing:
        phases.append(Phase(t))
    return tuple(phases)


PRESETS: dict[str, tuple[str, tuple[Phase, ...]]] = {
    "healthy": ("both processors healthy all along", (Phase(0),)),
    "published": (
        "healthy, default 100 ms, default failing, both failing and slow (2 s / 1 s), "
        "both 20 ms, fallback 5 s slow; 10 s each",
        _published(),
    ),
    "default-down-40s": (
        "default failing from 10 s to 50 s",
        (Phase(0), Phase(10, default=_fail()), Phase(50)),
    ),
    "default-flapping": (
        "default failing on/off every 3 s from 6 s to 54 s",
        _flapping(),
    ),
    "default-slow-1s-40s": (
        "default answers after 1 s from 10 s to 50 s",
        (Phase(0), Phase(10, default=_slow(1000)), Phase(50)),
    ),
    "default-failing-from-mid": (
        "default failing from 30 s to the end",
        (Phase(0), Phase(30, default=_fail())),
    ),
    "both-down-25s": (
        "both processors failing from 20 s to 45 s",
        (Phase(0), Phase(20, default=_fail(), fallback=_fail()), Phase(45)),
    ),
    "both-down-late": (
        "both processors failing from 35 s to 55 s: the biggest backlog, 5 s before the end",
        (Phase(0), Phase(35, default=_fail(), fallback=_fail()), Phase(55)),
    ),
}

NAMES = (*PRESETS, "random")

_DELAYS_MS = (20, 50, 100, 250, 500, 1000, 2000, 5000)


def _random_state(rng: random.Random) -> ProcState:
    roll = rng.random()
    if roll < 0.40:
        return OK
    if roll < 0.70:
        return _slow(rng.choice(_DELAYS_MS))
    if roll < 0.92:
        return _fail()
    return _fail(rng.choice(_DELAYS_MS))


def random_schedule(seed: int, length_s: float = BASE_S, steps: int = 6) -> Schedule:
    """Seeded random: `steps` equal phases (10 s each over 60 s); the first is always healthy."""
    rng = random.Random(seed)
    step_s = length_s / steps
    phases = [Phase(0)]
    for i in range(1, steps):
        phases.append(
            Phase(round(i * step_s, 3), default=_random_state(rng), fallback=_random_state(rng))
        )
    return Schedule(f"random-{seed}", tuple(phases), length_s)


def get(name: str, length_s: float = BASE_S, seed: int = 0) -> Schedule:
    """The schedule called `name`, fitted to a run of `length_s` seconds."""
    if name == "random":
        return random_schedule(seed, length_s)
    try:
        _, phases = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown schedule {name!r}; choose from {', '.join(NAMES)}") from None
    return Schedule(name, phases).scaled(length_s)


def describe() -> str:
    """One wrapped line per schedule, for --help."""
    import textwrap

    items = [(name, text) for name, (text, _) in PRESETS.items()]
    items.append(
        ("random", "seeded by --seed: 6 equal phases, each processor ok, slow, failing or both")
    )
    return "\n".join(
        textwrap.fill(f"{name}: {text}", width=78, initial_indent="  ", subsequent_indent="    ")
        for name, text in items
    )
