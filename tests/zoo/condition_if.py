"""A condition variable waited on with ``if`` instead of ``while``, and its control.

Consumers take items from a shared list guarded by an ``asyncio.Condition``. A
consumer that finds the list empty waits for a notification and then pops --
checking with ``if``, not ``while``. Between the producer's ``notify()`` and the
woken consumer re-acquiring the lock, a newly arriving consumer can take the item;
the woken one then finds the list empty. Under the stock loop's order the woken
consumer re-acquires the lock first.
"""

from __future__ import annotations

import asyncio


async def _run(use_while: bool) -> list[tuple[str, str]]:
    cond = asyncio.Condition()
    items: list[str] = []
    consumed: list[tuple[str, str]] = []

    async def consumer(name: str, arrives_after: int) -> None:
        for _ in range(arrives_after):
            await asyncio.sleep(0)
        async with cond:
            if use_while:
                while not items:
                    await cond.wait()
            elif not items:  # the bug: a wakeup is not a guarantee
                await cond.wait()
            assert items, f"{name} was woken but the item was already taken"
            consumed.append((name, items.pop(0)))

    async def producer() -> None:
        for item, delay in (("a", 0), ("b", 0.01)):  # b: a little later
            await asyncio.sleep(delay)
            async with cond:
                items.append(item)
                cond.notify()

    await asyncio.gather(consumer("c1", 0), consumer("c2", 1), producer())
    assert sorted(item for _, item in consumed) == ["a", "b"], consumed
    return consumed


async def condition_if_not_while() -> list[tuple[str, str]]:
    """Condition variable 'if' instead of 'while': a woken consumer finds the item taken."""
    return await _run(use_while=False)


async def condition_while() -> list[tuple[str, str]]:
    """Control for the condition variable: the consumer re-checks in a 'while' loop."""
    return await _run(use_while=True)
