"""Two cancellation bugs that only an injected cancellation shows, and their controls.

Nothing in these programs cancels anything, so under every plain schedule they pass;
they fail only when a task is cancelled at one particular await
(``cancellations=True``, see ``simloom._cancellations``). The registry lists them in
``zoo.NEEDS_CANCELLATIONS``.

* ``sem_cancel_leak``: a worker acquires a semaphore permit, logs (an await), and only
  then enters the ``try/finally`` that releases it. A cancellation at the log leaks
  the permit: afterwards the pool can no longer be drained to full capacity.
* ``queue_cancel_lost``: a consumer takes an item, logs (an await), and only then
  enters the ``try`` that hands the item back on cancellation. A cancellation at the
  log loses the item: it is neither processed nor left in the queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

#: Permits of the semaphore, and workers competing for them.
PERMITS = 2
WORKERS = 3
#: Items the producer sends.
ITEMS = 3
#: How long the final check waits for the permits (virtual seconds).
PATIENCE = 1.0


async def _drain_permits(
    worker: Callable[[asyncio.Semaphore], Coroutine[Any, Any, None]],
) -> None:
    sem = asyncio.Semaphore(PERMITS)
    await asyncio.gather(*(worker(sem) for _ in range(WORKERS)), return_exceptions=True)
    taken = 0
    try:
        async with asyncio.timeout(PATIENCE):
            for _ in range(PERMITS):
                await sem.acquire()
                taken += 1
    except TimeoutError:
        raise AssertionError(
            f"semaphore leaked: {PERMITS - taken} of {PERMITS} permits never released"
        ) from None


async def sem_cancel_leak() -> None:
    """Semaphore leak: cancelled between acquire() and the try/finally that releases it."""

    async def worker(sem: asyncio.Semaphore) -> None:
        await sem.acquire()
        await asyncio.sleep(0)  # log "started": a cancellation here leaks the permit
        try:
            await asyncio.sleep(0)  # the work
        finally:
            sem.release()

    await _drain_permits(worker)


async def sem_async_with() -> None:
    """Control for the semaphore leak: the permit is held under 'async with'."""

    async def worker(sem: asyncio.Semaphore) -> None:
        async with sem:
            await asyncio.sleep(0)  # log "started"
            await asyncio.sleep(0)  # the work

    await _drain_permits(worker)


async def _account(
    consumer: Callable[[asyncio.Queue[int | None], list[int]], Coroutine[Any, Any, None]],
) -> None:
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    produced: list[int] = []
    done: list[int] = []

    async def producer() -> None:
        try:
            for item in range(ITEMS):
                await asyncio.sleep(0)
                produced.append(item)
                queue.put_nowait(item)
        finally:
            queue.put_nowait(None)  # end of stream, also when the producer is cancelled

    await asyncio.gather(producer(), consumer(queue, done), return_exceptions=True)
    left = []
    while not queue.empty():
        item = queue.get_nowait()
        if item is not None:
            left.append(item)
    assert sorted(done + left) == produced, (
        f"queue item lost: produced {produced}, processed {done}, left in the queue {left}"
    )


async def queue_cancel_lost() -> None:
    """Queue item lost: cancelled between get() and the try that hands the item back."""

    async def consumer(queue: asyncio.Queue[int | None], done: list[int]) -> None:
        while (item := await queue.get()) is not None:
            await asyncio.sleep(0)  # log "got": a cancellation here loses the item
            try:
                await asyncio.sleep(0)  # process
                done.append(item)
            except asyncio.CancelledError:
                queue.put_nowait(item)  # hand it back for the next consumer
                raise

    await _account(consumer)


async def queue_requeue_safe() -> None:
    """Control for the lost queue item: the hand-back covers every await after get()."""

    async def consumer(queue: asyncio.Queue[int | None], done: list[int]) -> None:
        while (item := await queue.get()) is not None:
            try:
                await asyncio.sleep(0)  # log "got"
                await asyncio.sleep(0)  # process
                done.append(item)
            except asyncio.CancelledError:
                queue.put_nowait(item)
                raise

    await _account(consumer)
