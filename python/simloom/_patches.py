"""Determinism fixes for the few stdlib asyncio helpers that order work by address.

``asyncio.as_completed`` turns its argument into a ``set`` before wrapping each
awaitable in a task, so tasks for coroutines are created in address order — a
different order in every run. While a :class:`~simloom.SimLoop` runs, the public
``asyncio.as_completed`` is replaced by a wrapper that first wraps coroutines into
tasks in *argument* order (tasks then hash by creation number, see
``loop._SimTask``), and otherwise defers to the original. Outside a simulation the
wrapper is the original's behaviour exactly, and it is removed when the run ends.

Owns: the wrappers and what installs them (:func:`plan`, for the run's
``_core.Restoration``). Must not: change what the helpers return.
"""

from __future__ import annotations

import asyncio
import asyncio.tasks
from collections.abc import Iterable
from typing import Any

from . import _core

__all__ = ["plan"]

_original_as_completed = asyncio.tasks.as_completed


def _as_completed(fs: Iterable[Any], *, timeout: float | None = None) -> Any:
    loop = asyncio.events._get_running_loop()
    simulated = loop is not None and getattr(loop, "_simloom_loop", False)
    if simulated and not (asyncio.isfuture(fs) or asyncio.iscoroutine(fs)):
        fs = [asyncio.ensure_future(f, loop=loop) for f in dict.fromkeys(fs)]
    return _original_as_completed(fs, timeout=timeout)


_as_completed.__doc__ = _original_as_completed.__doc__
_as_completed.__wrapped__ = _original_as_completed  # type: ignore[attr-defined]


def plan(guard: _core.Restoration) -> None:
    """Add the wrappers to a run's guard: in place while any run needs them (runs
    in several threads share them), the originals back when the last one ends."""
    guard.shared_attr(asyncio, "as_completed", _as_completed)
    guard.shared_attr(asyncio.tasks, "as_completed", _as_completed)
