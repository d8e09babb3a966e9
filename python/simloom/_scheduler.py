"""Parsing scheduler names (``"fifo"``, ``"random"``, ``"pct"``, ``"pct:auto"``...).

Owns: the user-facing scheduler grammar and its validation. Must not: schedule
anything (the Rust strategies do).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _core
from .errors import SimloomUsageError

__all__ = ["SCHEDULERS", "SchedulerSpec", "parse_scheduler"]

#: The scheduler names a user can pass, with what each means.
SCHEDULERS: dict[str, str] = {
    "fifo": "the stock loop's order: oldest ready callback first, no faults",
    "random": "uniform random walk over the ready callbacks",
    "pct": "PCT with depth 3 and a horizon of 100 decisions ('pct:d=4,k=500' to set them)",
    "pct:auto": "PCT whose horizon is measured by a FIFO probe run of the program",
}

#: PCT's depth and horizon when the name does not say (the engine's defaults).
DEFAULT_PCT_DEPTH = _core.DEFAULT_PCT_DEPTH
DEFAULT_PCT_HORIZON = _core.DEFAULT_PCT_HORIZON
#: PCT draws ``depth - 1`` change points and a priority per task: a depth beyond a
#: few dozen buys nothing and a huge one would allocate without bound.
MAX_PCT_DEPTH = 1_000
#: The horizon is a decision count; a trillion is beyond any universe.
MAX_PCT_HORIZON = 10**12


@dataclass(frozen=True)
class SchedulerSpec:
    """A parsed scheduler: the strategy name and its PCT parameters."""

    strategy: str
    depth: int = DEFAULT_PCT_DEPTH
    horizon: int = DEFAULT_PCT_HORIZON
    auto_horizon: bool = False

    @property
    def name(self) -> str:
        """The canonical spelling, e.g. ``"pct:d=3,k=100"``."""
        if self.strategy != "pct":
            return self.strategy
        if self.auto_horizon:
            return "pct:auto" if self.depth == DEFAULT_PCT_DEPTH else f"pct:auto,d={self.depth}"
        if (self.depth, self.horizon) == (DEFAULT_PCT_DEPTH, DEFAULT_PCT_HORIZON):
            return "pct"
        return f"pct:d={self.depth},k={self.horizon}"


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
    if name in ("fifo", "random") and not options:
        return SchedulerSpec(strategy=name)
    if name == "pct":
        depth, horizon, auto = DEFAULT_PCT_DEPTH, DEFAULT_PCT_HORIZON, False
        for option in filter(None, (o.strip() for o in options.split(","))):
            key, _, value = option.partition("=")
            if key == "auto" and not value:
                auto = True
            elif key in ("d", "depth"):
                depth = _positive("depth (d)", value, spec, MAX_PCT_DEPTH)
            elif key in ("k", "horizon"):
                horizon = _positive("horizon (k)", value, spec, MAX_PCT_HORIZON)
            else:
                raise SimloomUsageError(
                    f"scheduler {spec!r}: unknown PCT option {option!r}; "
                    "use 'auto', 'd=<depth>' or 'k=<horizon>'"
                )
        return SchedulerSpec("pct", depth=depth, horizon=horizon, auto_horizon=auto)
    known = ", ".join(repr(n) for n in SCHEDULERS)
    raise SimloomUsageError(f"unknown scheduler {spec!r}; expected one of {known}")
