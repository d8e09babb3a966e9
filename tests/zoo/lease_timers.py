"""Two timers due at the same instant (a lease renewed exactly at its expiry), and its
renew-early control.

A session holds a lease that expires ``LEASE`` after it starts; a renewer extends it
when it is due, ``LEASE`` after the start, and a reaper checks it at the same
instant. Both are timers due at the same time, so either may run first: when the
reaper runs first it reaps a session that is being renewed on time. Under the stock
loop's order the renewer's timer (armed first) fires first.
"""

from __future__ import annotations

import asyncio

#: The lease (seconds; virtual under simloom, real and short on the stock loop).
LEASE = 0.01


async def _lease(renew_after: float) -> bool:
    loop = asyncio.get_running_loop()
    lease = {"expires": loop.time() + LEASE, "reaped": False}

    async def renewer() -> None:
        await asyncio.sleep(renew_after)
        lease["expires"] = loop.time() + LEASE

    async def reaper() -> None:
        await asyncio.sleep(LEASE)
        if loop.time() >= lease["expires"]:
            lease["reaped"] = True

    await asyncio.gather(asyncio.create_task(renewer()), asyncio.create_task(reaper()))
    assert not lease["reaped"], "lease reaped although it was renewed on time"
    return bool(lease["reaped"])


async def lease_renewed_at_expiry() -> bool:
    """Same-instant timers: the renewal and the reaper fall due at the same time."""
    return await _lease(renew_after=LEASE)


async def lease_renewed_early() -> bool:
    """Control for the same-instant timers: the lease is renewed at half its term."""
    return await _lease(renew_after=LEASE / 2)
