"""Determinism fixes for the few stdlib asyncio helpers that order work by address.

``asyncio.as_completed`` turns its argument into a ``set`` before wrapping each
awaitable in a task, so tasks for coroutines are created in address order — a
different order in every run. While a :class:`~simloom.SimLoop` runs, the public
``asyncio.as_completed`` is replaced by a wrapper that first wraps coroutines into
tasks in *argument* order (tasks then hash by creation number, see
``loop._SimTask``), and otherwise defers to the original. Outside a simulation the
wrapper is the original's behaviour exactly, and it is removed when the run ends.

``asyncio.Lock`` and ``asyncio.Semaphore`` remember which tasks hold them while a
SimLoop runs (their ``acquire`` and ``release`` wrapped the same way), so a deadlock
report can say who holds what each waiter waits for (:func:`describe_wait`, which also
names the Condition, Event, Queue or Barrier a task is suspended in).

Owns: the wrappers and what installs them (:func:`plan`, for the run's
``_core.Restoration``). Must not: change what the helpers return.
"""

from __future__ import annotations

import asyncio
import asyncio.locks
import asyncio.queues
import asyncio.tasks
from collections.abc import Iterable
from typing import Any

from . import _causal, _core

__all__ = ["describe_wait", "lock_holder", "plan", "semaphore_holders"]

_original_as_completed = asyncio.tasks.as_completed


def _as_completed(fs: Iterable[Any], *, timeout: float | None = None) -> Any:
    loop = asyncio.events._get_running_loop()
    simulated = loop is not None and getattr(loop, "_simloom_loop", False)
    if simulated and not (asyncio.isfuture(fs) or asyncio.iscoroutine(fs)):
        fs = [asyncio.ensure_future(f, loop=loop) for f in dict.fromkeys(fs)]
    return _original_as_completed(fs, timeout=timeout)


_as_completed.__doc__ = _original_as_completed.__doc__
_as_completed.__wrapped__ = _original_as_completed  # type: ignore[attr-defined]


_original_lock_acquire = asyncio.locks.Lock.acquire
_original_lock_release = asyncio.locks.Lock.release
#: The attribute a lock keeps its holder in (a task), while a SimLoop runs.
_HOLDER = "_simloom_holder"


async def _lock_acquire(self: asyncio.Lock) -> bool:
    acquired = await _original_lock_acquire(self)
    loop = asyncio.events._get_running_loop()
    if loop is not None and getattr(loop, "_simloom_loop", False):
        setattr(self, _HOLDER, asyncio.tasks.current_task(loop))
    return acquired


def _lock_release(self: asyncio.Lock) -> None:
    _original_lock_release(self)
    if getattr(self, _HOLDER, None) is not None:
        setattr(self, _HOLDER, None)


_original_semaphore_acquire = asyncio.locks.Semaphore.acquire
_original_semaphore_release = asyncio.locks.Semaphore.release
#: The attribute a semaphore keeps its holders in (tasks, in acquisition order).
_HOLDERS = "_simloom_holders"


async def _semaphore_acquire(self: asyncio.Semaphore) -> bool:
    acquired = await _original_semaphore_acquire(self)
    loop = asyncio.events._get_running_loop()
    if loop is not None and getattr(loop, "_simloom_loop", False):
        holders: list[asyncio.Task[Any] | None] | None = getattr(self, _HOLDERS, None)
        if holders is None:
            holders = []
            setattr(self, _HOLDERS, holders)
        elif holders and any(t is not None and t.get_loop() is not loop for t in holders):
            # Left from an earlier universe's loop: not holders here, and not to
            # be kept alive by a semaphore that outlives it.
            holders[:] = [t for t in holders if t is None or t.get_loop() is loop]
        holders.append(asyncio.tasks.current_task(loop))
    return acquired


def _semaphore_release(self: asyncio.Semaphore) -> None:
    _original_semaphore_release(self)
    holders: list[asyncio.Task[Any] | None] | None = getattr(self, _HOLDERS, None)
    if holders:
        # A semaphore is not owned: the releasing task gives back its own unit if it
        # holds one, anyone else (a callback, another task) the oldest one.
        loop = asyncio.events._get_running_loop()
        current = asyncio.tasks.current_task(loop) if loop is not None else None
        if current in holders:
            holders.remove(current)
        else:
            del holders[0]


for _wrapper, _original in (
    (_lock_acquire, _original_lock_acquire),
    (_lock_release, _original_lock_release),
    (_semaphore_acquire, _original_semaphore_acquire),
    (_semaphore_release, _original_semaphore_release),
):
    _wrapper.__doc__ = _original.__doc__
    _wrapper.__qualname__ = _original.__qualname__
    _wrapper.__wrapped__ = _original  # type: ignore[union-attr]


