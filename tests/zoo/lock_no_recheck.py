"""Double-checked initialisation without the second check, and its re-check control.

A lazily created client is built under a lock, but the "is it built yet?" check is
made only before taking the lock. A second caller that checks while the first is
building (an await under the lock) queues on the lock and, once it gets it, builds a
second client. Under the stock loop's order the second caller checks after the
first has finished.
"""

from __future__ import annotations

import asyncio


async def _lazy(recheck: bool) -> int:
    holder: dict[str, object] = {}
    built = [0]
    lock = asyncio.Lock()

    async def get_client(arrives_after: int) -> object:
        for _ in range(arrives_after):
            await asyncio.sleep(0)
        if "client" not in holder:
            async with lock:
                if not recheck or "client" not in holder:
                    await asyncio.sleep(0)  # connect
                    built[0] += 1
                    holder["client"] = object()
        return holder["client"]

    first, second = await asyncio.gather(get_client(0), get_client(1))
    assert built[0] == 1 and first is second, f"built {built[0]} clients"
    return built[0]


async def lock_without_recheck() -> int:
    """Double-checked init with an await: no re-check after acquiring the lock."""
    return await _lazy(recheck=False)


async def lock_with_recheck() -> int:
    """Control for double-checked init: the check is repeated under the lock."""
    return await _lazy(recheck=True)
