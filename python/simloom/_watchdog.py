"""The wall-clock watchdog: a step that never yields ends its universe.

A callback that never awaits (``while not flag: pass``) holds the loop forever; no
step or time budget can see it, since no step ends. One daemon thread per process,
started on first use, looks at every live ``SimLoop`` with a watchdog a few times per
limit. Each loop publishes its step count from Rust (a relaxed atomic store per
step: nothing measurable) and is armed only while its step loop runs. When the same
step of the same run has lasted longer than the limit, the thread captures the loop
thread's stack (``sys._current_frames``), leaves the report on the loop, and raises
:class:`WatchdogInterrupt` in the loop thread; ``SimLoop.run_forever`` turns it into
:class:`~simloom.SimWatchdogError` carrying the report.

The interrupt is sent through ``StepWatch.interrupt``, which (under the GIL) checks
that the loop is still in that very step of that very run, and the step loop
withdraws an undelivered interrupt whenever it returns: it can land only in the step
it was meant for, never after the universe or in another one. When the watchdog does
not fire it changes nothing: no choice, no event, no tape entry.

The thread is stopped and waited for before a fork (the child would not have it,
and CPython warns about forking a multi-threaded process); the next watched loop
starts it again. A step inside a debugger (``pdb``) or an import is not a hang and
is left alone. A
spin inside one C call that never releases the GIL cannot be interrupted (nothing
can run Python code then); the interrupt lands when the call returns.

Owns: the watchdog thread and its report. Must not: touch the engine or choose.
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import os
import sys
import time
import traceback
import weakref
from types import FrameType
from typing import TYPE_CHECKING, Any

from . import _core

if TYPE_CHECKING:
    from .loop import SimLoop

__all__ = ["WatchdogInterrupt", "watch"]

#: Read the real clock even if the determinism boundary is later active in the thread
#: that imported this module (the boundary is per thread; this is belt and braces).
_perf_counter = time.perf_counter

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
#: A stack through these files is a debugger session or an import, not a hang.
_DEBUGGER_FILES = (os.sep + "bdb.py", os.sep + "pdb.py")
_IMPORT_FILE = "<frozen importlib._bootstrap>"
#: Innermost frames shown in the report.
STACK_LIMIT = 12


class WatchdogInterrupt(KeyboardInterrupt):
    """Raised asynchronously in a loop thread whose step ran past the watchdog.

    A ``KeyboardInterrupt`` so that it goes through asyncio's tasks and simloom's
    step loop the way Ctrl-C does, instead of being stored in the spinning task;
    ``SimLoop.run_forever`` turns it into :class:`~simloom.SimWatchdogError`."""


class _Entry:
    __slots__ = ("clock", "limit", "loop", "watch")

    def __init__(
        self,
        loop: weakref.ref[SimLoop],
        watch: _core.StepWatch,
        clock: _core.ClockView,
        limit: float,
    ) -> None:
        self.loop = loop
        self.watch = watch
        self.clock = clock
        self.limit = limit


#: A weak reference to each watched loop → what the thread needs. Mutated by loop
#: threads, copied by the watchdog thread; both single dict operations, atomic under
#: the GIL. A loop's entry goes when the loop is collected.
_watched: dict[weakref.ref[SimLoop], _Entry] = {}
#: The thread's life: started on first use, stopped (and joined) before a fork.
_started = False
_start_lock = _thread.allocate_lock()
#: Held by the thread while it runs (so a fork can wait for it to end).
_running = _thread.allocate_lock()
#: Locked while the thread sleeps between looks; released to wake it.
_pause = _thread.allocate_lock()
_pause.acquire()
_stop = False
#: The lock's own ``acquire``, taken when simloom is imported. The thread waits with
#: it, not through ``lock.acquire``: a tool that swaps methods of the C lock type in
#: place while tests run (blockbuster, through forbiddenfruit, turns it on and off
#: around each test) leaves the type's method cache pointing at a freed wrapper,
#: and a thread that looks the method up again crashes the process.
_acquire = _thread.LockType.acquire


def _forget(ref: weakref.ref[SimLoop]) -> None:
    _watched.pop(ref, None)


def watch(loop: SimLoop, limit: float) -> None:
    """Watch ``loop``: stop any step of it that runs longer than ``limit`` seconds."""
    ref = weakref.ref(loop, _forget)
    _watched[ref] = _Entry(ref, loop._watch(), loop._clock_view(), limit)
    if not _started:
        _start()


#: CPython 3.13+: a thread whose OS thread can be joined (3.13 counts OS threads
#: when it warns about a fork, and the thread leaves its OS thread only after its
#: Python count is already down).
_start_joinable: Any = getattr(_thread, "start_joinable_thread", None)
_handle: Any = None


def _start() -> None:
    global _started, _handle
    with _start_lock:
        if not _started:
            _running.acquire()
            try:
                if _start_joinable is not None:
                    _handle = _start_joinable(_run, daemon=True)
                else:
                    _thread.start_new_thread(_run, ())
            except BaseException:
                _running.release()
                raise
            _started = True


def _sleeper(seconds: float) -> None:
    """Sleep without ``time.sleep`` (which the boundary may refuse in this thread)."""
    lock = _thread.allocate_lock()
    _acquire(lock)
    _acquire(lock, timeout=seconds)


def _stop_before_fork() -> None:
    """No thread of simloom's may exist at a fork: the child would not have it, and
    CPython warns (DeprecationWarning) about forking a multi-threaded process. The
    thread is woken, stopped and waited for; the next watched loop starts it again."""
    global _stop
    if not _started:
        return
    threads = _thread._count()
    _stop = True
    with contextlib.suppress(RuntimeError):
        _pause.release()
    if _running.acquire(timeout=1.0):
        _running.release()
    if _handle is not None:
        _handle.join(1.0)  # 3.13+: until the OS thread is gone
        return
    # The thread still has to give back its thread state (which needs the GIL this
    # thread holds) and leave: let it.
    deadline = _perf_counter() + 1.0
    while _thread._count() >= threads and _perf_counter() < deadline:
        _sleeper(0.0005)
    _sleeper(0.001)


def _after_fork() -> None:
    global _started, _start_lock, _running, _pause, _stop
    _started, _stop = False, False
    _start_lock, _running, _pause = (_thread.allocate_lock() for _ in range(3))
    _pause.acquire()


def _after_fork_in_parent() -> None:
    # Not restarted here: CPython 3.13 counts the process's threads for its fork
    # warning after these hooks run. The next run of a watched loop restarts it.
    _after_fork()


def ensure_running() -> None:
    """Start the thread if a loop is watched and the thread is not running (it was
    stopped for a fork). Called at the start of every loop run; cheap."""
    if not _started and _watched:
        _start()


os.register_at_fork(
    before=_stop_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork,
)


def _poll_interval() -> float:
    limits = [entry.limit for entry in list(_watched.values())]
    return min(0.25, max(0.01, min(limits, default=2.0) / 8))


def _run() -> None:
    """The watchdog thread: look at every watched loop until told to stop."""
    running, pause = _running, _pause
    #: loop → (run generation, steps, when that step was first seen).
    seen: dict[weakref.ref[SimLoop], tuple[int, int, float]] = {}
    try:
        while not _stop:
            _acquire(pause, timeout=_poll_interval())
            if _stop:
                break
            # The thread must survive anything a report can raise.
            with contextlib.suppress(Exception):
                _check_all(seen)
    finally:
        running.release()


def _check_all(seen: dict[weakref.ref[SimLoop], tuple[int, int, float]]) -> None:
    entries = dict(_watched)
    for key in [key for key in seen if key not in entries]:
        del seen[key]
    now = _perf_counter()
    for key, entry in entries.items():
        armed, generation, steps, thread = entry.watch.state()
        if not armed:
            seen.pop(key, None)
            continue
        mark = seen.get(key)
        if mark is None or mark[0] != generation or mark[1] != steps:
            seen[key] = (generation, steps, now)
            continue
        stuck_for = now - mark[2]
        if stuck_for < entry.limit:
            continue
        frame = sys._current_frames().get(thread)
        if frame is None:
            continue
        if _not_a_hang(frame):
            seen[key] = (generation, steps, now)
            continue
        loop = entry.loop()
        if loop is None:
            continue
        loop._watchdog_report = _report(loop, entry, frame, stuck_for, steps)
        del frame
        if entry.watch.interrupt(generation, steps, WatchdogInterrupt):
            # Fire again only if the step goes on for another whole limit (the
            # program may catch the interrupt and keep spinning).
            seen[key] = (generation, steps, now)


def _not_a_hang(frame: FrameType | None) -> bool:
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.endswith(_DEBUGGER_FILES) or filename == _IMPORT_FILE:
            return True
        frame = frame.f_back
    return False


def _user_stack(frame: FrameType) -> traceback.StackSummary:
    """The frames of the step itself: innermost first, up to simloom's step loop."""
    frames: list[tuple[FrameType, int]] = []
    current: FrameType | None = frame
    while current is not None and not current.f_code.co_filename.startswith(_PACKAGE_DIR):
        frames.append((current, current.f_lineno))
        current = current.f_back
    if not frames:
        # Spinning in simloom's own code (a bug of simloom's): show that.
        frames = [(frame, frame.f_lineno)]
    frames = frames[:STACK_LIMIT]
    frames.reverse()
    return traceback.StackSummary.extract(iter(frames), lookup_lines=True)


def _report(loop: SimLoop, entry: _Entry, frame: FrameType, stuck_for: float, steps: int) -> str:
    task = asyncio.current_task(loop)
    where = f"in task {task.get_name()!r}" if task is not None else "in a callback"
    stack = _user_stack(frame)
    innermost = stack[-1]
    lines = [
        f"watchdog: one step has run for {stuck_for:.1f} s of wall-clock time without "
        f"yielding to the loop (watchdog={entry.limit:g} s), {where}, at "
        f"{innermost.filename}:{innermost.lineno}; virtual time {entry.clock.time():.6f}s, "
        f"step {steps}.",
        "A callback that never awaits (a CPU spin such as `while not flag: pass`, or a "
        "blocking call) stops every other task, so nothing could ever change. Its stack, "
        "innermost last:",
        "".join(stack.format()).rstrip("\n"),
        "Make it await (`await asyncio.sleep(0)` inside the loop lets others run), or, "
        "if the step really is this much work, raise the limit: watchdog=<seconds> "
        "(SimLoop, simloom.run, simloom.replay, @simloom.test, simloom.universes) or "
        "--simloom-watchdog=<seconds>; 0 or None turns the watchdog off.",
    ]
    return "\n".join(lines)
