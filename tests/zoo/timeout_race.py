"""A completion and a timeout at the same instant, and its idempotent-retry control.

A client charges an order with ``asyncio.wait_for(reply, TIMEOUT)``; the payment
server takes exactly ``TIMEOUT`` to process it. The client treats ``TimeoutError`` as
"the server never processed the charge" and retries. When the server's completion and
the client's timeout fall due at the same instant, either may run first: if the server
completes first and the timeout still fires before the client resumes, ``wait_for``
raises ``TimeoutError`` although the charge went through, and the retry charges the
customer twice. Under the stock loop's order the client's timeout (scheduled first)
runs first, cancels the reply, and the server drops the request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: The client's timeout and the server's processing time (seconds; virtual under
#: simloom, real and short on the stock loop).
TIMEOUT = 0.01


async def _server(reply: asyncio.Future[str], charge: Callable[[str], str]) -> None:
    await asyncio.sleep(TIMEOUT)  # processing takes exactly the client's timeout
    if reply.cancelled():  # the client gave up: drop the request
        return
    reply.set_result(charge("order-1"))


async def timeout_same_instant() -> int:
    """Same-instant completion and timeout: TimeoutError taken to mean 'not processed'."""
    loop = asyncio.get_running_loop()
    charges: list[str] = []

    def charge(order: str) -> str:
        charges.append(order)
        return f"receipt for {order}"

    reply: asyncio.Future[str] = loop.create_future()
    server = asyncio.create_task(_server(reply, charge))
    try:
        await asyncio.wait_for(reply, TIMEOUT)
    except TimeoutError:
        charge("order-1")  # the bug: assumes the server never charged
    await server
    assert len(charges) == 1, f"charged {len(charges)} times for one order"
    return len(charges)


async def idempotent_retry() -> int:
    """Control for the same-instant timeout: the retry is idempotent (keyed by order id)."""
    loop = asyncio.get_running_loop()
    charges: dict[str, int] = {}

    def charge(order: str) -> str:
        charges.setdefault(order, 0)  # an idempotency key: a second charge is a no-op
        charges[order] = 1
        return f"receipt for {order}"

    reply: asyncio.Future[str] = loop.create_future()
    server = asyncio.create_task(_server(reply, charge))
    try:
        await asyncio.wait_for(reply, TIMEOUT)
    except TimeoutError:
        charge("order-1")
    await server
    assert sum(charges.values()) == 1, f"charged {sum(charges.values())} times for one order"
    return sum(charges.values())
