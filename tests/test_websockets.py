"""websockets (the library, unmodified) inside a universe: its asyncio server and
client on the simulated network, and its threaded sync client talking to them from
a lockstep thread. Each run replays byte for byte from its seed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import simloom
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK
from websockets.sync.client import connect as sync_connect


async def exchange() -> list[Any]:
    log: list[Any] = []

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            if message == "close-me":
                await ws.close(4000, "asked")
                return
            await ws.send(message)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        uri = f"ws://127.0.0.1:{port}"
        async with connect(uri) as ws:
            await ws.send(["frag", "mented"])  # one message in two frames
            log.append(await ws.recv())
            await ws.send(b"\x00\xffbinary")
            log.append(await ws.recv())
            pong = await ws.ping()
            log.append(("pong after", round(await pong, 9)))
            await ws.send("close-me")
            with pytest.raises(ConnectionClosedError) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            log.append(("closed", closed.value.rcvd.code, closed.value.rcvd.reason))

        def sync_client() -> str:
            # websockets' threaded client: socket.create_connection with a timeout
            # (a non-blocking connect underneath) and a receiving thread of its own.
            with sync_connect(uri, open_timeout=5) as ws:
                ws.send("from a thread")
                reply = ws.recv()
                assert isinstance(reply, str)
                return reply

        log.append(await asyncio.to_thread(sync_client))
        last = await connect(uri)
        server.close()  # shutting down: the open connection is closed with 1001
        await server.wait_closed()
        with pytest.raises(ConnectionClosedOK) as going_away:
            await last.recv()
        assert going_away.value.rcvd is not None
        log.append(("shutdown", going_away.value.rcvd.code))
    return log


def test_a_websockets_server_and_its_clients_run_in_a_universe() -> None:
    result = simloom.run(exchange, seed=3, boundary=True)
    result.raise_error()
    log = result.value
    assert log[:2] == ["fragmented", b"\x00\xffbinary"]
    assert log[2][0] == "pong after" and 0 < log[2][1] < 0.1  # a round trip, in virtual time
    assert log[3:] == [("closed", 4000, "asked"), "from a thread", ("shutdown", 1001)]


def test_websockets_universes_replay_byte_for_byte() -> None:
    for seed in (0, 7):
        runs = [simloom.run(exchange, seed=seed, boundary=True) for _ in range(2)]
        for run in runs:
            run.raise_error()
        assert runs[0].event_log_bytes == runs[1].event_log_bytes
        assert runs[0].digest == runs[1].digest
    checked = simloom.run(exchange, seed=5, boundary=True, check_determinism=True)
    checked.raise_error()
