"""A primary-backup key-value store whose bug only a linearizability check sees.

Three replicas (``primary``, ``backup-1``, ``backup-2``) serve line-delimited JSON
over ``asyncio`` streams on the simulated network. A ``put`` goes to the primary,
which applies it, sends it to both backups and answers once both acknowledged
(synchronous replication). Three clients put and get two keys, and record every
call in a :class:`simloom.History`.

The planted bug is an optimisation: ``get`` is spread over all replicas
(``reads="any"``). A backup may not have applied a write the primary is still
replicating, so one client can read the new value from one backup and, after that,
another client the old value from the other: no exception, no wrong final state,
every single reply plausible — but no order of the operations explains both reads.
``History.assert_linearizable("kv")`` fails the universe with the smallest such
sub-history, drawn over time. With ``reads="primary"`` (the correct store) every
history is linearizable.

Run one universe of each:   python examples/replicated_kv.py
Explore it:                 python examples/demo.py
                            simloom explore examples/replicated_kv.py:buggy --runs 200
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import simloom
from simloom.world import World

PORT = 9000
REPLICAS = ("primary", "backup-1", "backup-2")
KEYS = ("x", "y")


class Replica:
    """One replica's state and server."""

    #: Set to a list to have every replica started append itself (for monitors).
    instances: list[Replica] | None = None

    def __init__(self, name: str) -> None:
        self.name = name
        self.data: dict[str, Any] = {}
        if Replica.instances is not None:
            Replica.instances.append(self)

    async def serve(self) -> None:
        server = await asyncio.start_server(self._connection, None, PORT)
        async with server:
            await server.serve_forever()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                request = json.loads(line)
                reply = await self._handle(request)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "get":
            return {"ok": True, "value": self.data.get(request["key"])}
        if op == "replicate":
            self.data[request["key"]] = request["value"]
            return {"ok": True}
        if op == "put" and self.name == "primary":
            self.data[request["key"]] = request["value"]
            # Synchronous replication: answer once every backup has the write.
            await asyncio.gather(
                *(
                    call(
                        backup,
                        {"op": "replicate", "key": request["key"], "value": request["value"]},
                    )
                    for backup in REPLICAS[1:]
                )
            )
            return {"ok": True}
        return {"ok": False, "error": f"{self.name} cannot {op}"}


async def call(host: str, request: dict[str, Any]) -> dict[str, Any]:
    """One request on a fresh connection (kept simple: no pooling)."""
    reader, writer = await asyncio.open_connection(host, PORT)
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        return json.loads(await reader.readline())  # type: ignore[no-any-return]
    finally:
        writer.close()


async def client(number: int, history: simloom.History, reads: str, operations: int) -> None:
    rng = random.Random(number)  # seeded from the tape inside a universe
    for i in range(operations):
        key = rng.choice(KEYS)
        if rng.random() < 0.5:
            value = f"c{number}.{i}"
            async with history.call(number, "put", value, key=key):
                await call("primary", {"op": "put", "key": key, "value": value})
        else:
            replica = rng.choice(REPLICAS) if reads == "any" else "primary"
            async with history.call(number, "get", key=key) as op:
                op.result = (await call(replica, {"op": "get", "key": key}))["value"]


def scenario(reads: str = "any", clients: int = 3, operations: int = 4) -> Any:
    """The store and its clients as a ``main(world)``: returns the history after
    checking it (``NotLinearizableError`` when it is not linearizable)."""

    async def replicated_kv(world: World) -> simloom.History:
        history = simloom.History(f"replicated kv (reads from {reads})")
        for name in REPLICAS:
            world.host(name).spawn(Replica(name).serve)
        for number in range(1, clients + 1):
            world.host(f"client-{number}")
        # Backups are farther away than the primary: replication takes a while.
        for backup, latency in (("backup-1", 0.002), ("backup-2", 0.006)):
            world.net.set_latency(latency, src="primary", dst=backup)
            world.net.set_latency(latency, src=backup, dst="primary")
        await asyncio.sleep(0.01)  # the servers listen
        await asyncio.gather(
            *(
                world.host(f"client-{n}").run(client(n, history, reads, operations))
                for n in range(1, clients + 1)
            )
        )
        history.assert_linearizable("kv")
        return history

    return replicated_kv


#: For ``simloom explore FILE:FUNCTION``: the store with the planted bug, and the
#: correct one.
buggy = scenario("any")
correct = scenario("primary")


if __name__ == "__main__":
    # The store needs hosts with names: it runs in a simulated world. One seed of
    # each version (the demo and the tests explore many).
    for reads in ("any", "primary"):
        result = simloom.run(scenario(reads), seed=0)
        print(
            f"reads from {reads}: {type(result.error).__name__ if result.error else 'linearizable'}"
        )
        if result.error is not None:
            print(result.error)
