"""Message reordering (two updates on separate deliveries), and its sequence-number control.

A primary sends two updates of one key to a replica; each message travels on its own
delivery (a task per message, two network hops each), and the replica applies
whatever arrives, last arrival wins. When the second update overtakes the first, the
replica ends on the older value. Under the stock loop's order the deliveries keep
their send order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: Network hops (scheduling points) of each delivery.
HOPS = 2


async def _send(apply: Callable[[int, str], None], seq: int, value: str) -> None:
    for _ in range(HOPS):
        await asyncio.sleep(0)
    apply(seq, value)


async def message_reordering() -> str:
    """Message reordering: the replica applies updates in arrival order, not send order."""
    replica = {"value": "v0"}

    def apply(seq: int, value: str) -> None:
        replica["value"] = value  # the bug: ignores the sequence number

    await asyncio.gather(
        asyncio.create_task(_send(apply, 1, "v1")), asyncio.create_task(_send(apply, 2, "v2"))
    )
    assert replica["value"] == "v2", f"replica ended on {replica['value']}, the older update"
    return replica["value"]


async def sequenced_messages() -> str:
    """Control for message reordering: the replica drops updates older than its last."""
    replica: dict[str, object] = {"value": "v0", "seq": 0}

    def apply(seq: int, value: str) -> None:
        if seq > replica["seq"]:  # type: ignore[operator]
            replica["value"], replica["seq"] = value, seq

    await asyncio.gather(
        asyncio.create_task(_send(apply, 1, "v1")), asyncio.create_task(_send(apply, 2, "v2"))
    )
    assert replica["value"] == "v2", f"replica ended on {replica['value']}, the older update"
    return str(replica["value"])
