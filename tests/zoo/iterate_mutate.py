"""A dict mutated while a task iterates it across awaits, and its snapshot control.

A broadcaster walks the subscriber dict and awaits a send to each; a subscriber that
joins during the walk changes the dict's size, and the broadcaster's next step raises
``RuntimeError: dictionary changed size during iteration``. Under the stock loop's
order the subscriber joins after the broadcast has finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

#: Awaits before the new subscriber joins.
JOIN_AFTER = 2


async def _broadcast_and_join(walk: Callable[[dict[str, list[str]]], Iterable[str]]) -> int:
    subscribers: dict[str, list[str]] = {"a": [], "b": []}

    async def broadcast(message: str) -> None:
        for name in walk(subscribers):
            await asyncio.sleep(0)  # send
            subscribers[name].append(message)

    async def join() -> None:
        for _ in range(JOIN_AFTER):
            await asyncio.sleep(0)
        subscribers["c"] = []

    await asyncio.gather(broadcast("hello"), join())
    return sum(map(len, subscribers.values()))


async def iterate_while_mutated() -> int:
    """Iterator invalidation: a dict iterated across awaits changes size (RuntimeError)."""
    return await _broadcast_and_join(lambda subscribers: subscribers)


async def iterate_snapshot() -> int:
    """Control for iterator invalidation: the broadcast walks a snapshot of the keys."""
    return await _broadcast_and_join(lambda subscribers: list(subscribers))
