"""Real ``socket.socket`` objects inside a universe with a world are simulated
sockets (simloom._sim_socket): bind/listen/accept/send/recv, the loop's sock_*
methods, ``create_server(sock=)``, ``connect_accepted_socket``, and the libraries
whose test servers are built on them (aiohttp's TestServer, httpx)."""

from __future__ import annotations

import asyncio
import errno
import gc
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import simloom
from simloom import EscapedSimulationError


def in_universe(main: Callable[[], Awaitable[Any]], seed: int = 0, **options: Any) -> Any:
    result = simloom.run(main, seed=seed, boundary=True, **options)
    result.raise_error()
    return result.value


def listening_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen()
    sock.setblocking(False)
    return sock


async def fetch(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    data = await reader.read(100)
    writer.close()
    return data


def test_a_socket_bound_in_a_universe_gets_a_simulated_address() -> None:
    async def main() -> tuple[Any, int]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            # The simulated network's first ephemeral port, the same in every run.
            return sock.getsockname(), sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)

    first = in_universe(main)
    assert first == (("127.0.0.1", 49152), socket.SOCK_STREAM)
    assert in_universe(main) == first


def test_sock_accept_recv_and_sendall_serve_a_simulated_client() -> None:
    async def main() -> tuple[bytes, bytes, Any]:
        loop = asyncio.get_running_loop()
        with listening_socket() as server:
            port = server.getsockname()[1]
            client = asyncio.ensure_future(fetch(port, b"ping"))
            conn, peer = await loop.sock_accept(server)
            with conn:
                conn.setblocking(False)
                assert conn.getsockname() == ("127.0.0.1", port)
                request = await loop.sock_recv(conn, 100)
                await loop.sock_sendall(conn, request.upper())
            return request, await client, peer

    request, reply, peer = in_universe(main)
    assert (request, reply) == (b"ping", b"PING")
    assert peer[0] == "127.0.0.1" and peer[1] >= 49152


def test_non_blocking_socket_methods_on_an_accepted_connection() -> None:
    async def main() -> tuple[bytes, bytes]:
        loop = asyncio.get_running_loop()
        with listening_socket() as server:
            with pytest.raises(BlockingIOError):
                server.accept()
            client = asyncio.ensure_future(fetch(server.getsockname()[1], b"abc"))
            conn, _ = await loop.sock_accept(server)
            conn.setblocking(False)
            first = await loop.sock_recv(conn, 1)
            rest = conn.recv(10)  # already arrived: a non-blocking recv returns it
            with pytest.raises(BlockingIOError):
                conn.recv(10)
            conn.sendall(b"xyz")
            conn.shutdown(socket.SHUT_WR)
            reply = await client
            conn.close()
            return first + rest, reply

    assert in_universe(main) == (b"abc", b"xyz")


def test_create_server_takes_over_a_bound_socket() -> None:
    async def main() -> bytes:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write((await reader.read(100)).upper())
            await writer.drain()
            writer.close()

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = await asyncio.start_server(echo, sock=sock)
        async with server:
            assert server.sockets[0].getsockname() == ("127.0.0.1", port)
            return await fetch(port, b"hello")

    assert in_universe(main) == b"HELLO"


def test_connect_accepted_socket_hands_early_bytes_to_the_protocol() -> None:
    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        with listening_socket() as server:
            _reader, writer = await asyncio.open_connection("127.0.0.1", server.getsockname()[1])
            writer.write(b"early")
            conn, _ = await loop.sock_accept(server)
            await asyncio.sleep(0.1)  # the bytes arrive before any protocol exists
            stream_reader = asyncio.StreamReader()
            transport, _ = await loop.connect_accepted_socket(
                lambda: asyncio.StreamReaderProtocol(stream_reader), conn
            )
            data = await stream_reader.readexactly(5)
            transport.close()
            writer.close()
            return data

    assert in_universe(main) == b"early"


def test_create_connection_takes_a_socket_connected_by_sock_connect() -> None:
    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        with listening_socket() as server:
            sock = socket.socket()
            sock.setblocking(False)
            await loop.sock_connect(sock, server.getsockname())
            conn, _ = await loop.sock_accept(server)
            reader, writer = await asyncio.open_connection(sock=sock)
            conn.setblocking(False)
            await loop.sock_sendall(conn, b"over")
            data = await reader.readexactly(4)
            writer.close()
            conn.close()
            return data

    assert in_universe(main) == b"over"


