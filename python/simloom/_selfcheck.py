"""The self-check: run a universe twice and, if the runs differ, say where and why.

``check_determinism=True`` (on ``simloom.run`` and ``@simloom.test``, or
``--simloom-check-determinism``) runs the same universe -- same seed, scheduler and
boundary, so the same choices -- twice, with the heap scrambled in between so that
anything ordered by object address changes, and compares the two event logs. If
they differ it raises :class:`~simloom.SimloomNondeterminismError` naming the first
event that differs and, on each side, the user's source line that scheduled the step
there.

To know those lines, both runs are traced: ``call_soon``, ``call_later`` and
``call_at`` wrap each callback in a ``partial`` subclass that remembers the first
frame outside simloom and asyncio that scheduled it (and, for a task's step, where
the task resumes), and notes the step number when it runs. The loop labels a
``partial`` by the function it wraps, so labels, task owners, decisions, the tape and
the event log are exactly those of an unchecked run; only check mode pays for it.

Owns: the double run, the trace and the divergence report. Must not: change what a
universe does, or run anything but the two runs it is given.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import sys
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _core
from .errors import SimloomNondeterminismError
from .loop import SimLoop

if TYPE_CHECKING:
    from ._api import Event, RunResult

__all__ = ["run_twice"]

_SIMLOOM_DIR = os.path.dirname(os.path.abspath(__file__))
_ASYNCIO_DIR = os.path.dirname(os.path.abspath(asyncio.__file__))
_SKIPPED_DIRS = (_SIMLOOM_DIR + os.sep, _ASYNCIO_DIR + os.sep)
#: Frames below these belong to whoever started the universe, not to the program.
_LOOP_ENTRY_CODES = frozenset({SimLoop.run_forever.__code__, SimLoop.run_until_complete.__code__})

CAUSES = """\
Both runs made the same choices, so something outside the simulation decided \
differently. The usual causes:
  - iterating a set (or a dict keyed by objects) of things hashed by identity -- \
instances of your own classes, asyncio.Future -- whose order follows memory \
addresses, which differ between runs: sort them, or keep them in a list or a dict;
  - a clock or random source simloom does not patch, or the boundary turned off \
