"""Determinism fixes for the few stdlib asyncio helpers that order work by address.

``asyncio.as_completed`` turns its argument into a ``set`` before wrapping each
awaitable in a task, so tasks for coroutines are created in address order — a
different order in every run. While a :class:`~simloom.SimLoop` runs, the public
``asyncio.as_completed`` is replaced by a wrapper that first wraps coroutines into
tasks in *argument* order (tasks then hash by creation number, see
``loop._SimTask``), and otherwise defers to the original. Outside a simulation the
wrapper is the original's behaviour exactly, and it is removed when the run ends.

``asyncio.Lock`` remembers which task holds it while a SimLoop runs (its
``acquire`` and ``release`` wrapped the same way), so a deadlock report can say who
holds the lock each waiter waits for (:func:`lock_waited_on`).

Owns: the wrappers and what installs them (:func:`plan`, for the run's
``_core.Restoration``). Must not: change what the helpers return.
"""

from __future__ import annotations

import asyncio
import asyncio.locks
import asyncio.tasks
from collections.abc import Iterable
from typing import Any

from . import _causal, _core

__all__ = ["lock_holder", "lock_waited_on", "plan"]

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


for _wrapper, _original in (
    (_lock_acquire, _original_lock_acquire),
    (_lock_release, _original_lock_release),
):
    _wrapper.__doc__ = _original.__doc__
    _wrapper.__qualname__ = _original.__qualname__
    _wrapper.__wrapped__ = _original  # type: ignore[union-attr]


def lock_waited_on(task: asyncio.Task[Any]) -> asyncio.Lock | None:
    """The ``asyncio.Lock`` whose ``acquire`` ``task`` is suspended in, if any."""
    for _, frame in _causal.await_chain(task.get_coro()):
        if frame.f_code is _original_lock_acquire.__code__:
            lock = frame.f_locals.get("self")
            return lock if isinstance(lock, asyncio.Lock) else None
    return None


def lock_holder(lock: asyncio.Lock) -> asyncio.Task[Any] | None:
    """The task that acquired ``lock`` in a simulation and has not released it."""
    holder = getattr(lock, _HOLDER, None)
    return holder if isinstance(holder, asyncio.Task) and lock.locked() else None


def plan(guard: _core.Restoration) -> None:
    """Add the wrappers to a run's guard: in place while any run needs them (runs
    in several threads share them), the originals back when the last one ends."""
    guard.shared_attr(asyncio, "as_completed", _as_completed)
    guard.shared_attr(asyncio.tasks, "as_completed", _as_completed)
    guard.shared_attr(asyncio.locks.Lock, "acquire", _lock_acquire)
    guard.shared_attr(asyncio.locks.Lock, "release", _lock_release)
