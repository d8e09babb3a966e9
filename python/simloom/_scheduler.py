"""Parsing scheduler names (``"fifo"``, ``"random"``, ``"pct"``, ``"pct:auto"``,
``"faithful"``, ``"systematic:d=2"``...).

Owns: the user-facing scheduler grammar and its validation. Must not: schedule
anything (the Rust strategies do).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _core
from .errors import SimloomUsageError

__all__ = ["SCHEDULERS", "SchedulerSpec", "parse_scheduler", "replay_questions"]

#: The scheduler names a user can pass, with what each means.
SCHEDULERS: dict[str, str] = {
    "fifo": "the stock loop's order: oldest ready callback first, no faults",
    "random": "uniform random walk over the ready callbacks",
    "pct": "PCT with depth 3 and a horizon of 100 decisions ('pct:d=4,k=500' to set them)",
    "pct:auto": "PCT whose horizon is measured by a FIFO probe run of the program",
    "faithful": (
        "only what varies on a real loop: ready callbacks keep their order; an iteration may "
        "stall until the next timer (at most 1 s, 'faithful:stall=0.1' to set it); timers "
        "due at the same instant run in any order"
    ),
    "systematic:d=2": (
        "bounded systematic search: every schedule with at most d deviations from FIFO "
        "('systematic:d=2,p=1,max=100000': p bounds the deviations that reorder ready "
        "callbacks; d defaults to 2), stating what was proven"
    ),
}

#: The faithful scheduler's longest stall when the name does not say (the engine's).
DEFAULT_MAX_STALL_NS = _core.DEFAULT_MAX_STALL_NS
#: A stall is one iteration of the loop taking long: an hour is beyond any machine.
MAX_STALL_SECONDS = 3_600

#: PCT's depth and horizon when the name does not say (the engine's defaults).
DEFAULT_PCT_DEPTH = _core.DEFAULT_PCT_DEPTH
DEFAULT_PCT_HORIZON = _core.DEFAULT_PCT_HORIZON
#: PCT draws ``depth - 1`` change points and a priority per task: a depth beyond a
#: few dozen buys nothing and a huge one would allocate without bound.
MAX_PCT_DEPTH = 1_000
#: The horizon is a decision count; a trillion is beyond any universe.
MAX_PCT_HORIZON = 10**12

#: The systematic search's deviation bound and schedule cap when the name does not say.
DEFAULT_SYSTEMATIC_DEVIATIONS = 2
DEFAULT_MAX_SCHEDULES = 100_000
#: A deviation bound beyond a few is astronomically many schedules; refuse nonsense.
MAX_SYSTEMATIC_DEVIATIONS = 64
MAX_SCHEDULES_LIMIT = 10**12


@dataclass(frozen=True)
class SchedulerSpec:
    """A parsed scheduler: the strategy name and its PCT parameters."""

    strategy: str
    depth: int = DEFAULT_PCT_DEPTH
    horizon: int = DEFAULT_PCT_HORIZON
    auto_horizon: bool = False
    #: The faithful scheduler's longest stall (virtual nanoseconds).
    max_stall_ns: int = DEFAULT_MAX_STALL_NS
    #: The systematic search's bound on deviations per schedule, and its cap on
    #: schedules enumerated.
    deviations: int = DEFAULT_SYSTEMATIC_DEVIATIONS
    max_schedules: int = DEFAULT_MAX_SCHEDULES
    #: Of those deviations, at most this many reorder ready callbacks (``None``:
    #: no bound of its own).
    preemptions: int | None = None
    #: PCT only: whether universes start tasks eagerly (``True``: every universe,
    #: ``False``: none; ``None``, the default: the seed draws it, half of them).
    eager: bool | None = None

    @property
    def reorders(self) -> bool:
        """Whether this scheduler may run ready callbacks out of the order they
        became ready, which no real asyncio loop does."""
        return self.strategy in ("random", "pct", "systematic")

    @property
    def name(self) -> str:
        """The canonical spelling, e.g. ``"pct:d=3,k=100"``."""
        if self.strategy == "faithful":
            if self.max_stall_ns == DEFAULT_MAX_STALL_NS:
                return "faithful"
            return f"faithful:stall={self.max_stall_ns / 1e9:g}"
        if self.strategy == "systematic":
            name = f"systematic:d={self.deviations}"
            if self.preemptions is not None:
                name += f",p={self.preemptions}"
            if self.max_schedules != DEFAULT_MAX_SCHEDULES:
                name += f",max={self.max_schedules}"
            return name
        if self.strategy != "pct":
            return self.strategy
        suffix = "" if self.eager is None else f",eager={int(self.eager)}"
        if self.auto_horizon:
            name = "pct:auto" if self.depth == DEFAULT_PCT_DEPTH else f"pct:auto,d={self.depth}"
            return name + suffix
        if (self.depth, self.horizon) == (DEFAULT_PCT_DEPTH, DEFAULT_PCT_HORIZON) and not suffix:
            return "pct"
        return f"pct:d={self.depth},k={self.horizon}{suffix}"


def _positive(option: str, text: str, spec: str, maximum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= maximum:
        raise SimloomUsageError(
            f"scheduler {spec!r}: {option} must be an integer in [1, {maximum}], got {text!r}"
        )
    return value


def parse_scheduler(spec: str | SchedulerSpec) -> SchedulerSpec:
    """Parse a scheduler name; raise :class:`SimloomUsageError` naming the valid ones."""
    if isinstance(spec, SchedulerSpec):
        return spec
    if not isinstance(spec, str):
        raise SimloomUsageError(
            f"scheduler must be a string such as 'random' or 'pct', got {type(spec).__name__}"
        )
    name, _, options = spec.strip().lower().partition(":")
    if name in ("fifo", "random", "faithful") and not options:
        return SchedulerSpec(strategy=name)
    if name == "faithful":
        key, _, value = options.strip().partition("=")
        if key.strip() not in ("stall", "max_stall"):
            raise SimloomUsageError(
                f"scheduler {spec!r}: unknown faithful option {options!r}; use 'stall=<seconds>'"
            )
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not 0 <= seconds <= MAX_STALL_SECONDS:
            raise SimloomUsageError(
                f"scheduler {spec!r}: stall must be a number of seconds in "
                f"[0, {MAX_STALL_SECONDS}], got {value.strip()!r}"
            )
        return SchedulerSpec("faithful", max_stall_ns=round(seconds * 1e9))
    if name == "pct":
        depth, horizon, auto = DEFAULT_PCT_DEPTH, DEFAULT_PCT_HORIZON, False
        eager: bool | None = None
        for option in filter(None, (o.strip() for o in options.split(","))):
            key, _, value = option.partition("=")
            if key == "auto" and not value:
                auto = True
            elif key in ("d", "depth"):
                depth = _positive("depth (d)", value, spec, MAX_PCT_DEPTH)
            elif key in ("k", "horizon"):
                horizon = _positive("horizon (k)", value, spec, MAX_PCT_HORIZON)
            elif key == "eager":
                if value.strip() not in ("0", "1"):
                    raise SimloomUsageError(
                        f"scheduler {spec!r}: eager must be 0 (no universe starts tasks "
                        f"eagerly) or 1 (every universe does), got {value.strip()!r}; "
                        "leave it out for half and half"
                    )
                eager = value.strip() == "1"
            else:
                raise SimloomUsageError(
                    f"scheduler {spec!r}: unknown PCT option {option!r}; "
                    "use 'auto', 'd=<depth>', 'k=<horizon>' or 'eager=0|1'"
                )
        return SchedulerSpec("pct", depth=depth, horizon=horizon, auto_horizon=auto, eager=eager)
    if name == "systematic":
        return _parse_systematic(spec, options)
    known = ", ".join(repr(n) for n in SCHEDULERS)
    raise SimloomUsageError(f"unknown scheduler {spec!r}; expected one of {known}")


def _parse_systematic(spec: str, options: str) -> SchedulerSpec:
    deviations, cap = DEFAULT_SYSTEMATIC_DEVIATIONS, DEFAULT_MAX_SCHEDULES
    preemptions: int | None = None
    for option in filter(None, (o.strip() for o in options.split(","))):
        key, _, value = option.partition("=")
        key = key.strip()
        if key in ("d", "deviations"):
            deviations = _count("d", value, spec)
        elif key in ("p", "preemptions"):
            preemptions = _count("p", value, spec)
        elif key in ("max", "max_schedules"):
            cap = _positive("max", value, spec, MAX_SCHEDULES_LIMIT)
        else:
            raise SimloomUsageError(
                f"scheduler {spec!r}: unknown systematic option {option!r}; "
                "use 'd=<deviations>', 'p=<preemptions>' or 'max=<schedules>'"
            )
    return SchedulerSpec(
        "systematic", deviations=deviations, max_schedules=cap, preemptions=preemptions
    )


def _count(option: str, text: str, spec: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SYSTEMATIC_DEVIATIONS:
        raise SimloomUsageError(
            f"scheduler {spec!r}: {option} must be an integer in "
            f"[0, {MAX_SYSTEMATIC_DEVIATIONS}], got {text.strip()!r}"
        )
    return value


def replay_questions(scheduler: str | SchedulerSpec | None) -> str | None:
    """The scheduler a replay of a universe run under ``scheduler`` must name: the
    faithful one asks questions of its own (stalls, timer ties), so its tape is read
    by it alone; every other scheduler's tape replays alike (``None``)."""
    if isinstance(scheduler, SchedulerSpec):
        return scheduler.name if scheduler.strategy == "faithful" else None
    name = str(scheduler or "")
    return name if name.split(":", 1)[0] == "faithful" else None
