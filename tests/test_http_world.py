"""Unmodified HTTP stacks on the simulated network: an aiohttp server, httpx and
aiohttp clients, TLS with a certificate made here, and the failures a real network
gives them.

Nothing here patches aiohttp, httpx or anyio: the server is ``web.AppRunner`` +
``web.TCPSite`` spawned on the host ``api``, the clients resolve ``api`` through the
simulated DNS, and every connection crosses the simulated network with 20% segment
loss and 1-30 ms latency. Each exchange checks every response, and each universe is
run again from its tape and from its seed to the same digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import select
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import httpx
import pytest
import simloom
import trustme
from aiohttp import web
from simloom import RunResult
from simloom import net as simloom_net
from simloom.world import World

API_PORT = 8080
API_TLS_PORT = 8443
#: A streamed response of a few hundred KB, sent in 16 KiB writes.
BIG_BODY = hashlib.shake_256(b"simloom").digest(300_000)
BIG_CHUNK = 16_384
SEEDS = range(30)
TLS_SEEDS = range(10)
#: The httpx clients speak plain HTTP; one SSL context for all of them spares each
#: client loading the CA bundle (~25 ms, most of a universe).
SHARED_CLIENT_SSL_CONTEXT = ssl.create_default_context()


# ---------------------------------------------------------------- the server


def api_app() -> web.Application:
    """A small JSON API: a greeting, an echo of a JSON body, a large streamed body,
    the client address the server sees (to tell keep-alive from new connections)
    and the TLS version it speaks."""

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello {request.match_info['name']}")

    async def echo(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"echo": body, "items": len(body["items"])})

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = len(BIG_BODY)
        await response.prepare(request)
        for start in range(0, len(BIG_BODY), BIG_CHUNK):
            await response.write(BIG_BODY[start : start + BIG_CHUNK])
        await response.write_eof()
        return response

    async def peer(request: web.Request) -> web.Response:
        host, port = request.transport.get_extra_info("peername")[:2]  # type: ignore[union-attr]
        return web.Response(text=f"{host}:{port}")

    async def tls(request: web.Request) -> web.Response:
        tls_object = request.transport.get_extra_info("ssl_object")  # type: ignore[union-attr]
        return web.Response(text="plain" if tls_object is None else tls_object.version())

    app = web.Application()
    app.router.add_get("/hello/{name}", hello)
    app.router.add_post("/echo", echo)
    app.router.add_get("/big", big)
    app.router.add_get("/peer", peer)
    app.router.add_get("/tls", tls)
    return app


async def start_api(
    world: World, *, port: int = API_PORT, ssl_context: ssl.SSLContext | None = None
) -> None:
    """Spawn the aiohttp server on the host ``api`` and wait until it listens."""
    listening = asyncio.Event()

    async def serve() -> None:
        runner = web.AppRunner(api_app())
        await runner.setup()
        try:
            await web.TCPSite(runner, "0.0.0.0", port, ssl_context=ssl_context).start()
            listening.set()
            await asyncio.Future()  # serve until the universe ends
        finally:
            await runner.cleanup()

    world.host("api").spawn(serve)
    await listening.wait()


def add_loss_and_latency(world: World) -> None:
    world.net.set_latency(0.001, 0.030)
    world.net.set_loss(20)


def lost_segments(result: RunResult) -> int:
    """Segments the network lost (and retransmitted) in a universe."""
    return sum(
        1
        for event in result.event_log
        if event.kind == "decision" and event.label == "net.loss" and event.value
    )


def run_and_replay(main: Callable[[World], Awaitable[Any]], seed: int, scheduler: str) -> RunResult:
    """Run a universe, then again from its tape and from its seed: all three must be
    the same universe (byte-identical event logs)."""
    result = simloom.run(main, seed=seed, scheduler=scheduler)
    result.raise_error()
    replayed = simloom.replay(main, result.tape)
    replayed.raise_error()
    assert replayed.event_log_bytes == result.event_log_bytes
    assert replayed.digest == result.digest
    rerun = simloom.run(main, seed=seed, scheduler=scheduler)
    assert rerun.digest == result.digest
    return result


# ------------------------------------------------------ aiohttp server, httpx


async def httpx_exchange(world: World) -> None:
    add_loss_and_latency(world)
    await start_api(world)
    async with httpx.AsyncClient(
        base_url=f"http://api:{API_PORT}", verify=SHARED_CLIENT_SSL_CONTEXT
    ) as client:
        hello = await client.get("/hello/simloom")
        assert (hello.status_code, hello.text) == (200, "hello simloom")

        items = [{"id": i, "name": f"item-{i}"} for i in range(50)]
        echo = await client.post("/echo", json={"items": items})
        assert echo.status_code == 200
        assert echo.json() == {"echo": {"items": items}, "items": 50}

        chunks = []
        async with client.stream("GET", "/big") as streamed:
            assert streamed.headers["content-length"] == str(len(BIG_BODY))
            async for chunk in streamed.aiter_bytes():
                chunks.append(chunk)
        assert b"".join(chunks) == BIG_BODY
        assert len(chunks) > 1, "the body arrived in pieces, as it was written"

        whole = await client.get("/big")
        assert whole.content == BIG_BODY

        peers = {(await client.get("/peer")).text for _ in range(3)}
        assert len(peers) == 1, f"sequential requests reuse one keep-alive connection: {peers}"
        assert peers.pop().startswith(world.main.address + ":")

        names = [f"n{i}" for i in range(8)]
        responses = await asyncio.gather(*(client.get(f"/hello/{name}") for name in names))
        assert [r.text for r in responses] == [f"hello {name}" for name in names]


@pytest.mark.parametrize("scheduler", ["random", "pct"])
def test_httpx_gets_every_aiohttp_response_right_through_loss_and_latency(scheduler: str) -> None:
    lost = 0
    for seed in SEEDS:
        result = run_and_replay(httpx_exchange, seed, scheduler)
        assert result.virtual_time > 0.05, "latency was applied"
        lost += lost_segments(result)
    assert lost > len(SEEDS), f"20% loss lost only {lost} segments in {len(SEEDS)} universes"


def test_pct_lets_anyio_deliver_a_cancellation_it_spins_on() -> None:
    """anyio's connect_tcp cancels its happy-eyeballs task group once connected, and
    delivers the cancellation by re-scheduling a callback until the host task has
    run. Strict PCT priorities used to starve that task: a livelock in 13 of 30
    seeds under "pct", 26 of 30 under "pct:d=1" (no change points at all). An owner
    that keeps winning while another waits is now demoted."""
    for seed in range(10):
        result = simloom.run(httpx_exchange, seed=seed, scheduler="pct:d=1")
        result.raise_error()


def test_a_connected_sockets_descriptor_polls_readable_only_when_input_waits() -> None:
    """httpcore polls a pooled connection's socket before reusing it (readable while
    idle means the server hung up). The simulated socket's descriptor answers as a
    real one under a selector transport would: not readable while idle or once the
    transport has handed the bytes on, readable while arrived bytes wait (reading
    paused) and for good after end of file. (Its descriptor used to be -1, which
    httpcore takes for a closed socket: httpx never reused a connection.)"""

    async def main(world: World) -> None:
        accepted: asyncio.Future[asyncio.StreamWriter] = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.set_result(writer)

        await world.host("db").run(asyncio.start_server(handle, "0.0.0.0", 7000))
        reader, writer = await asyncio.open_connection("db", 7000)
        server_side = await accepted
        sock = writer.get_extra_info("socket")

        def readable() -> bool:
            return bool(select.select([sock], [], [], 0)[0])

        assert not readable()
        writer.transport.pause_reading()
        server_side.write(b"ping")
        await world.sleep(0.1)
        assert readable(), "bytes have arrived and wait for the paused transport"
        writer.transport.resume_reading()
        assert await reader.readexactly(4) == b"ping"
        assert not readable(), "the transport handed the bytes on"
        server_side.close()
        assert await reader.read() == b""
        assert readable(), "end of file stays readable"
        writer.close()

    simloom.run(main, seed=8).raise_error()


# ------------------------------------------------------------- certificates


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    # RSA: every handshake then has the same byte counts (an ECDSA signature's length
    # varies from one handshake to the next), should the network model ever care.
    return trustme.CA(key_type=trustme.KeyType.RSA)


@pytest.fixture(scope="module")
def server_context(certificate_authority: trustme.CA) -> ssl.SSLContext:
    """The server's context, with a certificate for the names ``api`` and ``db``."""
    certificate = certificate_authority.issue_cert("api", "db", key_type=trustme.KeyType.RSA)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_context(certificate_authority: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts the test's CA (and nothing else)."""
    context = ssl.create_default_context()
    certificate_authority.configure_trust(context)
    return context


@pytest.fixture(scope="module")
def untrusting_context() -> ssl.SSLContext:
    """A verifying client context that does not know the test's CA."""
    return ssl.create_default_context()


# ------------------------------------------------- aiohttp over HTTPS (TLS)


def test_aiohttp_client_over_https_through_loss_and_latency(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    async def main(world: World) -> None:
        add_loss_and_latency(world)
        await start_api(world, port=API_TLS_PORT, ssl_context=server_context)
        base = f"https://api:{API_TLS_PORT}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/hello/tls", ssl=client_context) as hello:
                assert (hello.status, await hello.text()) == (200, "hello tls")
            items = list(range(100))
            async with session.post(
                f"{base}/echo", json={"items": items}, ssl=client_context
            ) as echo:
                assert await echo.json() == {"echo": {"items": items}, "items": 100}
            async with session.get(f"{base}/tls", ssl=client_context) as tls:
                assert await tls.text() == "TLSv1.3"
            async with session.get(f"{base}/big", ssl=client_context) as big:
                assert await big.read() == BIG_BODY
            peers = set()
            for _ in range(3):
                async with session.get(f"{base}/peer", ssl=client_context) as seen:
                    peers.add(await seen.text())
            assert len(peers) == 1, f"keep-alive over TLS: {peers}"

    lost = 0
    for seed in TLS_SEEDS:
        lost += lost_segments(run_and_replay(main, seed, "random"))
    assert lost > 0


def test_aiohttp_rejects_a_certificate_for_another_name_or_from_an_unknown_ca(
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
    untrusting_context: ssl.SSLContext,
) -> None:
    async def main(world: World) -> list[str]:
        await start_api(world, port=API_TLS_PORT, ssl_context=server_context)
        world.register_name("www", "api")  # same server, a name its certificate lacks
        reasons = []
        async with aiohttp.ClientSession() as session:
            for url, context in [
                (f"https://www:{API_TLS_PORT}/hello/x", client_context),
                (f"https://api:{API_TLS_PORT}/hello/x", untrusting_context),
            ]:
                with pytest.raises(aiohttp.ClientConnectorCertificateError) as caught:
                    await session.get(url, ssl=context)
                assert isinstance(caught.value.certificate_error, ssl.SSLCertVerificationError)
                reasons.append(caught.value.certificate_error.verify_message)
            # The server is still fine for a client that checks the right name.
            async with session.get(f"https://api:{API_TLS_PORT}/hello/x", ssl=client_context) as ok:
                assert await ok.text() == "hello x"
        return reasons

    result = simloom.run(main, seed=1)
    result.raise_error()
    assert result.value == [
        "Hostname mismatch, certificate is not valid for 'www'.",
        "unable to get local issuer certificate",
    ]


# ------------------------------------------------------ TLS on asyncio streams


def test_failed_tls_handshake_raises_the_certificate_error_and_closes_the_connection(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    """asyncio's TLS layer aborts the transport with ``_force_close(exc)`` when the
    handshake fails; the simulated transport must have it (it used to fail the
    universe with AttributeError instead of raising the certificate error)."""

    async def main(world: World) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            raise AssertionError("no handshake succeeds, so no connection is handled")

        async def listen() -> asyncio.Server:
            return await asyncio.start_server(handle, "0.0.0.0", 443, ssl=server_context)

        server = await world.host("db").run(listen())
        loop = asyncio.get_running_loop()
        with pytest.raises(ssl.SSLCertVerificationError) as caught:
            await loop.create_connection(
                asyncio.Protocol, "db", 443, ssl=client_context, server_hostname="mail"
            )
        # wait_closed() returns only once the server's side of every connection is
        # gone: the client's abort reached it.
        server.close()
        await asyncio.wait_for(server.wait_closed(), 1)
        return str(caught.value.verify_message)

    result = simloom.run(main, seed=2)
    result.raise_error()
    assert result.value == "Hostname mismatch, certificate is not valid for 'mail'."


def test_open_connection_and_start_server_speak_tls(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    async def main(world: World) -> None:
        add_loss_and_latency(world)
        listening = asyncio.Event()

        async def shout(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while line := await reader.readline():
                writer.write(line.upper())
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        async def serve() -> None:
            server = await asyncio.start_server(shout, "0.0.0.0", 4433, ssl=server_context)
            listening.set()
            async with server:
                await server.serve_forever()

        world.host("db").spawn(serve)
        await listening.wait()
        reader, writer = await asyncio.open_connection("db", 4433, ssl=client_context)
        assert writer.get_extra_info("peercert")["subjectAltName"] == (
            ("DNS", "api"),
            ("DNS", "db"),
        )
        for word in (b"alpha", b"beta", b"x" * 50_000):
            writer.write(word + b"\n")
            await writer.drain()
            assert await reader.readline() == word.upper() + b"\n"
        writer.close()
        await writer.wait_closed()

    for seed in range(5):
        run_and_replay(main, seed, "random")


def test_starttls_upgrades_a_plain_stream_in_place(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    """The SMTP/IMAP pattern: talk in clear, agree to upgrade, then
    ``writer.start_tls()`` on both sides (``loop.start_tls`` underneath)."""

    async def main(world: World) -> tuple[str, bytes]:
        add_loss_and_latency(world)
        listening = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert await reader.readline() == b"STARTTLS\r\n"
            assert writer.get_extra_info("ssl_object") is None
            writer.write(b"220 go ahead\r\n")
            await writer.drain()
            await writer.start_tls(server_context)
            secret = await reader.readline()
            writer.write(b"250 got " + secret)
            await writer.drain()
            writer.close()

        async def serve() -> None:
            server = await asyncio.start_server(handle, "0.0.0.0", 25)
            listening.set()
            async with server:
                await server.serve_forever()

        world.host("db").spawn(serve)
        await listening.wait()
        reader, writer = await asyncio.open_connection("db", 25)
        writer.write(b"STARTTLS\r\n")
        await writer.drain()
        assert await reader.readline() == b"220 go ahead\r\n"
        await writer.start_tls(client_context, server_hostname="db")
        tls = writer.get_extra_info("ssl_object")
        writer.write(b"password\r\n")
        await writer.drain()
        reply = await reader.read()
        writer.close()
        return tls.version(), reply

    for seed in range(5):
        result = run_and_replay(main, seed, "random")
        assert result.value == ("TLSv1.3", b"250 got password\r\n")


def test_starttls_with_an_untrusted_certificate_fails_on_both_sides(
    server_context: ssl.SSLContext, untrusting_context: ssl.SSLContext
) -> None:
    """The client rejects the certificate and aborts; the server's ``start_tls``
    then fails with ``ConnectionResetError``, as it does on the stock loop over
    real TCP."""

    async def main(world: World) -> str:
        server_saw: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await writer.start_tls(server_context)
            except (ssl.SSLError, ConnectionError) as error:
                server_saw.set_result(error)

        await world.host("db").run(asyncio.start_server(handle, "0.0.0.0", 25))
        _, writer = await asyncio.open_connection("db", 25)
        with pytest.raises(ssl.SSLCertVerificationError) as caught:
            await writer.start_tls(untrusting_context, server_hostname="db")
        assert caught.value.verify_message == "unable to get local issuer certificate"
        return type(await asyncio.wait_for(server_saw, 5)).__name__

    result = simloom.run(main, seed=3)
    result.raise_error()
    assert result.value == "ConnectionResetError"


# ------------------------------------------- aiohttp's happy-eyeballs connect


@pytest.fixture
def sock_connects(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[socket.socket]]:
    """Every socket ``loop.sock_connect`` connects on the simulated network."""
    connected: list[socket.socket] = []
    real_sock_connect = simloom_net.sock_connect

    async def recording(world: World, sock: socket.socket, address: Any) -> None:
        connected.append(sock)
        await real_sock_connect(world, sock, address)

    monkeypatch.setattr(simloom_net, "sock_connect", recording)
    yield connected


def test_aiohttp_connects_by_sock_connect_on_a_real_socket_then_create_connection_sock(
    sock_connects: list[socket.socket],
) -> None:
    """aiohttp goes through aiohappyeyeballs: a real, unconnected ``socket.socket``,
    ``loop.sock_connect`` on it, then ``loop.create_connection(sock=...)``. The real
    socket only names the connection; it is closed once the transport owns it (it
    used to stay open until the garbage collector found it: a ResourceWarning and a
    file descriptor per connection)."""

    async def main(world: World) -> list[str]:
        add_loss_and_latency(world)
        await start_api(world)
        async with aiohttp.ClientSession() as session:
            texts = []
            for name in ("a", "b"):
                async with session.get(f"http://api:{API_PORT}/hello/{name}") as response:
                    texts.append(await response.text())
            return texts

    result = simloom.run(main, seed=4)
    result.raise_error()
    assert result.value == ["hello a", "hello b"]
    assert len(sock_connects) == 1, "one connection, reused for the second request"
    (sock,) = sock_connects
    assert type(sock) is socket.socket
    assert sock.type == socket.SOCK_STREAM
    assert sock.fileno() == -1, "the real socket was closed when the transport took over"


# ------------------------------------------------------------ failure modes


def cause_chain(error: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def test_a_name_nobody_registered_fails_to_resolve_like_real_dns() -> None:
    async def main(world: World) -> None:
        with pytest.raises(socket.gaierror) as resolving:
            await asyncio.get_running_loop().getaddrinfo("nowhere", 80)
        assert resolving.value.errno == socket.EAI_NONAME
        assert str(resolving.value) == "[Errno -2] Name or service not known: 'nowhere'"

        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectorError) as aiohttp_error:
                await session.get("http://nowhere:8080/")
        assert isinstance(aiohttp_error.value.os_error, socket.gaierror)

        async with httpx.AsyncClient(verify=SHARED_CLIENT_SSL_CONTEXT) as client:
            with pytest.raises(httpx.ConnectError) as httpx_error:
                await client.get("http://nowhere:8080/")
        assert any(isinstance(e, socket.gaierror) for e in cause_chain(httpx_error.value))

    simloom.run(main, seed=5).raise_error()


def test_a_host_with_nothing_listening_refuses_the_connection() -> None:
    async def main(world: World) -> None:
        add_loss_and_latency(world)
        world.host("api")  # up, but nothing listens on its port 8080
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectorError) as aiohttp_error:
                await session.get(f"http://api:{API_PORT}/")
        assert isinstance(aiohttp_error.value.os_error, ConnectionRefusedError)

        async with httpx.AsyncClient(verify=SHARED_CLIENT_SSL_CONTEXT) as client:
            with pytest.raises(httpx.ConnectError) as httpx_error:
                await client.get(f"http://api:{API_PORT}/")
        assert any(isinstance(e, ConnectionRefusedError) for e in cause_chain(httpx_error.value))

    simloom.run(main, seed=6).raise_error()


def test_a_partition_turns_into_the_clients_timeout_in_virtual_time() -> None:
    """Across a partition a connect hangs and an in-flight response is held: the
    clients' own 30 s timeouts fire, after 30 virtual seconds and ~no wall time."""

    async def main(world: World) -> dict[str, float]:
        add_loss_and_latency(world)
        await start_api(world)
        loop = asyncio.get_running_loop()
        waited: dict[str, float] = {}
        async with httpx.AsyncClient(
            base_url=f"http://api:{API_PORT}", timeout=30, verify=SHARED_CLIENT_SSL_CONTEXT
        ) as client:
            assert (await client.get("/hello/before")).text == "hello before"
            world.net.partition("main", "api")
            started = loop.time()
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/hello/during")  # on the open keep-alive connection
            waited["httpx read"] = loop.time() - started

        started = loop.time()
        async with httpx.AsyncClient(timeout=30, verify=SHARED_CLIENT_SSL_CONTEXT) as client:
            with pytest.raises(httpx.ConnectTimeout):
                await client.get(f"http://api:{API_PORT}/hello/new")
        waited["httpx connect"] = loop.time() - started

        started = loop.time()
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            with pytest.raises(asyncio.TimeoutError):
                await session.get(f"http://api:{API_PORT}/hello/new")
        waited["aiohttp total"] = loop.time() - started

        world.net.heal()
        async with httpx.AsyncClient(
            base_url=f"http://api:{API_PORT}", verify=SHARED_CLIENT_SSL_CONTEXT
        ) as client:
            assert (await client.get("/hello/after")).text == "hello after"
        return waited

    wall_started = time.perf_counter()
    # The faithful scheduler: anyio's cancel scopes keep their child scopes in a set
    # hashed by address, so which task a timeout cancels first varies with the
    # process's heap; every order a real loop can produce must pass, and a random
    # walk can also run aiohttp's request handler after its connection_lost (it then
    # fails on the handler's cleared request factory), which no real loop does.
    result = simloom.run(main, seed=7, scheduler="faithful")
    wall = time.perf_counter() - wall_started
    result.raise_error()
    waited = result.value
    assert waited["httpx read"] == pytest.approx(30, abs=1e-6)
    assert waited["httpx connect"] == pytest.approx(30, abs=1e-6)
    # aiohttp rounds deadlines of more than 5 s up to a whole second of loop.time().
    assert 30 <= waited["aiohttp total"] <= 31
    assert result.virtual_time > 90
    assert wall < 2, f"90 virtual seconds of timeouts took {wall:.1f} s of wall time"
