"""Delivery: the network core hands each event straight to its transport.

A segment costs one loop step (the network's timer) and one Python call (the
transport's handler, in its host's context); a transport sees its events in the
order the network produced them, however the strategy orders the steps.
"""

from __future__ import annotations

import asyncio
from typing import Any

import simloom
from simloom import World
from simloom.world import current_host

PORT = 7000


class Echo(asyncio.Protocol):
    """Server side: sends back every segment, noting the host it ran on."""

    hosts: list[str | None]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        host = current_host()
        Echo.hosts.append(host.name if host is not None else None)
        self.transport.write(data)


class Pinger(asyncio.Protocol):
    """Client side: a ping-pong of `rounds` one-byte segments, with no task in it."""

    def __init__(self, rounds: int, done: asyncio.Future[None]) -> None:
        self.rounds = rounds
        self.done = done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.transport.write(b"x")

    def data_received(self, data: bytes) -> None:
        self.rounds -= 1
        if self.rounds:
            self.transport.write(b"x")
        elif not self.done.done():
            self.done.set_result(None)


def ping_pong(rounds: int) -> Any:
    async def main(world: World) -> None:
        loop = asyncio.get_running_loop()

        async def serve() -> None:
            server = await loop.create_server(Echo, None, PORT)
            await server.serve_forever()

        world.host("server").spawn(serve)
        await world.sleep(0.01)
        done: asyncio.Future[None] = loop.create_future()
        transport, _ = await loop.create_connection(lambda: Pinger(rounds, done), "server", PORT)
        await done
        transport.close()

    return main


def test_a_lone_segment_costs_one_loop_step() -> None:
    Echo.hosts = []
    short = simloom.run(ping_pong(10), seed=3)
    long = simloom.run(ping_pong(30), seed=3)
    short.raise_error()
    long.raise_error()
    # Twenty more round trips, two segments each, one step per segment (the
    # network's timer handing the segment to the protocol in the same step).
    assert long.steps - short.steps == 20 * 2


def test_a_segment_is_handled_in_the_receiving_hosts_context() -> None:
    Echo.hosts = []
    simloom.run(ping_pong(5), seed=1).raise_error()
    assert Echo.hosts == ["server"] * 5


def test_segments_due_together_reach_the_protocol_in_the_order_sent() -> None:
    chunks = [bytes([65 + i]) * (i + 1) for i in range(20)]

    async def main(world: World) -> bytes:
        received = bytearray()
        finished = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.extend(await reader.read())
            finished.set()
            writer.close()

        async def serve() -> None:
            server = await asyncio.start_server(handle, None, PORT)
            await server.serve_forever()

        world.net.set_segmentation(50)  # many segments, many due at the same instant
        world.host("sink").spawn(serve)
        await world.sleep(0.01)
        _, writer = await asyncio.open_connection("sink", PORT)
        for chunk in chunks:
            writer.write(chunk)
        writer.write_eof()
        await finished.wait()
        return bytes(received)

    for seed in range(30):
        result = simloom.run(main, seed=seed)
        result.raise_error()
        assert result.value == b"".join(chunks), seed
