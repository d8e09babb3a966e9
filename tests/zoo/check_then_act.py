"""Check-then-act (a cache stampede) and its single-flight control.

``if key not in cache: cache[key] = await fetch(key)``: the check and the act are
separated by an await, so a second request for the same key that arrives while the
first fetch is in flight also misses and fetches again. Under the stock loop's order
the second request arrives after the first fetch has filled the cache.
"""

from __future__ import annotations

import asyncio


async def check_then_act() -> int:
    """Check-then-act: 'if key not in cache: await fetch' fetches one key twice."""
    cache: dict[str, str] = {}
    fetches: list[str] = []

    async def fetch(key: str) -> str:
        fetches.append(key)
        await asyncio.sleep(0)  # the backend round-trip
        await asyncio.sleep(0)  # decoding the response
        return key.upper()

    async def get(key: str) -> str:
        if key not in cache:  # check ...
            cache[key] = await fetch(key)  # ... act, one await later
        return cache[key]

    async def later_get(key: str) -> str:
        for _ in range(2):  # arrives two scheduling points later
            await asyncio.sleep(0)
        return await get(key)

    await asyncio.gather(get("user:1"), later_get("user:1"))
    assert len(fetches) == 1, f"check-then-act: user:1 fetched {len(fetches)} times"
    return len(fetches)


async def single_flight_cache() -> int:
    """Control for check-then-act: the cache holds the in-flight fetch (single flight)."""
    cache: dict[str, asyncio.Future[str]] = {}
    fetches: list[str] = []

    async def fetch(key: str) -> str:
        fetches.append(key)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return key.upper()

    async def get(key: str) -> str:
        if key not in cache:  # check and act in one step: no await in between
            cache[key] = asyncio.ensure_future(fetch(key))
        return await cache[key]

    async def later_get(key: str) -> str:
        for _ in range(2):
            await asyncio.sleep(0)
        return await get(key)

    values = await asyncio.gather(get("user:1"), later_get("user:1"), get("user:1"))
    assert list(values) == ["USER:1"] * 3, values
    assert len(fetches) == 1, f"check-then-act: user:1 fetched {len(fetches)} times"
    return len(fetches)
