"""A deadlock report names, for each task waiting on an ``asyncio.Lock``, the task
that holds it; and the lock wrappers leave asyncio's behaviour as it was."""

from __future__ import annotations

import asyncio

import pytest
import simloom
from simloom import SimDeadlockError


def test_a_lock_order_inversion_names_who_holds_each_lock() -> None:
    async def main() -> None:
        a, b = asyncio.Lock(), asyncio.Lock()

        async def first() -> None:
            async with a:
                await asyncio.sleep(0)
                async with b:
                    pass

        async def second() -> None:
            async with b:
                await asyncio.sleep(0)
                async with a:
                    pass

        await asyncio.gather(
            asyncio.create_task(first(), name="first"),
            asyncio.create_task(second(), name="second"),
        )

    result = simloom.run(main, scheduler="fifo")
    assert isinstance(result.error, SimDeadlockError)
    report = str(result.error)
    assert "first: waits for an asyncio.Lock held by second at" in report
    assert "second: waits for an asyncio.Lock held by first at" in report


def test_a_released_lock_names_no_holder_and_the_wrappers_are_undone() -> None:
    original_acquire = asyncio.Lock.acquire

    async def main() -> list[bool]:
        lock = asyncio.Lock()
        seen = []
        async with lock:
            seen.append(lock.locked())
        seen.append(lock.locked())
        with pytest.raises(RuntimeError):
            lock.release()  # releasing an unlocked lock still raises
        return seen

    result = simloom.run(main)
    assert result.value == [True, False]
    assert asyncio.Lock.acquire is original_acquire


def test_a_waiter_on_a_lock_nobody_in_the_universe_holds_says_a_future() -> None:
    lock = asyncio.Lock()
    lock._locked = True  # taken outside the universe: no holder is known

    async def main() -> None:
        await lock.acquire()

    result = simloom.run(main)
    assert isinstance(result.error, SimDeadlockError)
    assert "waits for a Future" in str(result.error)
