"""Network realism on simulated streams: write-side flow control (a connection's
window, the transport's buffer and asyncio's water marks, so ``drain()`` waits and
memory is bounded by buffers, not by traffic) and tape-chosen segmentation (a write
may arrive in several reads; canonical: one)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import simloom
from hypothesis import given, settings
from simloom import RunResult, SimloomUsageError, World

KIB = 1024


def ok(main: Any, seed: int = 0, **kwargs: Any) -> Any:
    result = simloom.run(main, seed=seed, **kwargs)
    result.raise_error()
    return result.value


def deviations(result: RunResult) -> list[tuple[str, int]]:
    return [
        (e.label or "", e.value or 0) for e in result.event_log if e.kind == "decision" and e.value
    ]


async def start_sink(
    world: World, port: int, started: asyncio.Event, *, read: asyncio.Event
) -> Any:
    """A server that takes one connection and reads nothing until ``read`` is set,
    then reads everything; returns (its server, the future of the bytes it read)."""
    received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read.wait()
        received.set_result(await reader.read())
        writer.close()

    server = await asyncio.start_server(handle, None, port)
    started.set()
    return server, received


# ------------------------------------------------------------- flow control


def test_drain_waits_until_the_peer_reads() -> None:
    async def main(world: World) -> tuple[int, int, bool, int]:
        read = asyncio.Event()
        started = asyncio.Event()
        sink: list[Any] = []

        async def serve() -> None:
            sink.append(await start_sink(world, 7000, started, read=read))
            await asyncio.Event().wait()

        world.host("sink").spawn(serve)
        await world.sleep(0.01)
        _, writer = await asyncio.open_connection("sink", 7000)
        chunk = b"x" * (16 * KIB)
        written = 0
        blocked = False
        while not blocked:
            writer.write(chunk)
            written += len(chunk)
            try:
                await asyncio.wait_for(writer.drain(), 1.0)
            except TimeoutError:
                blocked = True
        buffered = writer.transport.get_write_buffer_size()
        read.set()  # the peer starts reading: drain() returns
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        data = await sink[0][1]
        return written, buffered, data == b"x" * written, len(data)

    written, buffered, intact, _ = ok(main)
    # The peer's StreamReader takes up to 128 KiB (twice its limit, plus one read)
    # before it pauses reading, the window (256 KiB) fills, then the buffer grows
    # past the 64 KiB high-water mark: bounded, whatever the traffic.
    assert (256 + 128 + 64) * KIB < written <= (256 + 144 + 64 + 16) * KIB
    assert 64 * KIB < buffered <= 80 * KIB
    assert intact


def test_a_paused_reader_stops_its_writer_and_resuming_lets_it_finish() -> None:
    """``pause_reading()`` is honoured: the reader's window stays full, so the
    writer's protocol is paused at the high-water mark, and resumed below the low."""
    calls: list[str] = []

    class Writer(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def pause_writing(self) -> None:
            calls.append(f"pause at {self.transport.get_write_buffer_size()}")

        def resume_writing(self) -> None:
            calls.append(f"resume at {self.transport.get_write_buffer_size()}")

    class Reader(asyncio.Protocol):
        def __init__(self) -> None:
            self.got = 0

        def connection_made(self, transport: Any) -> None:
            transport.pause_reading()
            asyncio.get_running_loop().call_later(1, transport.resume_reading)

        def data_received(self, data: bytes) -> None:
            self.got += len(data)

    async def main(world: World) -> int:
        reader = Reader()
        loop = asyncio.get_running_loop()
        await loop.create_server(lambda: reader, None, 7000)
        transport, _ = await loop.create_connection(Writer, "127.0.0.1", 7000)
        transport.set_write_buffer_limits(high=8 * KIB)
        assert transport.get_write_buffer_limits() == (2 * KIB, 8 * KIB)
        world.net.set_stream_window(4 * KIB)
        for _ in range(4):
            transport.write(b"y" * (4 * KIB))
        await asyncio.sleep(0.5)
        assert reader.got == 0 and calls == ["pause at 12288"]
        await asyncio.sleep(1)
        transport.close()
        await asyncio.sleep(0.1)
        return reader.got

    assert ok(main) == 16 * KIB
    assert calls == ["pause at 12288", "resume at 0"]


def test_write_buffer_limits_default_and_validate_as_asyncio_does() -> None:
    async def main(world: World) -> list[Any]:
        loop = asyncio.get_running_loop()
        await loop.create_server(asyncio.Protocol, None, 7000)
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", 7000)
        seen: list[Any] = [transport.get_write_buffer_limits()]
        transport.set_write_buffer_limits(high=100)
        seen.append(transport.get_write_buffer_limits())
        transport.set_write_buffer_limits(low=10)
        seen.append(transport.get_write_buffer_limits())
        with pytest.raises(ValueError, match="high"):
            transport.set_write_buffer_limits(high=1, low=2)
        transport.close()
        return seen

    assert ok(main) == [(16 * KIB, 64 * KIB), (25, 100), (10, 40)]


def test_close_and_write_eof_send_the_buffered_bytes_first() -> None:
    async def main(world: World) -> int:
        world.net.set_stream_window(1 * KIB)
        done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            done.set_result(await reader.read())

        await asyncio.start_server(handle, None, 7000)
        _, writer = await asyncio.open_connection("127.0.0.1", 7000)
        writer.write(b"z" * (100 * KIB))
        assert writer.transport.get_write_buffer_size() == 99 * KIB
        writer.write_eof()
        writer.close()
        return len(await done)

    assert ok(main) == 100 * KIB


def test_the_stream_window_is_validated() -> None:
    async def main(world: World) -> None:
        world.net.set_stream_window(0)

    assert isinstance(simloom.run(main).error, SimloomUsageError)


# ------------------------------------------------------------- segmentation


async def naive_request(world: World, segmentation: int = 50) -> bytes:
    """A server that assumes one read is one message, and a client that sends one."""
    message = b"GET /index.html HTTP/1.0\r\n\r\n"
    answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answer.set_result(await reader.read(4096))
        writer.close()

    if segmentation:
        world.net.set_segmentation(segmentation)
    await asyncio.start_server(handle, None, 8080)
    _, writer = await asyncio.open_connection("127.0.0.1", 8080)
    writer.write(message)
    got = await answer
    assert got == message, f"got {got!r} in the first read"
    writer.close()
    return got


def test_without_segmentation_a_write_is_one_read_and_asks_nothing() -> None:
    async def main(world: World) -> bytes:
        return await naive_request(world, segmentation=0)

    for seed in range(20):
        result = simloom.run(main, seed=seed)
        result.raise_error()
        assert not [e for e in result.event_log if e.label == "net.segment"]


def test_a_write_can_arrive_in_several_reads_and_shrinks_to_one_cut() -> None:
    seen: list[tuple[RunResult | None, BaseException]] = []

    @settings(database=None, max_examples=300, derandomize=True)
    @given(simloom.universes())
    def test_request(universe: Any) -> None:
        try:
            universe.run(naive_request)
        except AssertionError as error:
            seen.append((universe.result, error))
            raise

    with pytest.raises(AssertionError, match="in the first read") as info:
        test_request()
    minimal = next(result for result, error in seen if error is info.value)
    assert minimal is not None
    assert deviations(minimal) == [("net.segment", 1)]


def test_readexactly_reassembles_any_segmentation() -> None:
    async def main(world: World) -> list[bytes]:
        world.net.set_segmentation(80)
        world.net.set_latency(0.001, 0.005)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while header := await reader.readexactly(4):
                body = await reader.readexactly(int.from_bytes(header, "big"))
                writer.write(header + body)
                if body == b"end":
                    break
            writer.close()

        await asyncio.start_server(handle, None, 9000)
        reader, writer = await asyncio.open_connection("127.0.0.1", 9000)
        bodies = [b"a" * n for n in (1, 7, 300, 5000)] + [b"end"]
        for body in bodies:
            writer.write(len(body).to_bytes(4, "big") + body)
        echoed = []
        for _ in bodies:
            header = await reader.readexactly(4)
            echoed.append(await reader.readexactly(int.from_bytes(header, "big")))
        writer.close()
        return echoed

    cut = 0
    for seed in range(30):
        result = simloom.run(main, seed=seed)
        result.raise_error()
        assert result.value == [b"a" * n for n in (1, 7, 300, 5000)] + [b"end"]
        cut += sum(1 for label, _ in deviations(result) if label == "net.segment")
    assert cut > 30, "the writes really were cut"


def test_segmentation_is_validated() -> None:
    async def main(world: World) -> None:
        world.net.set_segmentation(101)

    assert isinstance(simloom.run(main).error, SimloomUsageError)


def test_aiohttp_client_and_server_get_every_exchange_right_under_segmentation() -> None:
    import aiohttp
    from aiohttp import web

    body = bytes(range(256)) * 400

    async def main(world: World) -> int:
        world.net.set_segmentation(30)
        world.net.set_latency(0.0005, 0.003)
        listening = asyncio.Event()

        async def echo(request: web.Request) -> web.Response:
            return web.Response(body=await request.read())

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/echo", echo)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "0.0.0.0", 8080).start()
            listening.set()
            await asyncio.Future()

        world.host("api").spawn(serve)
        await listening.wait()
        async with aiohttp.ClientSession() as session:
            for i in range(3):
                async with session.post("http://api:8080/echo", data=body[i:]) as response:
                    assert response.status == 200
                    assert await response.read() == body[i:]
        return 3

    cuts = 0
    for seed in range(8):
        result = simloom.run(main, seed=seed)
        result.raise_error()
        replayed = simloom.replay(main, result.tape)
        replayed.raise_error()
        assert replayed.event_log_bytes == result.event_log_bytes
        cuts += sum(1 for label, _ in deviations(result) if label == "net.segment")
    assert cuts > 8