def lock_holder(lock: asyncio.Lock) -> asyncio.Task[Any] | None:
    """The task that acquired ``lock`` in a simulation and has not released it."""
    holder = getattr(lock, _HOLDER, None)
    return holder if isinstance(holder, asyncio.Task) and lock.locked() else None


def semaphore_holders(semaphore: asyncio.Semaphore) -> list[asyncio.Task[Any]]:
    """The tasks that acquired ``semaphore`` in a simulation and have not released
    it, oldest first (a unit released by a non-holder is taken off the oldest)."""
    holders = getattr(semaphore, _HOLDERS, None) or []
    loop = asyncio.events._get_running_loop()
    # A semaphore that outlives a universe keeps its list: only this loop's
    # tasks count (a unit taken in an earlier universe is not this one's holder).
    return [
        task
        for task in holders
        if isinstance(task, asyncio.Task) and (loop is None or task.get_loop() is loop)
    ]


def _names(tasks: Iterable[asyncio.Task[Any]]) -> str:
    names = [task.get_name() for task in tasks]
    if not names:
        return "no task"
    if len(names) > 4:
        names = [*names[:4], f"{len(names) - 4} more"]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


def _describe_lock(lock: asyncio.Lock) -> str:
    holder = lock_holder(lock)
    if holder is not None:
        return f"held by {holder.get_name()}"
    return "held outside any task" if lock.locked() else "free"


def describe_wait(task: asyncio.Task[Any]) -> str | None:
    """What ``task`` waits for, when it is suspended in an asyncio synchronisation
    primitive: the primitive and who holds it ("an asyncio.Lock held by worker-2",
    "an asyncio.Semaphore (value 0) held by a and b", "a notify on an
    asyncio.Condition (its lock free)", "an asyncio.Event to be set", "an item in an
    empty asyncio.Queue"); None when it waits for anything else. The innermost
    primitive on the task's await chain wins (a Condition's wait re-acquiring its
    lock is a wait for the lock)."""
    found: str | None = None
    for _, frame in _causal.await_chain(task.get_coro()):
        code = frame.f_code
        this = frame.f_locals.get("self")
        if code is _original_lock_acquire.__code__ and isinstance(this, asyncio.Lock):
            found = f"an asyncio.Lock {_describe_lock(this)}"
        elif code is _original_semaphore_acquire.__code__ and isinstance(this, asyncio.Semaphore):
            kind = type(this).__name__
            holders = semaphore_holders(this)
            held = f"held by {_names(holders)}" if holders else "held outside any task"
            found = f"an asyncio.{kind} (value {this._value}) {held}"
        elif code is asyncio.locks.Condition.wait.__code__ and isinstance(this, asyncio.Condition):
            lock = getattr(this, "_lock", None)
            state = _describe_lock(lock) if isinstance(lock, asyncio.Lock) else "custom"
            found = f"a notify on an asyncio.Condition (its lock {state})"
        elif code is asyncio.locks.Event.wait.__code__ and isinstance(this, asyncio.Event):
            found = "an asyncio.Event to be set"
        elif code is asyncio.queues.Queue.get.__code__ and isinstance(this, asyncio.Queue):
            found = f"an item in an empty {type(this).__name__}"
        elif code is asyncio.queues.Queue.put.__code__ and isinstance(this, asyncio.Queue):
            found = f"room in a full {type(this).__name__} (maxsize {this.maxsize})"
        elif code is asyncio.locks.Barrier.wait.__code__ and isinstance(this, asyncio.Barrier):
            # Its Condition is an implementation detail: the barrier is the answer.
            return f"an asyncio.Barrier ({this.n_waiting} of {this.parties} parties waiting)"
    return found


def plan(guard: _core.Restoration) -> None:
    """Add the wrappers to a run's guard: in place while any run needs them (runs
    in several threads share them), the originals back when the last one ends."""
    guard.shared_attr(asyncio, "as_completed", _as_completed)
    guard.shared_attr(asyncio.tasks, "as_completed", _as_completed)
    guard.shared_attr(asyncio.locks.Lock, "acquire", _lock_acquire)
    guard.shared_attr(asyncio.locks.Lock, "release", _lock_release)
    guard.shared_attr(asyncio.locks.Semaphore, "acquire", _semaphore_acquire)
    guard.shared_attr(asyncio.locks.Semaphore, "release", _semaphore_release)
