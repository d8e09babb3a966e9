"""An abandoned async generator's cleanup racing the next user, and its aclosing() control.

A query helper returns the first row of an async generator that holds a pooled
connection and returns it in its ``finally``. Returning from inside ``async for``
abandons the generator: its ``finally`` runs only when the loop's finalizer hook
closes it, in a task of its own scheduled later. A caller that checks the pool a
couple of awaits later may run before that task and find the connection still out.
Under the stock loop's order the closing task runs first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

#: Rows the generator would yield.
ROWS = 5
#: Awaits between the query and the pool check.
LATER = 2
#: Steps of the task running alongside the query.
TICKS = 1


async def _rows(pool: dict[str, int]) -> AsyncGenerator[int, None]:
    pool["in_use"] += 1  # check a connection out
    try:
        for row in range(ROWS):
            yield row
    finally:
        pool["in_use"] -= 1  # ... and back in


async def _ticker() -> None:
    """Another task of the service, running alongside the query."""
    for _ in range(TICKS):
        await asyncio.sleep(0)


async def _check(pool: dict[str, int]) -> None:
    for _ in range(LATER):
        await asyncio.sleep(0)
    assert pool["in_use"] == 0, f"connection still checked out: in use {pool['in_use']}"


async def asyncgen_cleanup_race() -> int:
    """Async generator cleanup: an abandoned generator's finally runs in a later task."""
    pool = {"in_use": 0}

    async def first_row() -> int:
        async for row in _rows(pool):
            return row  # abandons the generator: no aclose() here
        return -1

    async def query() -> int:
        row = await first_row()
        await _check(pool)
        return row

    row, _ = await asyncio.gather(query(), _ticker())
    return row


async def asyncgen_aclosing() -> int:
    """Control for the async generator cleanup: contextlib.aclosing closes it on return."""
    pool = {"in_use": 0}

    async def first_row() -> int:
        async with contextlib.aclosing(_rows(pool)) as rows:
            async for row in rows:
                return row
        return -1

    async def query() -> int:
        row = await first_row()
        await _check(pool)
        return row

    row, _ = await asyncio.gather(query(), _ticker())
    return row
