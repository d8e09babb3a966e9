"""Publishing an object before it is initialised, and its publish-when-ready control.

A service registers itself in a registry and then connects (an await); a client
that looks the service up in that window gets a half-initialised object. Under the
stock loop's order the client's lookup comes after the connection is up.
"""

from __future__ import annotations

import asyncio


class Service:
    def __init__(self) -> None:
        self.ready = False


async def _client(registry: dict[str, Service]) -> bool:
    await asyncio.sleep(0)  # the client starts a little later
    while "db" not in registry:
        await asyncio.sleep(0)
    service = registry["db"]
    assert service.ready, "used a half-initialised service"
    return service.ready


async def publish_before_init() -> bool:
    """Unsafe publication: registered before its initialising await completes."""
    registry: dict[str, Service] = {}

    async def start() -> None:
        service = Service()
        registry["db"] = service  # the bug: published before it is ready
        await asyncio.sleep(0)  # connect
        service.ready = True

    _, ready = await asyncio.gather(start(), _client(registry))
    return ready


async def publish_after_init() -> bool:
    """Control for unsafe publication: registered only once initialised."""
    registry: dict[str, Service] = {}

    async def start() -> None:
        service = Service()
        await asyncio.sleep(0)  # connect
        service.ready = True
        registry["db"] = service

    _, ready = await asyncio.gather(start(), _client(registry))
    return ready
