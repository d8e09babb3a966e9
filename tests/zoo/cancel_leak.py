"""A cancellation that leaks a lock, and its ``async with`` control.

A flusher takes a lock with ``await lock.acquire()`` and only then enters the
``try/finally`` that releases it -- with an await (recording the start) in between.
Shutdown cancels the flusher. If the cancellation lands on that await, the
``finally`` never runs and the lock stays held forever: the next user waits until its
timeout. Under the stock loop's order the cancellation lands inside the ``try``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

#: How long the next user of the lock waits before giving up (virtual seconds).
PATIENCE = 5.0


async def _shutdown_then_reuse(
    flush: Callable[[], Coroutine[Any, Any, None]], lock: asyncio.Lock
) -> None:
    flusher = asyncio.create_task(flush())
    await asyncio.sleep(0)  # shutdown begins a little later ...
    await asyncio.sleep(0)
    flusher.cancel()  # ... and abandons the flush
    await asyncio.gather(flusher, return_exceptions=True)
    try:
        async with asyncio.timeout(PATIENCE):
            async with lock:  # the next user of the lock
                pass
    except TimeoutError:
        raise AssertionError(
            f"lock leaked: still held {PATIENCE:g} s after its holder was cancelled"
        ) from None


async def cancel_leaks_lock() -> None:
    """Cancellation leak: cancelled between lock.acquire() and the try/finally that releases it."""
    lock = asyncio.Lock()
    log: list[str] = []

    async def flush() -> None:
        await lock.acquire()
        log.append("flush started")
        await asyncio.sleep(0)  # an await outside the try: a cancellation here leaks the lock
        try:
            await asyncio.sleep(0)  # write the buffer
            await asyncio.sleep(0)
        finally:
            lock.release()

    await _shutdown_then_reuse(flush, lock)


async def cancel_safe_lock() -> None:
    """Control for the cancellation leak: the same flush under 'async with lock'."""
    lock = asyncio.Lock()
    log: list[str] = []

    async def flush() -> None:
        async with lock:
            log.append("flush started")
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            await asyncio.sleep(0)

    await _shutdown_then_reuse(flush, lock)
