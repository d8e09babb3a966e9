"""A lost wakeup (an Event cleared after the check), and its clear-then-recheck control.

A consumer waits for work with an ``asyncio.Event``: it checks the inbox, and when it
is empty it logs (an await), clears the event and waits. A producer that delivers an
item and sets the event in the window between the check and the ``clear()`` has its
wakeup erased: the consumer waits with an item in its inbox until its timeout. Under
the stock loop's order the producer sets the event after the consumer is waiting.
"""

from __future__ import annotations

import asyncio

#: How long the consumer waits for a wakeup before giving up (virtual seconds).
PATIENCE = 1.0


async def _producer(inbox: list[str], ready: asyncio.Event) -> None:
    await asyncio.sleep(0)  # the item arrives a little later
    inbox.append("job")
    ready.set()


async def _wait(ready: asyncio.Event, inbox: list[str]) -> None:
    try:
        async with asyncio.timeout(PATIENCE):
            await ready.wait()
    except TimeoutError:
        raise AssertionError(f"lost wakeup: waited {PATIENCE:g} s with {inbox} queued") from None


async def lost_wakeup() -> str:
    """Lost wakeup: Event.clear() after the emptiness check erases a concurrent set()."""
    inbox: list[str] = []
    ready = asyncio.Event()

    async def consumer() -> str:
        if not inbox:
            await asyncio.sleep(0)  # log "idle"
            ready.clear()  # the bug: a set() since the check is erased
            await _wait(ready, inbox)
        return inbox.pop()

    job, _ = await asyncio.gather(consumer(), _producer(inbox, ready))
    return job


async def event_clear_then_recheck() -> str:
    """Control for the lost wakeup: clear the Event, then re-check before waiting."""
    inbox: list[str] = []
    ready = asyncio.Event()

    async def consumer() -> str:
        while not inbox:
            await asyncio.sleep(0)  # log "idle"
            ready.clear()
            if not inbox:  # no await between the clear, the re-check and the wait
                await _wait(ready, inbox)
        return inbox.pop()

    job, _ = await asyncio.gather(consumer(), _producer(inbox, ready))
    return job
