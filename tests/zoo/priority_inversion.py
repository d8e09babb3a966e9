"""Priority inversion (a busy task delays a lock holder its urgent waiter needs),
and its no-await-under-the-lock control.

A low-priority flusher holds a lock across awaits; an urgent request needs the same
lock and must get it within ``BUDGET`` steps of a busy medium-priority task. When
the loop keeps running the busy task while the flusher is parked with the lock held,
the urgent request waits for all of them: the medium task has effectively preempted
the high one. Under the stock loop's round-robin the flusher releases the lock after
two turns.
"""

from __future__ import annotations

import asyncio

#: Steps of the busy task the urgent request tolerates waiting for the lock.
BUDGET = 4
#: Steps of work the busy task does.
BUSY = 10


async def _inversion(flush_awaits: int) -> int:
    lock = asyncio.Lock()
    busy = {"steps": 0}

    async def flusher() -> None:  # low priority
        async with lock:
            for _ in range(flush_awaits):
                await asyncio.sleep(0)  # write a page

    async def busy_task() -> None:  # medium priority: never touches the lock
        for _ in range(BUSY):
            busy["steps"] += 1
            await asyncio.sleep(0)

    async def urgent() -> int:  # high priority
        await asyncio.sleep(0)  # arrives just after the flusher took the lock
        asked = busy["steps"]
        async with lock:
            waited = busy["steps"] - asked
        assert waited < BUDGET, f"priority inversion: the urgent request waited {waited} steps"
        return waited

    _, _, waited = await asyncio.gather(flusher(), busy_task(), urgent())
    return waited


async def priority_inversion() -> int:
    """Priority inversion: a busy task keeps running while the lock holder is parked."""
    return await _inversion(flush_awaits=2)


async def no_await_under_lock() -> int:
    """Control for priority inversion: the critical section never awaits while locked."""
    return await _inversion(flush_awaits=0)
