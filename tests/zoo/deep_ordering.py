"""Deep ordering: three independent races must all go the wrong way.

A counter is replicated on three replicas; an increment updates every replica
concurrently with a read-await-write, and a read takes the maximum over the replicas
(last-writer-wins by value). A lost update on one or two replicas is masked by the
others; the read is wrong only when the update is lost on all three. Under the stock
loop's order the second increment starts after the first has written everywhere.
"""

from __future__ import annotations

import asyncio

REPLICAS = 3


async def deep_ordering() -> list[int]:
    """Deep ordering: an update is lost only if three replica races all go the wrong way."""
    replicas = [0] * REPLICAS

    async def bump(i: int) -> None:
        seen = replicas[i]
        await asyncio.sleep(0)  # the replica round-trip
        replicas[i] = seen + 1

    async def increment(arrives_after: int) -> None:
        for _ in range(arrives_after):
            await asyncio.sleep(0)
        await asyncio.gather(*(bump(i) for i in range(REPLICAS)))

    await asyncio.gather(increment(0), increment(2))
    assert max(replicas) == 2, f"lost update on every replica: {replicas}"
    return replicas
