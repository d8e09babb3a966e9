"""A cache filled with a stale read after a concurrent invalidation, and its
versioned-fill control.

A reader misses the cache, reads the database and awaits the round trip before
filling the cache. A writer that updates the database and invalidates the cache
inside that window is undone: the reader then fills the cache with the old value,
which stays there. Under the stock loop's order the writer comes after the fill.
"""

from __future__ import annotations

import asyncio


async def stale_cache_fill() -> int:
    """Stale cache fill: a read-through fill lands after the writer's invalidation."""
    db = {"k": 1}
    cache: dict[str, int] = {}

    async def read() -> None:
        if "k" not in cache:
            value = db["k"]
            await asyncio.sleep(0)  # the database round trip
            cache["k"] = value  # the bug: may be older than an invalidation since

    async def write() -> None:
        await asyncio.sleep(0)
        db["k"] = 2
        cache.pop("k", None)  # invalidate

    await asyncio.gather(read(), write())
    assert cache.get("k", db["k"]) == db["k"], f"stale cache: {cache['k']}, database {db['k']}"
    return db["k"]


async def versioned_cache_fill() -> int:
    """Control for the stale cache fill: the fill is dropped if the key changed since."""
    db = {"k": 1}
    version = {"k": 0}
    cache: dict[str, int] = {}

    async def read() -> None:
        if "k" not in cache:
            value, seen = db["k"], version["k"]
            await asyncio.sleep(0)
            if version["k"] == seen:
                cache["k"] = value

    async def write() -> None:
        await asyncio.sleep(0)
        db["k"] = 2
        version["k"] += 1
        cache.pop("k", None)

    await asyncio.gather(read(), write())
    assert cache.get("k", db["k"]) == db["k"], f"stale cache: {cache['k']}, database {db['k']}"
    return db["k"]
