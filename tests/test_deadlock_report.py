"""A deadlock report names, for each task waiting on an asyncio synchronisation
primitive, the primitive and the tasks that hold it; and the wrappers that track
holders leave asyncio's behaviour as it was."""

from __future__ import annotations

import asyncio

import pytest
import simloom
from simloom import SimDeadlockError, _patches


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


def test_a_waiter_on_a_lock_nobody_in_the_universe_holds_says_so() -> None:
    lock = asyncio.Lock()
    lock._locked = True  # taken outside the universe: no holder is known

    async def main() -> None:
        await lock.acquire()

    result = simloom.run(main)
    assert isinstance(result.error, SimDeadlockError)
    assert "waits for an asyncio.Lock held outside any task at" in str(result.error)


def _report(main: object) -> str:
    result = simloom.run(main, scheduler="fifo")  # type: ignore[arg-type]
    assert isinstance(result.error, SimDeadlockError), result
    return str(result.error)


def test_semaphore_waiters_name_every_holder() -> None:
    async def main() -> None:
        sem = asyncio.BoundedSemaphore(2)
        never = asyncio.Event()

        async def hold() -> None:
            async with sem:
                await never.wait()

        async def want() -> None:
            async with sem:
                pass

        tasks = [asyncio.create_task(hold(), name=f"holder-{i}") for i in range(2)]
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(want(), name="wanter"))
        await asyncio.gather(*tasks)

    report = _report(main)
    assert (
        "wanter: waits for an asyncio.BoundedSemaphore (value 0) held by holder-0 and holder-1"
        in report
    )
    assert "holder-0: waits for an asyncio.Event to be set at" in report
    assert "Task-1: waits for the gather of holder-0, holder-1 and wanter at" in report


def test_a_released_unit_leaves_the_holders() -> None:
    async def main() -> None:
        sem = asyncio.Semaphore(1)
        never = asyncio.Event()

        async def release_and_retake() -> None:
            await sem.acquire()
            await asyncio.sleep(0)
            sem.release()  # its own unit back, to the waiting hog: a holds nothing
            await asyncio.sleep(0)
            await sem.acquire()
            await never.wait()

        async def hog() -> None:
            await sem.acquire()
            await never.wait()

        await asyncio.gather(
            asyncio.create_task(release_and_retake(), name="a"),
            asyncio.create_task(hog(), name="hog"),
        )

    report = _report(main)
    assert "a: waits for an asyncio.Semaphore (value 0) held by hog at" in report


def test_condition_queue_and_barrier_waiters_say_what_they_wait_for() -> None:
    async def main() -> None:
        cond = asyncio.Condition()
        empty: asyncio.Queue[int] = asyncio.Queue()
        full: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        full.put_nowait(0)
        barrier = asyncio.Barrier(3)

        async def notified() -> None:
            async with cond:
                await cond.wait()

        await asyncio.gather(
            asyncio.create_task(notified(), name="cond"),
            asyncio.create_task(empty.get(), name="getter"),
            asyncio.create_task(full.put(1), name="putter"),
            asyncio.create_task(barrier.wait(), name="barrier"),
        )

    report = _report(main)
    assert "cond: waits for a notify on an asyncio.Condition (its lock free) at" in report
    assert "getter: waits for an item in an empty Queue at" in report
    assert "putter: waits for room in a full Queue (maxsize 1) at" in report
    assert "barrier: waits for an asyncio.Barrier (1 of 3 parties waiting) at" in report


def test_semaphore_wrappers_keep_asyncio_behaviour_and_are_undone() -> None:
    original = asyncio.Semaphore.acquire, asyncio.Semaphore.release

    async def main() -> list[object]:
        sem = asyncio.BoundedSemaphore(1)
        seen: list[object] = [await sem.acquire(), sem.locked()]
        sem.release()
        try:
            sem.release()
        except ValueError as error:  # BoundedSemaphore released too many times
            seen.append(str(error))
        seen.append(sem.locked())
        return seen

    result = simloom.run(main)
    assert result.value == [True, True, "BoundedSemaphore released too many times", False]
    assert (asyncio.Semaphore.acquire, asyncio.Semaphore.release) == original


def test_a_semaphore_outliving_its_universe_names_only_this_universes_holders() -> None:
    shared = asyncio.Semaphore(1)

    async def take_and_keep() -> None:
        await shared.acquire()  # never released: the universe ends holding it

    assert simloom.run(take_and_keep).error is None

    async def main() -> list[object]:
        return list(_patches.semaphore_holders(shared))

    assert simloom.run(main).value == []
