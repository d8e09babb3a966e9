"""Starvation: a worker that runs many steps in a row starves a heartbeat.

A worker yields after every unit of work (``await asyncio.sleep(0)``) and trusts the
loop to be fair; a heartbeat task that also runs between units reports liveness, and
a watchdog fails when the worker has made ``LIMIT`` units of progress without the
heartbeat getting a turn. The stock loop alternates the two strictly. A uniform random
walk needs ``LIMIT`` worker picks in a row (about ``2**-LIMIT`` per position), which it
rarely produces; PCT, which runs the highest-priority task until a change point,
produces long runs all the time.
"""

from __future__ import annotations

import asyncio

#: Units of work the worker does.
WORK = 40
#: Consecutive units without a heartbeat that trip the watchdog.
LIMIT = 14


async def starvation() -> int:
    """Starvation: the worker makes LIMIT steps in a row before the heartbeat runs."""
    state = {"since_beat": 0, "worst": 0, "done": False}

    async def worker() -> None:
        for _ in range(WORK):
            state["since_beat"] += 1
            await asyncio.sleep(0)
        state["done"] = True

    async def heartbeat() -> None:
        for _ in range(10 * WORK):  # bounded: stops once the worker is done
            state["worst"] = max(state["worst"], state["since_beat"])
            state["since_beat"] = 0
            if state["done"]:
                return
            await asyncio.sleep(0)

    await asyncio.gather(worker(), heartbeat())
    assert state["worst"] < LIMIT, (
        f"watchdog: the worker made {state['worst']} steps without a heartbeat"
    )
    return state["worst"]