def test_aiohttp_test_server_and_client() -> None:
    aiohttp_web = pytest.importorskip("aiohttp.web")
    test_utils = pytest.importorskip("aiohttp.test_utils")

    async def hello(request: Any) -> Any:
        return aiohttp_web.Response(text="hello " + request.query["name"])

    async def main() -> tuple[str, int]:
        app = aiohttp_web.Application()
        app.router.add_get("/", hello)
        async with test_utils.TestClient(test_utils.TestServer(app)) as client:
            response = await client.get("/", params={"name": "world"})
            return await response.text(), client.port

    text, port = in_universe(main)
    assert text == "hello world"
    assert port >= 49152  # a port of the simulated network


def test_httpx_against_a_socket_bound_server() -> None:
    httpx = pytest.importorskip("httpx")
    aiohttp_web = pytest.importorskip("aiohttp.web")

    async def hello(request: Any) -> Any:
        return aiohttp_web.Response(text="from a socket")

    async def main() -> str:
        app = aiohttp_web.Application()
        app.router.add_get("/", hello)
        runner = aiohttp_web.AppRunner(app)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        await aiohttp_web.SockSite(runner, sock).start()
        try:
            async with httpx.AsyncClient() as client:
                response = await client.get(f"http://127.0.0.1:{port}/")
                return str(response.text)
        finally:
            await runner.cleanup()

    assert in_universe(main) == "from a socket"


def test_the_same_seed_gives_the_same_event_log_with_simulated_sockets() -> None:
    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        with listening_socket() as server:
            clients = [
                asyncio.ensure_future(fetch(server.getsockname()[1], b"%d" % n)) for n in range(3)
            ]
            for _ in clients:
                conn, _ = await loop.sock_accept(server)
                conn.setblocking(False)
                await loop.sock_sendall(conn, await loop.sock_recv(conn, 10))
                conn.close()
            return b"".join(await asyncio.gather(*clients))

    runs = [simloom.run(main, seed=7, boundary=True) for _ in range(2)]
    assert runs[0].value == b"012"
    assert runs[0].digest == runs[1].digest
    assert runs[0].event_log_bytes == runs[1].event_log_bytes


def test_a_blocking_recv_that_would_wait_is_a_named_escape() -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        with listening_socket() as server:
            _reader, writer = await asyncio.open_connection("127.0.0.1", server.getsockname()[1])
            conn, _ = await loop.sock_accept(server)
            conn.setblocking(True)
            try:
                conn.recv(10)
            except EscapedSimulationError as escape:
                return str(escape)
            finally:
                writer.close()
                conn.close()
        return "no escape"

    message = in_universe(main)
    assert message.startswith("socket.socket.recv(): on a blocking socket it would wait")


def test_connecting_to_a_real_server_outside_the_universe_names_it() -> None:
    real = socket.socket()
    real.bind(("127.0.0.1", 0))
    real.listen()
    port = real.getsockname()[1]

    async def main() -> str:
        try:
            await asyncio.open_connection("127.0.0.1", port)
        except EscapedSimulationError as escape:
            return str(escape)
        return "no escape"

    with real:
        message = in_universe(main)
    assert "a real server outside the universe is listening" in message
    assert f"port {port}" in message


def test_without_a_world_binding_a_socket_is_still_an_escape() -> None:
    async def main() -> str:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", 0))
            except EscapedSimulationError as escape:
                return str(escape)
        return "no escape"

    assert in_universe(main, world=False).startswith("socket.socket.bind(): ")


def test_a_socket_made_outside_the_universe_still_escapes() -> None:
    left, right = socket.socketpair()
    left.setblocking(False)

    async def main() -> str:
        try:
            left.send(b"x")
        except EscapedSimulationError as escape:
            return str(escape)
        return "no escape"

    with left, right:
        assert in_universe(main).startswith("socket.socket.send(): ")


def test_sockets_are_real_again_after_the_universe() -> None:
    async def main() -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))

    in_universe(main)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        assert sock.getsockname()[1] != 49152 or sock.getsockname()[0] == "127.0.0.1"
        sock.listen()


