"""A lock-order deadlock, and its ordered-acquisition control.

A transfer takes the accounts lock then the audit lock; an auditor, which starts a
little later, takes them in the opposite order. Under the stock loop's order the
transfer has released both before the auditor starts; if the auditor takes the audit
lock while the transfer holds the accounts lock, each waits for the other forever
(``simloom.SimDeadlockError``; the stock loop would hang).
"""

from __future__ import annotations

import asyncio


async def _run(auditor_order: str) -> list[str]:
    locks = {"accounts": asyncio.Lock(), "audit": asyncio.Lock()}
    log: list[str] = []

    async def transfer() -> None:
        async with locks["accounts"]:
            await asyncio.sleep(0)  # move the money
            async with locks["audit"]:
                await asyncio.sleep(0)  # write the audit record
                log.append("transfer")

    async def audit() -> None:
        await asyncio.sleep(0)  # the auditor starts a little later
        await asyncio.sleep(0)
        first, second = auditor_order.split(",")
        async with locks[first]:
            await asyncio.sleep(0)
            async with locks[second]:
                log.append("audit")

    await asyncio.gather(transfer(), audit())
    assert sorted(log) == ["audit", "transfer"], log
    return log


async def lock_order_deadlock() -> list[str]:
    """Lock-order deadlock: two tasks take the same two locks in opposite orders."""
    return await _run("audit,accounts")


async def ordered_locks() -> list[str]:
    """Control for the lock-order deadlock: both tasks take the locks in one global order."""
    return await _run("accounts,audit")
