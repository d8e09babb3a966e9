"""Determinism fixes for the few stdlib asyncio helpers that order work by address.

``asyncio.as_completed`` turns its argument into a ``set`` before wrapping each
awaitable in a task, so tasks for coroutines are created in address order — a
different order in every run. While a :class:`~simloom.SimLoop` runs, the public
``asyncio.as_completed`` is replaced by a wrapper that first wraps coroutines into
tasks in *argument* order (tasks then hash by creation number, see
``loop._SimTask``), and otherwise defers to the original. Outside a simulation the
wrapper is the original's behaviour exactly, and it is removed when the run ends.

Owns: the install/uninstall of these wrappers. Must not: change what the helpers
return.
"""

from __future__ import annotations

import asyncio
import asyncio.tasks
from collections.abc import Iterable
from typing import Any

__all__ = ["install", "uninstall"]

_original_as_completed = asyncio.tasks.as_completed
_depth = 0


def _as_completed(fs: Iterable[Any], *, timeout: float | None = None) -> Any:
    loop = asyncio.events._get_running_loop()
    simulated = loop is not None and getattr(loop, "_simloom_loop", False)
    if simulated and not (asyncio.isfuture(fs) or asyncio.iscoroutine(fs)):
        fs = [asyncio.ensure_future(f, loop=loop) for f in dict.fromkeys(fs)]
    return _original_as_completed(fs, timeout=timeout)


_as_completed.__doc__ = _original_as_completed.__doc__
_as_completed.__wrapped__ = _original_as_completed  # type: ignore[attr-defined]


def install() -> None:
    """Put the wrappers in place (nested calls are counted)."""
    global _depth
    _depth += 1
    if _depth == 1:
        asyncio.as_completed = _as_completed
        asyncio.tasks.as_completed = _as_completed


def uninstall() -> None:
    """Restore the originals once the outermost run ends."""
    global _depth
    _depth = max(0, _depth - 1)
    if _depth == 0:
        asyncio.as_completed = _original_as_completed
        asyncio.tasks.as_completed = _original_as_completed