def test_closing_with_unread_bytes_resets_the_peer() -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        with listening_socket() as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.getsockname()[1])
            conn, _ = await loop.sock_accept(server)
            writer.write(b"never read")
            await asyncio.sleep(0.1)
            conn.close()  # unread bytes: a reset, as on Linux
            try:
                await reader.read(10)
                writer.write(b"more")
                await writer.drain()
            except ConnectionResetError:
                return "reset"
            return "no reset"

    assert in_universe(main) == "reset"


def test_a_real_listener_a_sync_fixture_bound_is_adopted_by_the_universe() -> None:
    fixture_server = listening_socket()  # before the universe, for real
    fixture_server.setblocking(True)
    port = fixture_server.getsockname()[1]

    async def main() -> bytes:
        # The first use in the universe adopts it (simloom.run's frozen heap hides
        # it from the search a refused connect makes under pytest --simloom).
        loop = asyncio.get_running_loop()
        accepted_task = asyncio.ensure_future(loop.sock_accept(fixture_server))
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        accepted, _ = await accepted_task
        writer.write(b"adopted")
        data = await loop.sock_recv(accepted, 100)
        writer.close()
        accepted.close()
        return data

    with fixture_server:
        assert in_universe(main, scheduler="faithful") == b"adopted"


def test_a_listener_a_real_thread_serves_is_not_adopted() -> None:
    import threading

    real = listening_socket()
    real.setblocking(True)
    port = real.getsockname()[1]
    stop = threading.Event()

    def serve(server: socket.socket) -> None:
        stop.wait(5)

    thread = threading.Thread(target=serve, args=(real,))
    thread.start()
    try:
        from simloom import _sim_socket

        async def main() -> bool:
            world = asyncio.get_running_loop()._get_world()  # type: ignore[attr-defined]
            return _sim_socket.adopt_listener_on(world, port)

        assert in_universe(main) is False
    finally:
        stop.set()
        thread.join()
        real.close()


def test_a_blocking_connect_and_recv_on_the_loop_thread_wait_in_virtual_time() -> None:
    async def main() -> tuple[bytes, bool]:
        loop = asyncio.get_running_loop()
        server = listening_socket()
        port = server.getsockname()[1]
        client = socket.socket()
        client.connect(("127.0.0.1", port))  # the handshake runs while the loop blocks
        connected_at = loop.time()
        accepted, _ = await loop.sock_accept(server)
        await loop.sock_sendall(accepted, b"over the network")
        data = client.recv(100)  # blocks until the bytes arrive, in virtual time
        for each in (client, accepted, server):
            each.close()
        return data, loop.time() > connected_at > 0

    assert in_universe(main, scheduler="faithful") == (b"over the network", True)


def test_a_blocking_recv_with_a_timeout_times_out_in_virtual_time() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        server = listening_socket()
        client = socket.socket()
        client.connect(server.getsockname())
        client.settimeout(3.0)
        started = loop.time()
        with pytest.raises(TimeoutError):
            client.recv(10)
        elapsed = loop.time() - started
        client.close()
        server.close()
        return elapsed

    assert in_universe(main, scheduler="faithful") == pytest.approx(3.0)


def test_a_lockstep_thread_serves_a_blocking_socket_and_the_run_replays() -> None:
    import threading

    async def main() -> bytes:
        server = listening_socket()
        server.setblocking(True)
        port = server.getsockname()[1]
        received: list[bytes] = []

        def serve() -> None:
            accepted, _ = server.accept()  # parks the thread until the connection comes
            received.append(accepted.recv(100))
            accepted.close()

        thread = threading.Thread(target=serve)
        thread.start()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"to the thread")
        await writer.drain()
        await asyncio.to_thread(thread.join)
        writer.close()
        server.close()
        return received[0]

    first = simloom.run(main, seed=5, scheduler="faithful")
    again = simloom.run(main, seed=5, scheduler="faithful")
    first.raise_error()
    assert first.value == b"to the thread"
    assert first.digest == again.digest


def test_a_blocking_accept_on_the_loop_thread_takes_a_connection_made_meanwhile() -> None:
    async def main() -> bytes:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.socket() as client:
            client.connect(server.getsockname())
            client.sendall(b"queued before accept")
        accepted, _ = server.accept()  # the connection's accept arrives meanwhile
        data = accepted.recv(100)
        accepted.close()
        server.close()
        return data

    assert in_universe(main, scheduler="faithful") == b"queued before accept"