(boundary=False): see simloom.boundary() and docs/determinism.md;
  - a thread doing real work beside the universe."""


def _place(frame: types.FrameType) -> str:
    code = frame.f_code
    return f"{code.co_filename}:{frame.f_lineno} in {code.co_qualname}"


def _scheduling_site() -> str | None:
    """The first frame outside simloom and asyncio on the stack, unless the loop
    itself (a timer falling due, a future completed by the loop) did the
    scheduling."""
    frame: types.FrameType | None = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        if code in _LOOP_ENTRY_CODES:
            return None
        if not code.co_filename.startswith(_SKIPPED_DIRS):
            return _place(frame)
        frame = frame.f_back
    return None


def _resume_site(task: asyncio.Task[Any]) -> str:
    """Where a task is suspended (and so resumes): its innermost frame outside
    simloom and asyncio; or where its coroutine starts."""
    start: Any = task.get_coro()
    innermost: str | None = None
    coro = start
    suspended = getattr(coro, "cr_suspended", None) or getattr(coro, "gi_suspended", None)
    while suspended and coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None and not frame.f_code.co_filename.startswith(_SKIPPED_DIRS):
            innermost = _place(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        if coro is not None and not hasattr(coro, "cr_frame") and not hasattr(coro, "gi_frame"):
            break
    if innermost is not None:
        return innermost
    code = getattr(start, "cr_code", None) or getattr(start, "gi_code", None)
    if code is None:
        return "(unknown)"
    return f"{code.co_filename}:{code.co_firstlineno} in {code.co_qualname} (its start)"


class _TracedCallback(functools.partial):  # type: ignore[type-arg]
    """A callback that tells its trace when it runs. Named ``partial`` (below): the
    loop labels a ``partial`` by its ``func``, i.e. exactly as the bare callback."""

    trace: _Trace
    origin: str | None
    site: str

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        trace = self.trace
        trace.sites[int(trace.loop._steps())] = self.site
        outer, trace.running_origin = trace.running_origin, self.origin
        try:
            return super().__call__(*args, **kwargs)
        finally:
            trace.running_origin = outer


_TracedCallback.__name__ = "partial"


class _Trace:
    """Where each step of one run came from, by step number.

    A callback's *origin* is the user's line that scheduled it: the first frame
    outside simloom and asyncio on the stack, or, when the loop itself scheduled it
    (a timer fired, a future completed inside another callback), the origin of the
    callback running at the time -- so a task woken by ``asyncio.sleep``'s timer
    names the ``await asyncio.sleep(...)`` line.
    """

    def __init__(self, loop: SimLoop) -> None:
        self.loop = loop
        self.sites: dict[int, str] = {}
        self.running_origin: str | None = None
        #: Task name → the line that created the task ("" if unknown).
        self.created: dict[str, str] = {}
        stop_marker = loop._stop_marker

        def wrap(callback: Any) -> Any:
            if callback is stop_marker:
                return callback  # never queued: the engine stops on it
            traced = _TracedCallback(callback)
            traced.trace = self
            traced.origin = _scheduling_site() or self.running_origin
            traced.site = self.describe(callback, traced.origin)
            return traced

        def call_soon(callback: Any, *args: Any, context: Any = None) -> _core.Handle:
            return _core.LoopCore.call_soon(loop, wrap(callback), *args, context=context)

        def call_later(
            delay: float, callback: Any, *args: Any, context: Any = None
        ) -> _core.Handle:
            return _core.LoopCore.call_later(loop, delay, wrap(callback), *args, context=context)

        def call_at(when: float, callback: Any, *args: Any, context: Any = None) -> _core.Handle:
            return _core.LoopCore.call_at(loop, when, wrap(callback), *args, context=context)

        # Instance attributes shadow the class's methods for every caller, asyncio's
        # C tasks and futures included.
        loop.call_soon = call_soon  # type: ignore[method-assign]
        loop.call_later = call_later  # type: ignore[method-assign]
        loop.call_at = call_at  # type: ignore[method-assign]

    def describe(self, callback: Any, origin: str | None) -> str:
        """What a scheduled callback is: a task's step (which task, where it
        resumes) or a callback on behalf of the task running now; and its origin."""
        owner = getattr(callback, "__self__", None)
        if isinstance(owner, asyncio.Task):
            # A task's first callback is its first step, scheduled as it is created.
            self.created.setdefault(owner.get_name(), origin or "")
            what = f"task {self._task(owner)} resumes at {_resume_site(owner)}"
        else:
            name = getattr(callback, "__qualname__", type(callback).__qualname__)
            current = asyncio.current_task(self.loop)
            what = f"{name}" + (f" for task {self._task(current)}" if current else "")
        return f"{what}; scheduled by {origin}" if origin else f"{what}; scheduled by the loop"

    def _task(self, task: asyncio.Task[Any]) -> str:
        coro = task.get_coro()
        name = getattr(coro, "__qualname__", type(coro).__qualname__)
        created = self.created.get(task.get_name())
        return (
            f"{task.get_name()} ({name}, created by {created})"
            if created
            else (f"{task.get_name()} ({name})")
        )


#: Size classes of CPython's small-object allocator (16-byte steps up to 512).
_SIZE_CLASSES = range(48, 513, 16)
_BYTES_OVERHEAD = 33  # sys.getsizeof(b"") on 64-bit CPython
_BLOCKS_PER_CLASS = 64
#: Which blocks of a class stay alive, and the (shuffled) order the others are
#: freed in. Fixed, so that a check perturbs the heap the same way every time.
_BLOCK_ORDER = list(range(_BLOCKS_PER_CLASS))
random.Random(0x5EED).shuffle(_BLOCK_ORDER)
_KEPT, _FREED = (
    _BLOCK_ORDER[: _BLOCKS_PER_CLASS // 2],
    _BLOCK_ORDER[_BLOCKS_PER_CLASS // 2 :],
)


def _scrambled_heap() -> list[Any]:
    """Live objects that send the second run's objects to other addresses, in
    another order: in every small size class, blocks are allocated and half of them
    freed again in a shuffled order, so the allocator hands out the next
    allocations of that class from scattered holes. (Shifting every address alike
    would keep the iteration order of many small sets hashed by address.)"""
    keep: list[Any] = []
    for size in _SIZE_CLASSES:
        blocks = [b"\x01" * (size - _BYTES_OVERHEAD) for _ in range(_BLOCKS_PER_CLASS)]
        keep.extend([blocks[i] for i in _KEPT])
        freed = [blocks[i] for i in _FREED]
        del blocks
        del freed  # frees them in shuffled order
    return keep


def _event_text(event: Event | None) -> str:
    if event is None:
        return "(the run had ended)"
    if event.kind == "step":
        return f"step {event.label}"
    if event.kind == "clock":
        return f"the clock moved to {event.time_ns / 1e9:.6f}s"
    if event.kind == "decision":
        return f"decision {event.label} = {event.value} of {event.bound}"
    if event.kind == "end":
        return f"the universe ended ({event.label})"
    if event.kind == "misalign":
        return f"a replayed choice did not fit decision #{event.value}"
    return f"{event.kind} {event.label}"


def _side(events: list[Event], index: int, sites: dict[int, str]) -> str:
    """The event at ``index`` and the step it is or leads to, with its site."""
    event = events[index] if index < len(events) else None
    text = _event_text(event)
    step_number = sum(1 for e in events[:index] if e.kind == "step")
    for later in events[index:]:
        if later.kind == "step":
            step_number += 1
            site = sites.get(step_number, "(not traced)")
            if later is event:
                return f"{text} -- {site}"
            return f"{text}, then step {later.label} -- {site}"
    return text


def _first_difference(first: list[Event], second: list[Event]) -> int:
    for index, (a, b) in enumerate(zip(first, second, strict=False)):
        if a != b:
            return index
    return min(len(first), len(second))


def run_twice(
    universe: Callable[[Callable[[SimLoop], SimLoop]], RunResult], what: str
) -> RunResult:
    """Run ``universe`` (given a function that traces its loop) twice and return
    the first result, or raise :class:`SimloomNondeterminismError` if the event
    logs differ. ``what`` names the universe in the error (``simloom.run(...)``)."""
    traces: list[_Trace] = []

    def traced(loop: SimLoop) -> SimLoop:
        traces.append(_Trace(loop))
        return loop

    first = universe(traced)
    ballast = _scrambled_heap()
    try:
        second = universe(traced)
    finally:
        del ballast
    if first.event_log_bytes == second.event_log_bytes:
        return first
    first_events, second_events = first.event_log, second.event_log
    index = _first_difference(first_events, second_events)
    steps_before = sum(1 for e in first_events[:index] if e.kind == "step")
    time_ns = first_events[index - 1].time_ns if index else 0
    first_side = _side(first_events, index, traces[0].sites)
    second_side = _side(second_events, index, traces[1].sites)
    lines = [
        f"{what} is not deterministic: run twice with the same choices, the universe "
        f"diverged at event #{index} (virtual time {time_ns / 1e9:.6f}s, after "
        f"{steps_before} identical steps).",
        f"  first run:  {first_side}",
        f"  second run: {second_side}",
    ]
    if steps_before:
        lines.append(
            f"  last common step: #{steps_before} -- "
            f"{traces[0].sites.get(steps_before, '(not traced)')}"
        )
    lines.append(CAUSES)
    raise SimloomNondeterminismError(
        "\n".join(lines), event_index=index, first=first_side, second=second_side
    )
