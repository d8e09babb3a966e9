"""Lost update (read, await, write) and its lock-protected control.

Two increments of a hit counter each read the value, await (a round-trip to the
store), and write back what they read plus one. Under the stock loop's order the
second increment arrives late enough to read the first one's write; one early step of
the late request makes both read 0, and one increment is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def _late(coro_fn: Callable[[], Awaitable[None]], steps: int = 2) -> None:
    """Run ``coro_fn()`` after ``steps`` scheduling points (a later request)."""
    for _ in range(steps):
        await asyncio.sleep(0)
    await coro_fn()


async def lost_update() -> int:
    """Lost update: two increments read the counter, await, then write read + 1."""
    store = {"hits": 0}

    async def increment() -> None:
        current = store["hits"]  # read ...
        await asyncio.sleep(0)  # ... a round-trip to the store ...
        store["hits"] = current + 1  # ... write: overwrites a concurrent increment

    await asyncio.gather(increment(), _late(increment))
    assert store["hits"] == 2, f"lost update: 2 increments, hits == {store['hits']}"
    return store["hits"]


async def locked_counter() -> int:
    """Control for lost update: the read-await-write runs under an asyncio.Lock."""
    store = {"hits": 0}
    lock = asyncio.Lock()

    async def increment() -> None:
        async with lock:
            current = store["hits"]
            await asyncio.sleep(0)
            store["hits"] = current + 1

    await asyncio.gather(increment(), _late(increment), increment())
    assert store["hits"] == 3, f"lost update: 3 increments, hits == {store['hits']}"
    return store["hits"]
