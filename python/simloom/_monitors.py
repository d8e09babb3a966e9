"""Monitors: properties judged between the steps of a universe.

``always(p)`` — ``p()`` is true after every step. ``eventually(p, within=)`` — it
becomes true, within ``within`` virtual seconds (or before the program ends).
``leads_to(p, q, within=)`` — whenever ``p()`` is true, ``q()`` is true then or
later, within ``within`` seconds (or before the program ends).

The judging is Rust's (``rust/src/check/monitors.rs``): after each step that may
have run program code it calls the predicates of the monitors still open (an
``eventually`` that held is done); a step of asyncio's own sleep timer
(``_set_result_unless_cancelled``, which only resolves a future) runs none. A
predicate must be a quick, side-effect-free function of the program's state: it
makes no tape choice and schedules nothing, so a passing monitor leaves the
universe exactly as it was (the same digest with and without it).

Owns: the public functions and the violation's message. Must not: keep state
across universes (each monitor belongs to the loop it was added to).
"""

from __future__ import annotations

import asyncio
import asyncio.futures
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import MonitorViolationError, SimloomUsageError

__all__ = ["Monitor", "always", "eventually", "leads_to"]

Predicate = Callable[[], object]


@dataclass
class Monitor:
    """A monitor added to the running universe; :meth:`cancel` stops judging it."""

    name: str
    kind: str
    within: float | None
    _loop: Any
    _index: int

    def cancel(self) -> None:
        """Stop judging this monitor (an open ``leads_to`` obligation is dropped)."""
        self._loop._remove_monitor(self._index)


def _simulated_loop(function: str) -> Any:
    loop = asyncio.events._get_running_loop()
    if loop is None or not getattr(loop, "_simloom_loop", False):
        raise SimloomUsageError(
            f"simloom.{function}() judges the steps of a universe: call it inside one "
            "(a @simloom.test, simloom.universes() or simloom.run program, or a test "
            "under pytest --simloom)"
        )
    return loop


def _check(function: str, predicate: object, argument: str) -> None:
    if not callable(predicate):
        raise SimloomUsageError(
            f"simloom.{function}(): {argument} must be a callable taking no arguments, "
            f"not {predicate!r}"
        )


def _within_ns(function: str, within: float | None) -> int | None:
    if within is None:
        return None
    if isinstance(within, bool) or not isinstance(within, int | float) or not within >= 0:
        raise SimloomUsageError(
            f"simloom.{function}(): within must be a number of virtual seconds >= 0 or "
            f"None, not {within!r}"
        )
    return round(within * 1e9)


def _name(name: str | None, predicate: Any) -> str:
    if name is not None:
        if not isinstance(name, str) or not name:
            raise SimloomUsageError(f"a monitor's name must be a non-empty str, not {name!r}")
        return name
    return getattr(predicate, "__qualname__", None) or repr(predicate)


def _add(
    loop: Any, kind: str, name: str, p: Predicate, q: Predicate | None, within: float | None
) -> Monitor:
    monitors: list[Monitor] | None = getattr(loop, "_simloom_monitors", None)
    if monitors is None:
        monitors = []
        loop._simloom_monitors = monitors
        loop._set_quiet_callback(asyncio.futures._set_result_unless_cancelled)  # type: ignore[attr-defined]
    index = loop._add_monitor(kind, p, q, _within_ns(kind, within))
    monitor = Monitor(name, kind, within, loop, index)
    # Indices restart with each universe (the loop's monitors are reset with it).
    del monitors[index:]
    monitors.append(monitor)
    return monitor


def always(predicate: Predicate, *, name: str | None = None) -> Monitor:
    """Fail the universe (``MonitorViolationError``) after the first step at which
    ``predicate()`` is false. It must hold now, too."""
    _check("always", predicate, "predicate")
    loop = _simulated_loop("always")
    monitor = _add(loop, "always", _name(name, predicate), predicate, None, None)
    if not predicate():
        raise _violation(loop, monitor, loop._now_ns(), None, "false", loop._steps(), None)
    return monitor


