"""Programs that reach for the real world, for the determinism-boundary tests
(imported by the tests and by the fresh interpreters they start).

``decides_with_the_real_world`` bases its schedule on every source the boundary
patches: the wall clock, ``datetime.now()``, a ``monotonic`` bound before any
universe, the global ``random``, ``uuid4``, ``uuid1`` and ``os.urandom``. Its digest
therefore changes whenever one of them does.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import random
import secrets
import time
import uuid
from time import monotonic  # bound at import, long before any universe

from aiohttp import ClientSession, web

__all__ = [
    "aiohttp_exchange_with_date_headers",
    "decides_with_the_real_world",
    "never_touches_randomness",
]


async def decides_with_the_real_world() -> list[object]:
    """Tasks sleep for durations derived from each source and record what they
    saw; the order they finish in, and the virtual time, depend on every value."""
    seen: list[object] = []

    async def sleeper(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        seen.append((name, round(monotonic(), 6), round(time.time() % 1000, 6)))

    sources = {
        "time": time.time() % 1,
        "datetime": datetime.datetime.now(datetime.UTC).microsecond / 1e6,
        "monotonic": monotonic(),
        "random": random.random(),
        "uuid4": uuid.uuid4().int % 1000 / 1000,
        "urandom": os.urandom(1)[0] / 256,
        "secrets": secrets.randbelow(1000) / 1000,
        "uuid1": uuid.uuid1().clock_seq % 1000 / 1000,
        "Random()": random.Random().random(),
    }
    await asyncio.gather(*(sleeper(name, delay) for name, delay in sources.items()))
    if random.random() < 0.5:  # a branch the tape's random seed decides
        await asyncio.sleep(1)
    seen.append(("at", time.time(), datetime.datetime.now(datetime.UTC).isoformat()))
    return seen


async def never_touches_randomness() -> int:
    """Reads clocks but no random source: the tape has no world.random_seed."""
    total = 0

    async def worker(i: int) -> None:
        nonlocal total
        await asyncio.sleep(i / 10)
        total += int(time.monotonic() * 10)

    await asyncio.gather(*(worker(i) for i in range(4)))
    return total


async def aiohttp_exchange_with_date_headers(world: object) -> list[object]:
    """An unmodified aiohttp server, which stamps every response with a ``Date``
    header from the wall clock, answering aiohttp's own client over the simulated
    network with loss and latency; returns what the client saw. (aiohttp is imported
    at module level: an import runs once per process, so randomness or clock reads
    at import time inside a universe would make the first universe differ.)"""

    async def now(request: web.Request) -> web.Response:
        return web.json_response({"id": str(uuid.uuid4()), "at": time.time()})

    async def serve() -> None:
        app = web.Application()
        app.router.add_get("/now", now)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "0.0.0.0", 8080).start()
        await asyncio.Event().wait()

    world.host("api").spawn(serve)  # type: ignore[attr-defined]
    world.net.set_latency(0.001, 0.030)  # type: ignore[attr-defined]
    world.net.set_loss(20)  # type: ignore[attr-defined]
    await asyncio.sleep(1.5)
    seen: list[object] = []
    async with ClientSession() as session:
        for _ in range(3):
            async with session.get("http://api:8080/now") as response:
                seen.append((response.headers["Date"], await response.json()))
            await asyncio.sleep(random.random())
    return seen
