"""Double initialisation of a lazy singleton, and its lock-guarded control.

A lazily created client (``get_client()``) connects on first use, and the connection
handshake awaits. A second caller that arrives during the handshake sees no client
yet and builds a second one: two connections, and the callers hold different
"singletons". Under the stock loop's order the second caller arrives after the
first has finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Client:
    """A connected client; ``serial`` counts how many were ever built."""

    def __init__(self, serial: int) -> None:
        self.serial = serial


class Lazy:
    """A lazily initialised client holder (one per universe: no module-level state)."""

    def __init__(self) -> None:
        self.client: Client | None = None
        self.built = 0
        self.lock = asyncio.Lock()

    async def _connect(self) -> Client:
        await asyncio.sleep(0)  # TCP handshake
        await asyncio.sleep(0)  # authentication
        self.built += 1
        return Client(self.built)

    async def get_racy(self) -> Client:
        if self.client is None:
            self.client = await self._connect()
        return self.client

    async def get_locked(self) -> Client:
        if self.client is None:
            async with self.lock:
                if self.client is None:  # checked again under the lock
                    self.client = await self._connect()
        return self.client


async def _callers(get: Callable[[], Awaitable[Client]]) -> tuple[Client, Client, Client]:
    async def early() -> Client:
        return await get()

    async def late() -> Client:
        for _ in range(3):  # a request that arrives three scheduling points later
            await asyncio.sleep(0)
        return await get()

    a, b = await asyncio.gather(early(), late())
    return a, b, await get()


async def double_init() -> int:
    """Double initialisation: a lazy singleton with an await inside its init is built twice."""
    lazy = Lazy()
    a, b, c = await _callers(lazy.get_racy)
    assert a is b is c, f"initialised twice: callers hold clients #{a.serial} and #{b.serial}"
    assert lazy.built == 1, f"initialised {lazy.built} times"
    return lazy.built


async def locked_init() -> int:
    """Control for double initialisation: init is double-checked under an asyncio.Lock."""
    lazy = Lazy()
    a, b, c = await _callers(lazy.get_locked)
    assert a is b is c, f"initialised twice: callers hold clients #{a.serial} and #{b.serial}"
    assert lazy.built == 1, f"initialised {lazy.built} times"
    return lazy.built
