"""A universe's budgets: how many steps and how much virtual time a run may take,
and how long one step may run on the wall clock (the watchdog).

A simulated universe never hangs: a program kept alive by a periodic timer, a task
spinning on ``asyncio.sleep(1e-9)`` or a deadlock hidden behind a heartbeat runs
out of its step or virtual-time budget and ends with a named error that says what
was still scheduled; a callback that never yields (``while not flag: pass``) is
stopped by the watchdog with its stack. The defaults are far above what real
programs use (``world.until`` gives up after one virtual hour; the toy Raft takes a
few thousand steps) and low enough that each case ends within a few seconds.

Owns: the defaults and the one validation every entry point uses (``SimLoop``,
``simloom.run``, ``simloom.replay``, ``@simloom.test``, ``simloom.universes``, the
``--simloom-*`` options). Must not: count anything (the engine does) or report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import _core
from .errors import SimloomUsageError

__all__ = [
    "DEFAULT_MAX_STEPS",
    "DEFAULT_MAX_VIRTUAL_TIME",
    "DEFAULT_WATCHDOG",
    "Budgets",
    "budgets",
    "parse_option",
]

#: Steps one run may take (about 1.5-2 s of wall time at simloom's 1-1.5 million
#: steps per second). ``world.until`` polling for its whole virtual hour takes
#: 720,000.
DEFAULT_MAX_STEPS = 1_000_000
#: Virtual seconds one run may last: one day (the clock may reach it exactly).
DEFAULT_MAX_VIRTUAL_TIME = 86_400.0
#: Wall-clock seconds one step may run before the watchdog stops the universe.
DEFAULT_WATCHDOG = 2.0

#: Deadlines this far away never fire (about 317 years); a larger budget means none.
_MAX_VIRTUAL_TIME = _core.NEVER_SECONDS
_MAX_STEPS = 2**63


@dataclass(frozen=True)
class Budgets:
    """Validated budgets (``None``: unbounded / no watchdog)."""

    max_steps: int | None = DEFAULT_MAX_STEPS
    max_virtual_time: float | None = DEFAULT_MAX_VIRTUAL_TIME
    watchdog: float | None = DEFAULT_WATCHDOG

    def arguments(self) -> dict[str, Any]:
        """As keyword arguments of ``SimLoop``, ``run``, ``replay``, ``universes``."""
        return {
            "max_steps": self.max_steps,
            "max_virtual_time": self.max_virtual_time,
            "watchdog": self.watchdog,
        }

    @property
    def max_time_ns(self) -> int | None:
        if self.max_virtual_time is None:
            return None
        return round(self.max_virtual_time * 1e9)

    def overridden(self, overrides: Mapping[str, object]) -> Budgets:
        """These budgets with some replaced (command-line options over a test's own)."""
        return budgets(**{**self.arguments(), **overrides})


_DEFAULTS = Budgets()


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def budgets(
    max_steps: object = DEFAULT_MAX_STEPS,
    max_virtual_time: object = DEFAULT_MAX_VIRTUAL_TIME,
    watchdog: object = DEFAULT_WATCHDOG,
) -> Budgets:
    """Check the three arguments; raise :class:`SimloomUsageError` naming the bad one
    and its valid range."""
    if (
        max_steps is DEFAULT_MAX_STEPS
        and max_virtual_time is DEFAULT_MAX_VIRTUAL_TIME
        and watchdog is DEFAULT_WATCHDOG
    ):
        # Every universe of an exploration comes through here (twice): keep it cheap.
        return _DEFAULTS
    if max_steps is not None and (
        isinstance(max_steps, bool)
        or not isinstance(max_steps, int)
        or not 1 <= max_steps < _MAX_STEPS
    ):
        raise SimloomUsageError(
            f"max_steps must be an integer in [1, 2**63) or None (no step budget), "
            f"got {max_steps!r}"
        )
    if max_virtual_time is not None and (
        not _is_number(max_virtual_time) or not 0 < max_virtual_time <= _MAX_VIRTUAL_TIME  # type: ignore[operator]
    ):
        raise SimloomUsageError(
            "max_virtual_time must be virtual seconds in (0, 1e10] or None (no "
            f"virtual-time budget), got {max_virtual_time!r}"
        )
    if watchdog is not None and (
        not _is_number(watchdog)
        or not math.isfinite(watchdog)  # type: ignore[arg-type]
        or not 0 <= watchdog <= _MAX_VIRTUAL_TIME  # type: ignore[operator]
    ):
        raise SimloomUsageError(
            "watchdog must be wall-clock seconds in (0, 1e10], or 0 or None (no "
            f"watchdog), got {watchdog!r}"
        )
    return Budgets(
        max_steps=max_steps,
        max_virtual_time=None if max_virtual_time is None else float(max_virtual_time),  # type: ignore[arg-type]
        watchdog=float(watchdog) if watchdog else None,  # type: ignore[arg-type]
    )


def parse_option(name: str, text: str) -> int | float | None:
    """A ``--simloom-max-steps``-style option's value: a number, or ``none``."""
    if text.strip().lower() in ("none", "off"):
        return None
    try:
        return int(text) if name == "max_steps" else float(text)
    except ValueError:
        raise SimloomUsageError(f"{name} must be a number or 'none', got {text!r}") from None