# ------------------------------------------------------- addresses and options


def test_so_reuseport_lets_listeners_share_an_address_and_without_it_they_clash() -> None:
    async def main() -> tuple[int, int, str]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"served")
            writer.close()

        first = await asyncio.start_server(handle, "127.0.0.1", 0, reuse_port=True)
        port = first.sockets[0].getsockname()[1]
        second = await asyncio.start_server(handle, "127.0.0.1", port, reuse_port=True)
        shared = second.sockets[0].getsockname()[1]
        with pytest.raises(OSError) as clash:
            await asyncio.start_server(handle, "127.0.0.1", port)
        # Raw sockets: the option, set before bind, is what the bind reads.
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b,
        ):
            for sock in (a, b):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            a.bind(("127.0.0.1", 0))
            b.bind(a.getsockname())
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        served = await reader.read()
        writer.close()
        first.close()
        second.close()
        return port, shared, f"{clash.value.errno} {served!r}"

    port, shared, rest = in_universe(main)
    assert shared == port
    assert rest == "98 b'served'"


def test_a_client_bound_to_a_local_address_connects_from_it() -> None:
    async def main() -> list[Any]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(repr(writer.get_extra_info("peername")).encode())
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(
            asyncio.Protocol, "127.0.0.1", port, local_addr=("127.0.0.1", 40000)
        )
        seen = [transport.get_extra_info("sockname")]
        transport.close()
        # bind() then sock_connect(): the connection keeps the bound port.
        sock = socket.socket()
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        bound = sock.getsockname()
        await loop.sock_connect(sock, ("127.0.0.1", port))
        seen += [bound, sock.getsockname()]
        reader, writer = await asyncio.open_connection(sock=sock)
        seen.append(await reader.read())
        writer.close()
        server.close()
        return seen

    local, bound, connected, peer = in_universe(main)
    assert local == ("127.0.0.1", 40000)
    assert connected == bound
    assert peer == repr(bound).encode()


def test_reverse_dns_answers_from_the_world_in_both_apis() -> None:
    async def main(world: simloom.World) -> list[Any]:
        db = world.host("db")
        loop = asyncio.get_running_loop()
        answers: list[Any] = [
            socket.getnameinfo(("127.0.0.1", 6666), 0),
            await loop.getnameinfo(("127.0.0.1", 6666)),
            socket.getnameinfo((db.address, 80), socket.NI_NUMERICHOST),
            socket.gethostbyaddr(db.address),
        ]
        for failing in (
            lambda: socket.gethostbyaddr("10.9.9.9"),
            lambda: socket.getnameinfo(("10.9.9.9", 1), socket.NI_NAMEREQD),
        ):
            with pytest.raises(OSError) as caught:
                failing()
            answers.append(type(caught.value).__name__)
        return [*answers, db.address]

    *answers, address = in_universe(main)
    assert answers == [
        ("localhost", "6666"),
        ("localhost", "6666"),
        (address, "80"),
        ("db", [], [address]),
        "herror",
        "gaierror",
    ]


def test_a_refused_connect_leaves_no_reference_cycle_holding_the_error() -> None:
    # (cpython#124859: the future holding the error sat in a cycle with the frame
    # its traceback holds, so the error outlived the handler.)
    async def main() -> list[str]:
        try:
            await asyncio.open_connection("127.0.0.1", 9)
        except ConnectionRefusedError as error:
            refused = error
        await asyncio.sleep(0)  # (the step that woke this task holds the future)
        return [type(ref).__name__ for ref in gc.get_referrers(refused)]

    assert in_universe(main) == []