def eventually(
    predicate: Predicate, *, within: float | None = None, name: str | None = None
) -> Monitor:
    """Fail the universe unless ``predicate()`` is true after some step no later than
    ``within`` virtual seconds from now (``None``: before the program ends)."""
    _check("eventually", predicate, "predicate")
    _within_ns("eventually", within)
    loop = _simulated_loop("eventually")
    return _add(loop, "eventually", _name(name, predicate), predicate, None, within)


def leads_to(
    p: Predicate, q: Predicate, *, within: float | None = None, name: str | None = None
) -> Monitor:
    """Fail the universe if ``p()`` is true after a step and ``q()`` is not true
    then or after a later step within ``within`` virtual seconds (``None``: before
    the program ends). One obligation is open at a time."""
    _check("leads_to", p, "p")
    _check("leads_to", q, "q")
    _within_ns("leads_to", within)
    loop = _simulated_loop("leads_to")
    default = f"{_name(None, p)} leads to {_name(None, q)}"
    return _add(loop, "leads_to", name if name is not None else default, p, q, within)


def _seconds(ns: int) -> str:
    return f"{ns / 1e9:.6f}s"


def _violation(
    loop: Any,
    monitor: Monitor,
    time_ns: int,
    since_ns: int | None,
    reason: str,
    step: int,
    label: str | None,
) -> MonitorViolationError:
    where = f"after step {step}" + (f" ({label})" if label else "")
    within = f"{monitor.within:g}s" if monitor.within is not None else ""
    if monitor.kind == "always":
        what = f"false at virtual time {_seconds(time_ns)}, {where}"
    elif monitor.kind == "eventually" and reason == "deadline":
        what = f"not true within {within} (by virtual time {_seconds(time_ns)})"
    elif monitor.kind == "eventually":
        what = f"never true: the program ended at virtual time {_seconds(time_ns)}"
    elif reason == "deadline":
        what = (
            f"p held at virtual time {_seconds(since_ns or 0)} and q did not follow "
            f"within {within} (by {_seconds(time_ns)})"
        )
    else:
        what = (
            f"p held at virtual time {_seconds(since_ns or 0)} and q had not followed "
            f"when the program ended at {_seconds(time_ns)}"
        )
    return MonitorViolationError(
        f"monitor {monitor.kind} {monitor.name!r} violated: {what}",
        monitor=monitor.name,
        kind=monitor.kind,
        time_ns=time_ns,
        step=step,
    )


def failed(
    loop: Any,
    index: int,
    time_ns: int,
    since_ns: int | None,
    reason: str,
    step: int,
    label: str | None,
    exception: BaseException | None,
) -> None:
    """The engine found monitor ``index`` violated (or its predicate raised
    ``exception``): fail the universe with it."""
    monitor = loop._simloom_monitors[index]
    # Reported once: the loop may run on (a test's teardown) with the state unchanged.
    loop._remove_monitor(index)
    if exception is not None:
        exception.add_note(
            f"raised by the predicate of monitor {monitor.kind} {monitor.name!r}, judged "
            f"after step {step} ({label}) at virtual time {_seconds(time_ns)}"
        )
        loop._fail_universe(exception)
        return
    loop._fail_universe(_violation(loop, monitor, time_ns, since_ns, reason, step, label))


def check_at_end(loop: Any) -> None:
    """The program returned: an ``eventually`` that never held, or an open
    ``leads_to`` obligation, is a violation (raised here)."""
    if not getattr(loop, "_simloom_monitors", None):
        return
    found = loop._monitors_at_end()
    if found is not None:
        index, time_ns, since_ns, reason = found
        monitor = loop._simloom_monitors[index]
        raise _violation(loop, monitor, time_ns, since_ns, reason, loop._steps(), None)
