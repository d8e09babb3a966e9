"""An order service: an aiohttp front end, Postgres for the orders, Redis as a read
cache, all unmodified clients against simloom's stand-ins.

``POST /orders`` stores an order; ``GET /orders/{id}`` answers from the cache, or
from the database on a miss. The planted bug (``cache_first=True``): the handler
writes the cache *before* the database commits. Nothing goes wrong while the
database stays up; if it crashes between the two, the cache holds an order the
database never committed, and the service shows it forever (a phantom order).
The correct handler commits first and caches after: a crash in between only costs
a cache miss.

Scenario (``scenario``): a client places orders one after another while the
database host loses power at a tape-chosen moment and comes back; afterwards every
order the service shows must be in the database. ``tests/test_example_orders.py``
lets ``@simloom.test`` find the phantom order and shrink it to the crash that
shows it, and checks that the correct handler survives.

Run it inside simloom:              python examples/orders_service.py
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis
import simloom
from aiohttp import web

SCHEMA = "CREATE TABLE IF NOT EXISTS orders (id int PRIMARY KEY, item text NOT NULL)"
ORDERS = 6


def make_app(pool: asyncpg.Pool, cache: aioredis.Redis, *, cache_first: bool) -> web.Application:
    async def place(request: web.Request) -> web.Response:
        order = await request.json()
        key = f"order:{order['id']}"
        if cache_first:  # the planted bug: the cache learns of the order first
            await cache.set(key, order["item"])
        async with pool.acquire() as con, con.transaction():
            await con.execute("INSERT INTO orders VALUES ($1, $2)", order["id"], order["item"])
        if not cache_first:
            await cache.set(key, order["item"])
        return web.json_response({"id": order["id"]}, status=201)

    async def show(request: web.Request) -> web.Response:
        order_id = int(request.match_info["id"])
        item = await cache.get(f"order:{order_id}")
        if item is None:
            async with pool.acquire() as con:
                item = await con.fetchval("SELECT item FROM orders WHERE id = $1", order_id)
            if item is None:
                raise web.HTTPNotFound()
            await cache.set(f"order:{order_id}", item)
        text = item.decode() if isinstance(item, bytes) else item
        return web.json_response({"id": order_id, "item": text})

    app = web.Application()
    app.add_routes([web.post("/orders", place), web.get("/orders/{id}", show)])
    return app


def scenario(*, cache_first: bool) -> Any:
    """A universe: the service on host "api", Postgres on "db", Redis on "cache";
    the client on "main" places ``ORDERS`` orders while "db" crashes once."""

    async def main(world: Any) -> None:
        world.postgres("db")
        world.redis("cache", appendfsync="always")
        db = world.hosts["db"]

        async def serve() -> None:
            pool = await asyncpg.create_pool(host="db", user="postgres", min_size=1, max_size=2)
            async with pool.acquire() as con:
                await con.execute(SCHEMA)
            cache = aioredis.Redis(host="cache", port=6379)
            runner = web.AppRunner(make_app(pool, cache, cache_first=cache_first))
            await runner.setup()
            await web.TCPSite(runner, "0.0.0.0", 8080).start()
            await asyncio.Event().wait()

        world.host("api").spawn(serve)
        await asyncio.sleep(0.05)

        # The power cut, at a moment the tape chooses (and the shrinker moves):
        # 0-90 ms after the first order, while the orders take about 60 ms.
        crash_at = simloom.draw("crash_at", 30) * 0.003

        async def power_cut() -> None:
            await asyncio.sleep(crash_at)
            db.crash()
            await asyncio.sleep(0.5)
            db.restart()

        outage = asyncio.ensure_future(power_cut())
        async with httpx.AsyncClient(base_url="http://api:8080", timeout=5.0) as client:
            for order_id in range(ORDERS):
                with contextlib.suppress(httpx.HTTPError):  # an outage fails a request
                    await client.post("/orders", json={"id": order_id, "item": f"book {order_id}"})
            await outage
            await asyncio.sleep(0.1)  # the database is back
            shown = {}
            for order_id in range(ORDERS):
                response = await client.get(f"/orders/{order_id}")
                if response.status_code == 200:
                    shown[order_id] = response.json()["item"]
        con = await asyncpg.connect(host="db", user="postgres")
        stored = {r["id"]: r["item"] for r in await con.fetch("SELECT id, item FROM orders")}
        await con.close()
        for order_id, item in shown.items():
            assert stored.get(order_id) == item, (
                f"order {order_id} ({item!r}) is shown but the database never committed it: "
                f"the cache was written before the commit, and the database crashed in between"
            )

    return main


if __name__ == "__main__":
    import logging

    # The outage's 500s and the pool's reconnection attempts, logged as they happen.
    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)
    logging.getLogger("asyncpg").setLevel(logging.CRITICAL)
    for cache_first in (True, False):
        failures = sum(
            not simloom.run(scenario(cache_first=cache_first), seed=seed).ok for seed in range(20)
        )
        label = "cache before commit (bug)" if cache_first else "commit before cache"
        print(f"{label}: {failures} of 20 universes show a phantom order")