def test_an_ipv6_wildcard_is_dual_stack_unless_ipv6_v6only_is_set() -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        passive = await loop.getaddrinfo(None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        out: list[Any] = [[info[4][0] for info in passive]]
        v4 = socket.socket(socket.AF_INET)
        v4.bind(("0.0.0.0", 0))
        port = v4.getsockname()[1]
        dual = socket.socket(socket.AF_INET6)
        with pytest.raises(OSError) as clash:
            dual.bind(("::", port))  # dual-stack: holds the IPv4 port too
        out.append(clash.value.errno)
        only = socket.socket(socket.AF_INET6)
        only.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        only.bind(("::", port))
        out.append(only.getsockname()[:2])
        for sock in (v4, dual, only):
            sock.close()
        return out

    assert in_universe(main) == [["0.0.0.0", "::"], 98, ("::", 49152)]


def test_a_non_blocking_connect_is_in_progress_then_connected_or_refused() -> None:
    async def main() -> list[Any]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.read(5))
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        out: list[Any] = []
        for target in (port, port + 1):  # (nobody listens on the second)
            sock = socket.socket()
            sock.setblocking(False)
            for _ in range(2):  # in progress, then already in progress
                with pytest.raises(BlockingIOError) as pending:
                    sock.connect(("127.0.0.1", target))
                out.append(errno.errorcode[pending.value.errno])
            await asyncio.sleep(0.1)  # (virtual) the handshake's round trip is over
            try:
                sock.connect(("127.0.0.1", target))
            except ConnectionRefusedError:
                out.append("refused")
            else:
                sock.send(b"hello")
                await asyncio.sleep(0.1)
                out.append(sock.recv(5))
            sock.close()
        server.close()
        return out

    assert in_universe(main) == [
        "EINPROGRESS",
        "EALREADY",
        b"hello",
        "EINPROGRESS",
        "EALREADY",
        "refused",
    ]


def test_a_thread_connecting_with_a_timeout_resumes_when_connected_not_at_the_timeout() -> None:
    async def main() -> tuple[bytes, float]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.read(4))
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        def client() -> tuple[bytes, float]:
            started = time.monotonic()
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"ping")
                reply = sock.recv(4)
            return reply, time.monotonic() - started

        try:
            return await asyncio.to_thread(client)
        finally:
            server.close()

    reply, took = in_universe(main)
    assert reply == b"ping"
    assert took < 0.1  # two round trips of virtual time, not the 5 s timeouts


# ------------------------------------------------------------------------- TLS


def _tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def test_wrap_socket_on_a_simulated_socket_speaks_tls_with_the_loops_tls() -> None:
    server_context, client_context = _tls_contexts()

    async def main() -> list[Any]:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        seen: list[Any] = []

        def serve() -> None:  # a blocking TLS server in a thread, as tests write them
            client, _ = listener.accept()
            with server_context.wrap_socket(client, server_side=True) as tls:
                seen.append(tls.version())
                tls.sendall(tls.recv(100)[::-1])
                tls.unwrap()  # both close_notify alerts, then the plain socket

        thread = threading.Thread(target=serve)
        thread.start()
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context, server_hostname="localhost"
        )
        writer.write(b"hello")
        reply = await reader.read(5)
        writer.close()
        await writer.wait_closed()
        await asyncio.to_thread(thread.join)

        # The other way round: a blocking TLS client in a thread, the loop's server.
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write((await reader.read(100)).upper())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_context)
        echo_port = server.sockets[0].getsockname()[1]

        def client() -> bytes:
            plain = socket.create_connection(("127.0.0.1", echo_port), timeout=5)
            with client_context.wrap_socket(plain, server_hostname="localhost") as tls:
                tls.sendall(b"quiet")
                return tls.recv(100)

        upper = await asyncio.to_thread(client)
        server.close()
        listener.close()
        return [reply, upper, *seen]

    reply, upper, version = in_universe(main)
    assert (reply, upper) == (b"olleh", b"QUIET")
    assert version in ("TLSv1.2", "TLSv1.3")


def test_a_failed_certificate_check_fails_both_ends_of_a_wrap_socket() -> None:
    server_context, _ = _tls_contexts()
    untrusting = ssl.create_default_context()  # does not know the test CA

    async def main() -> list[str]:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        errors: list[str] = []

        def serve() -> None:
            client, _ = listener.accept()
            with client:
                try:
                    server_context.wrap_socket(client, server_side=True)
                except OSError:  # the client's alert (SSLError), or its abort (a reset)
                    errors.append("server: handshake failed")

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            await asyncio.open_connection(
                "127.0.0.1", port, ssl=untrusting, server_hostname="localhost"
            )
        except ssl.SSLCertVerificationError as error:
            errors.append(f"client: {error.verify_message}")
        await asyncio.to_thread(thread.join)
        listener.close()
        return sorted(errors)

    assert in_universe(main) == [
        "client: unable to get local issuer certificate",
        "server: handshake failed",
    ]
