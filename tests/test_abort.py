"""``transport.abort()`` closes the connection as a stock transport does on Linux.

A stock selector transport's ``abort()`` drops its buffered bytes and closes its
socket; the kernel then sends a FIN after what it already took, and a reset only when
bytes received were left unread. Each program here runs on the stock loop over real
loopback and in simulated universes, and the peer must see the same thing in both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import simloom

Program = Callable[[], Awaitable[list[Any]]]


class _Watcher(asyncio.Protocol):
    """A client that records what its side of the connection hears."""

    def __init__(self, seen: list[Any], done: asyncio.Future[None]) -> None:
        self.seen = seen
        self.done = done
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.seen and self.seen[-1][0] == "data":
            self.seen[-1] = ("data", self.seen[-1][1] + data)
        else:
            self.seen.append(("data", data))

    def eof_received(self) -> None:
        self.seen.append(("eof",))

    def connection_lost(self, exc: Exception | None) -> None:
        self.seen.append(("lost", None if exc is None else type(exc).__name__))
        if not self.done.done():
            self.done.set_result(None)


async def _exchange(server_protocol: Callable[[], asyncio.Protocol], send: bytes) -> list[Any]:
    loop = asyncio.get_running_loop()
    seen: list[Any] = []
    done: asyncio.Future[None] = loop.create_future()
    server = await loop.create_server(server_protocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_connection(lambda: _Watcher(seen, done), "127.0.0.1", port)
    if send:
        transport.write(send)
    await asyncio.wait_for(done, 5)
    server.close()
    await server.wait_closed()
    return seen


async def abort_after_writing() -> list[Any]:
    """The server writes and aborts at once: the bytes the connection took arrive,
    then the end of the stream (a FIN, not a reset)."""

    class Server(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            transport.write(b"last words")
            transport.abort()

    return await _exchange(Server, b"")


async def abort_after_reading_everything() -> list[Any]:
    """The server reads the client's request, then aborts: nothing was left unread, so
    the client gets the end of the stream."""

    class Server(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(b"got " + data)
            self.transport.abort()

    return await _exchange(Server, b"request")


async def abort_with_bytes_unread() -> list[Any]:
    """The server stops reading, the client's bytes arrive, the server aborts: with
    bytes received and unread, the close is a reset."""

    class Server(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            transport.pause_reading()
            asyncio.get_running_loop().call_later(0.05, transport.abort)

    return await _exchange(Server, b"never read")


PROGRAMS: dict[str, Program] = {
    program.__name__: program
    for program in (abort_after_writing, abort_after_reading_everything, abort_with_bytes_unread)
}

EXPECTED = {
    "abort_after_writing": [("data", b"last words"), ("eof",), ("lost", None)],
    "abort_after_reading_everything": [("data", b"got request"), ("eof",), ("lost", None)],
    "abort_with_bytes_unread": [("lost", "ConnectionResetError")],
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_the_stock_loop_on_linux_sees_what_this_file_expects(name: str) -> None:
    assert asyncio.run(PROGRAMS[name]()) == EXPECTED[name]


@pytest.mark.parametrize("scheduler", ["fifo", "faithful", "random"])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_a_universe_sees_what_the_stock_loop_sees(name: str, scheduler: str) -> None:
    for seed in range(5):
        result = simloom.run(PROGRAMS[name], seed=seed, scheduler=scheduler)
        result.raise_error()
        assert result.value == EXPECTED[name], (seed, result.value)
