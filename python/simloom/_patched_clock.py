"""Timers of a loop whose ``time`` was replaced follow the replacement.

Test suites move time by hand with ``mock.patch.object(loop, "time", fake)``. On the
stock loop that works because a timer's deadline is ``loop.time() + delay`` and every
iteration fires the timers whose deadline is below ``loop.time()``: both read the
replacement. SimLoop's timers live in the engine, on the virtual clock, which the
replacement does not move. So while ``time`` is replaced (``LoopCore.__setattr__``
tells the loop), the loop's ``call_at`` and ``call_later`` are served here:

* a timer's deadline is read on the replacement clock (``call_later(d)`` is
  ``call_at(loop.time() + d)``, as asyncio does), and its handle is an
  ``asyncio.TimerHandle`` whose ``when()`` is that deadline;
* a timer is due when its deadline is below the replacement's ``time()`` plus the
  clock resolution (the stock loop's test). Due timers join the ready callbacks in
  deadline order (equal deadlines: in the order they were scheduled), as ordinary
  engine callbacks, so the scheduler names and orders them as any other;
* whether one is due is checked when a timer is scheduled or cancelled through this
  clock, and when the engine's virtual clock reaches the time the stock loop would
  have slept for (``deadline - loop.time()`` after the last check): so a suite that
  moves its fake clock and then waits (``asyncio.wait(..., timeout=0)``,
  ``asyncio.sleep(0)`` in a loop that schedules a timer) sees its timers fire.

A fake clock that never moves and nothing else to do is a stock loop sleeping
forever; here virtual time passes until the time budget ends the run
(:class:`~simloom.SimTimeBudgetError`), so nothing hangs. When the replacement is
removed, the timers still waiting keep their deadlines, now on the loop's own clock
(the stock loop compares them with its real clock the same way).

Owns: the replaced clock's timers. Must not: touch the engine's timers (the
network's, lockstep threads', timers scheduled before the replacement: they stay on
the virtual clock).
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _core

if TYPE_CHECKING:
    from .loop import SimLoop

__all__ = ["PatchedClock", "PatchedTimerHandle"]

#: The longest virtual wait between two checks of the replaced clock (asyncio's own
#: limit on one wait for I/O is a day).
_MAX_WAIT_SECONDS = 86_400.0


class PatchedTimerHandle(asyncio.TimerHandle):
    """A timer on a replaced clock. Once due it becomes an engine callback
    (``_ready``); cancelling the timer cancels that callback too, so a timer
    cancelled after it fell due does not run (as on the stock loop)."""

    __slots__ = ("_ready",)

    def __init__(
        self,
        when: float,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: SimLoop,
        context: contextvars.Context | None,
    ) -> None:
        super().__init__(when, callback, args, loop, context)
        self._ready: _core.Handle | None = None

    def _parts(self) -> tuple[Callable[..., object], tuple[Any, ...], contextvars.Context]:
        """The callback, its arguments and its context (asyncio.Handle's slots)."""
        return self._callback, self._args, self._context  # type: ignore[attr-defined,return-value]

    def cancel(self) -> None:
        ready = self._ready
        if ready is not None:
            ready.cancel()
        super().cancel()


class PatchedClock:
    """``call_at`` / ``call_later`` of a loop whose ``time`` is ``clock``."""

    def __init__(self, loop: SimLoop, clock: Callable[[], float]) -> None:
        self._loop = loop
        self._clock = clock
        self._heap: list[tuple[float, int, PatchedTimerHandle]] = []
        self._order = itertools.count()
        #: The pending engine callback that moves due timers to the ready callbacks.
        self._pump: _core.Handle | None = None
        #: The engine timer at which the stock loop would next wake up to look.
        self._wake: _core.Handle | None = None
        self._resolution = float(getattr(loop, "_clock_resolution", 1e-9))

    def replace(self, clock: Callable[[], float]) -> None:
        """The loop's ``time`` was replaced again."""
        self._clock = clock
        self._arm()

    def call_at(
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> PatchedTimerHandle:
        if math.isnan(when):
            raise ValueError("when must not be NaN")
        loop = self._loop
        loop._check_closed()
        if not callable(callback):
            raise TypeError(f"a callable object was expected by call_at(), got {callback!r}")
        handle = PatchedTimerHandle(when, callback, args, loop, context)
        heapq.heappush(self._heap, (when, next(self._order), handle))
        self._arm()
        return handle

    def call_later(
        self,
        delay: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> PatchedTimerHandle:
        if math.isnan(delay):
            raise ValueError("delay must not be NaN")
        return self.call_at(self._clock() + delay, callback, *args, context=context)

    def _arm(self) -> None:
        heap = self._heap
        while heap and heap[0][2].cancelled():
            heapq.heappop(heap)
        wake, self._wake = self._wake, None
        if wake is not None:
            wake.cancel()
        if not heap:
            return
        now = self._clock()
        when = heap[0][0]
        if when < now + self._resolution:
            if self._pump is None:
                self._pump = _core.LoopCore.call_soon(self._loop, self._move_due)
        else:
            wait = min(when - now, _MAX_WAIT_SECONDS)
            self._wake = _core.LoopCore.call_later(self._loop, wait, self._woken)

    def _woken(self) -> None:
        self._wake = None
        self._move_due()

    def _move_due(self) -> None:
        """Due timers (on the replaced clock) join the ready callbacks."""
        self._pump = None
        heap = self._heap
        end = self._clock() + self._resolution
        loop = self._loop
        while heap and heap[0][0] < end:
            handle = heapq.heappop(heap)[2]
            if handle.cancelled():
                continue
            callback, args, context = handle._parts()
            handle._ready = _core.LoopCore.call_soon(loop, callback, *args, context=context)
        self._arm()

    def restore(self) -> None:
        """The loop's own ``time`` is back: waiting timers keep their deadlines, on the
        loop's clock."""
        for pending in (self._pump, self._wake):
            if pending is not None:
                pending.cancel()
        self._pump = self._wake = None
        heap, self._heap = self._heap, []
        loop = self._loop
        for when, _, handle in sorted(heap):
            if handle.cancelled():
                continue
            callback, args, context = handle._parts()
            deadline = min(max(when, 0.0), _core.LoopCore.time(loop) + _MAX_WAIT_SECONDS * 365)
            handle._ready = _core.LoopCore.call_at(loop, deadline, callback, *args, context=context)
