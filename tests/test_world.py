"""The simulated world: hosts, the network as asyncio sees it, faults, crashes.

Programs here are ordinary asyncio code (streams, protocols, datagram endpoints);
the world is the only thing that knows they are simulated.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import simloom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simloom import SimloomUsageError, World

# ------------------------------------------------------------------ helpers


async def echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
    except ConnectionResetError:
        return
    writer.close()


def serve_echo(port: int) -> Any:
    async def serve() -> None:
        server = await asyncio.start_server(echo_handler, None, port)
        await server.serve_forever()

    return serve


def run(main: Any, seed: int = 0, **kwargs: Any) -> simloom.RunResult:
    result = simloom.run(main, seed=seed, **kwargs)
    return result


def ok(main: Any, seed: int = 0, **kwargs: Any) -> Any:
    result = run(main, seed, **kwargs)
    result.raise_error()
    return result.value


# ------------------------------------------------------------------ hosts and names


def test_every_universe_has_a_world_and_main_gets_it_by_parameter_name() -> None:
    async def main(world: World) -> tuple[str, str, list[str]]:
        a = world.host("a")
        b = world.host("b")
        assert world.host("a") is a
        return a.address, b.address, list(world.hosts)

    assert ok(main) == ("10.0.0.2", "10.0.0.3", ["main", "a", "b"])


def test_host_names_resolve_and_unknown_names_raise_gaierror() -> None:
    async def main(world: World) -> list[Any]:
        world.host("db")
        world.register_name("primary.db", "db")
        loop = asyncio.get_running_loop()
        found = [
            (await loop.getaddrinfo("db", 5432, type=socket.SOCK_STREAM))[0][4],
            (await loop.getaddrinfo("primary.db", "5432", type=socket.SOCK_STREAM))[0][4],
            (await loop.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM))[0][4],
        ]
        with pytest.raises(socket.gaierror):
            await loop.getaddrinfo("nobody.example", 80)
        with pytest.raises(socket.gaierror):
            await asyncio.open_connection("nobody.example", 80)
        return found

    assert ok(main) == [("10.0.0.2", 5432), ("10.0.0.2", 5432), ("127.0.0.1", 80)]


def test_world_false_makes_the_network_an_escape() -> None:
    async def main() -> None:
        await asyncio.open_connection("10.0.0.1", 80)

    result = run(main, world=False)
    assert isinstance(result.error, simloom.EscapedSimulationError)


def test_main_asking_for_a_world_under_world_false_is_a_usage_error() -> None:
    async def main(world: World) -> None:
        pass

    assert isinstance(run(main, world=False).error, SimloomUsageError)


@pytest.mark.parametrize("name", ["", "bad name", "a/b", 3])
def test_bad_host_names_are_refused(name: Any) -> None:
    async def main(world: World) -> None:
        world.host(name)

    assert isinstance(run(main).error, SimloomUsageError)


def test_spawn_takes_a_factory_not_a_coroutine() -> None:
    async def work() -> None:
        pass

    async def main(world: World) -> None:
        world.host("a").spawn(work())  # type: ignore[arg-type]

    error = run(main).error
    assert isinstance(error, SimloomUsageError)
    assert "factory" in str(error)


# ------------------------------------------------------------------ streams


def test_echo_between_hosts_over_asyncio_streams() -> None:
    async def main(world: World) -> tuple[bytes, Any, Any]:
        world.host("echo").spawn(serve_echo(7000))
        await world.sleep(0.01)
        reader, writer = await asyncio.open_connection("echo", 7000)
        writer.write(b"hello, ")
        writer.write(b"world")
        writer.write_eof()
        data = await reader.read()
        writer.close()
        await writer.wait_closed()
        return data, writer.get_extra_info("peername"), writer.get_extra_info("sockname")

    for seed in range(20):
        data, peer, local = ok(main, seed)
        assert data == b"hello, world"
        assert peer == ("10.0.0.2", 7000)
        assert local[0] == "10.0.0.1"


def test_connecting_where_nothing_listens_is_refused() -> None:
    async def main(world: World) -> None:
        world.host("quiet")
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("quiet", 80)

    ok(main)


def test_a_server_on_one_port_twice_is_address_in_use() -> None:
    async def main(world: World) -> None:
        await asyncio.start_server(echo_handler, None, 8000)
        with pytest.raises(OSError) as info:
            await asyncio.start_server(echo_handler, None, 8000)
        assert info.value.errno == 98

    ok(main)


def test_latency_is_virtual_and_drawn_within_the_range() -> None:
    async def main(world: World) -> float:
        world.host("far").spawn(serve_echo(7000))
        world.net.set_latency(0.010, 0.030)
        await world.sleep(1)
        reader, writer = await asyncio.open_connection("far", 7000)
        loop = asyncio.get_running_loop()
        start = loop.time()
        writer.write(b"x")
        await reader.readexactly(1)
        writer.close()
        return loop.time() - start

    round_trips = [ok(main, seed) for seed in range(20)]
    assert all(0.020 <= rtt <= 0.060 + 1e-9 for rtt in round_trips), round_trips
    assert len(set(round_trips)) > 1


def test_a_connect_across_a_partition_hangs_until_the_callers_timeout() -> None:
    async def main(world: World) -> float:
        island = world.host("island")
        island.spawn(serve_echo(7000))
        await world.sleep(0.01)
        world.net.partition(world.main, island)
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.open_connection("island", 7000), timeout=30)
        return loop.time() - start

    assert ok(main) == pytest.approx(30)


def test_bytes_sent_across_a_partition_are_held_and_delivered_in_order_on_heal() -> None:
    async def main(world: World) -> tuple[bytes, float]:
        world.host("b").spawn(serve_echo(7000))
        await world.sleep(0.01)
        reader, writer = await asyncio.open_connection("b", 7000)
        world.net.partition("main", "b")
        for chunk in (b"one ", b"two ", b"three"):
            writer.write(chunk)
        loop = asyncio.get_running_loop()
        healed_at = loop.time() + 5
        loop.call_later(5, world.net.heal)
        data = await reader.readexactly(len(b"one two three"))
        assert loop.time() >= healed_at
        writer.close()
        return data, loop.time()

    for seed in range(10):
        data, _ = ok(main, seed)
        assert data == b"one two three"


def test_reset_connections_reaches_both_sides_as_connection_reset_error() -> None:
    async def main(world: World) -> list[str]:
        seen: list[str] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.read()
            except ConnectionResetError:
                seen.append("server reset")

        async def serve() -> None:
            await (await asyncio.start_server(handler, None, 7000)).serve_forever()

        world.host("b").spawn(serve)
        await world.sleep(0.01)
        reader, writer = await asyncio.open_connection("b", 7000)
        writer.write(b"ping")
        await world.sleep(0.01)
        assert world.net.reset_connections("main", "b") == 1
        with pytest.raises(ConnectionResetError):
            await reader.read()
        seen.append("client reset")
        await world.sleep(0.01)
        return sorted(seen)

    assert ok(main) == ["client reset", "server reset"]


def test_asymmetric_block_holds_one_direction_only() -> None:
    async def main(world: World) -> list[str]:
        got: list[str] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got.append((await reader.readexactly(4)).decode())
            writer.write(b"pong")
            await writer.drain()

        async def serve() -> None:
            await (await asyncio.start_server(handler, None, 7000)).serve_forever()

        b = world.host("b")
        b.spawn(serve)
        await world.sleep(0.01)
        reader, writer = await asyncio.open_connection("b", 7000)
        world.net.block(b, world.main)  # replies are held, requests pass
        writer.write(b"ping")
        await world.sleep(1)
        assert got == ["ping"]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(4), timeout=1)
        world.net.unblock(b, world.main)
        got.append((await reader.readexactly(4)).decode())
        return got

    assert ok(main) == ["ping", "pong"]


def test_unix_sockets_are_per_host_paths_on_the_simulated_network() -> None:
    async def main(world: World) -> bytes:
        server = await asyncio.start_unix_server(echo_handler, "/run/echo.sock")
        reader, writer = await asyncio.open_unix_connection("/run/echo.sock")
        writer.write(b"over unix")
        writer.write_eof()
        data = await reader.read()
        assert server.sockets[0].getsockname() == "/run/echo.sock"
        other = world.host("other")

        async def elsewhere() -> None:
            with pytest.raises(FileNotFoundError):
                await asyncio.open_unix_connection("/run/echo.sock")

        await other.run(elsewhere())
        server.close()
        return data

    assert ok(main) == b"over unix"


def test_connected_pair_gives_two_connected_protocols() -> None:
    class Recorder(asyncio.Protocol):
        def __init__(self) -> None:
            self.data = b""

        def data_received(self, data: bytes) -> None:
            self.data += data

    async def main(world: World) -> tuple[bytes, bytes]:
        (client_t, client_p), (server_t, server_p) = await world.connected_pair(Recorder, Recorder)
        client_t.write(b"to server")
        server_t.write(b"to client")
        await world.sleep(0.1)
        return client_p.data, server_p.data

    assert ok(main) == (b"to client", b"to server")


# ------------------------------------------------------------------ stream property


FAULTS = st.lists(
    st.one_of(
        st.tuples(st.just("partition"), st.floats(0, 2)),
        st.tuples(st.just("heal"), st.floats(0, 2)),
        st.tuples(st.just("latency"), st.floats(0.0001, 0.05)),
        st.tuples(st.just("loss"), st.integers(0, 50)),
        st.tuples(st.just("reset"), st.floats(0, 2)),
    ),
    max_size=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(FAULTS, simloom.universes())
def test_echo_byte_stream_stays_intact_through_partitions_heals_latency_and_resets(
    faults: list[tuple[str, Any]], universe: Any
) -> None:
    """Whatever the faults, each connection's echoed bytes are exactly a prefix of
    what was sent on it (never corrupted, reordered or duplicated), and all of it
    when the connection was not reset."""

    async def main(world: World) -> list[tuple[bytes, bytes, bool]]:
        world.host("echo").spawn(serve_echo(7000))
        await world.sleep(0.001)
        loop = asyncio.get_running_loop()

        async def script() -> None:
            for kind, value in faults:
                if kind == "partition":
                    await asyncio.sleep(value)
                    world.net.partition("main", "echo")
                elif kind == "heal":
                    await asyncio.sleep(value)
                    world.net.heal()
                elif kind == "latency":
                    world.net.set_latency(value / 2, value)
                elif kind == "loss":
                    world.net.set_loss(value)
                else:
                    await asyncio.sleep(value)
                    world.net.reset_connections("main", "echo")
            await asyncio.sleep(3)
            world.net.heal()

        faulting = loop.create_task(script())
        outcomes: list[tuple[bytes, bytes, bool]] = []
        for attempt in range(3):
            sent = b""
            received = b""
            reset = False
            try:
                reader, writer = await asyncio.open_connection("echo", 7000)
                for n in range(20):
                    chunk = f"[{attempt}:{n}]".encode()
                    writer.write(chunk)
                    sent += chunk
                    await asyncio.sleep(0.05)
                writer.write_eof()
                while data := await reader.read(1000):
                    received += data
            except (ConnectionResetError, ConnectionRefusedError):
                # A reset during the handshake reads as a refusal, as on a real host.
                reset = True
            outcomes.append((sent, received, reset))
        await faulting
        return outcomes

    for sent, received, reset in universe.run(main):
        assert sent.startswith(received)
        if not reset:
            assert received == sent


# ------------------------------------------------------------------ datagrams


class Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[tuple[bytes, Any]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.append((data, addr))
        assert self.transport is not None
        self.transport.sendto(b"ack:" + data, addr)


def test_datagrams_arrive_in_order_exactly_once_by_default() -> None:
    async def main(world: World) -> list[bytes]:
        loop = asyncio.get_running_loop()
        server = world.host("udp")
        collector = Collector()

        async def listen() -> None:
            await loop.create_datagram_endpoint(lambda: collector, local_addr=("0.0.0.0", 5353))
            await asyncio.Event().wait()

        server.spawn(listen)
        await world.sleep(0.01)
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=("udp", 5353)
        )
        for n in range(10):
            transport.sendto(str(n).encode())
        await world.sleep(1)
        transport.close()
        return [data for data, _ in collector.received]

    for seed in range(5):
        assert ok(main, seed) == [str(n).encode() for n in range(10)]


async def udp_counter(world: World, client: Any) -> list[int]:
    """A server that acknowledges each datagram; ``client`` sends 1..5 and returns
    the sum it believes the server saw."""
    loop = asyncio.get_running_loop()
    world.net.set_datagram_loss(10)
    world.net.set_datagram_duplication(10)
    world.net.set_datagram_reorder(10)
    collector = Collector()

    async def listen() -> None:
        await loop.create_datagram_endpoint(lambda: collector, local_addr=("0.0.0.0", 9999))
        await asyncio.Event().wait()

    world.host("counter").spawn(listen)
    await world.sleep(0.01)
    acked: list[int] = await client(loop)
    seen = sorted({int(data.decode().split(":")[0]) for data, _ in collector.received})
    return [sum(acked), sum(seen)]


class AckQueue(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.acks: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.acks.put_nowait(data)


async def naive_client(loop: Any) -> list[int]:
    """Assumes UDP is a reliable, ordered pipe: the n-th ack is for the n-th datagram."""
    transport, protocol = await loop.create_datagram_endpoint(
        AckQueue, remote_addr=("counter", 9999)
    )
    acked = []
    for n in range(1, 6):
        transport.sendto(f"{n}:x".encode())
        ack = await asyncio.wait_for(protocol.acks.get(), timeout=1)
        acked.append(int(ack.decode().split(":")[1]))
        assert ack == f"ack:{n}:x".encode(), f"expected the ack of {n}, got {ack!r}"
    transport.close()
    return acked


async def careful_client(loop: Any) -> list[int]:
    """Retransmits until the matching ack arrives, ignoring stale and duplicate acks."""
    transport, protocol = await loop.create_datagram_endpoint(
        AckQueue, remote_addr=("counter", 9999)
    )
    acked = []
    for n in range(1, 6):
        expected = f"ack:{n}:x".encode()
        while True:
            transport.sendto(f"{n}:x".encode())
            try:
                while await asyncio.wait_for(protocol.acks.get(), timeout=0.2) != expected:
                    pass
                break
            except TimeoutError:
                continue
        acked.append(n)
    transport.close()
    return acked


def test_a_udp_client_assuming_reliable_delivery_is_found_buggy_under_datagram_faults() -> None:
    async def main(world: World) -> list[int]:
        return await udp_counter(world, naive_client)

    failures = [seed for seed in range(200) if run(main, seed).error is not None]
    assert failures, "datagram faults never broke the naive client"
    assert run(main, failures[0]).error is not None  # the failing seed replays


def test_a_udp_client_with_retransmission_and_dedup_survives_datagram_faults() -> None:
    async def main(world: World) -> list[int]:
        return await udp_counter(world, careful_client)

    for seed in range(200):
        assert ok(main, seed) == [15, 15]


# ------------------------------------------------------------------ crashes


def test_a_crash_runs_no_finally_while_the_universe_lasts() -> None:
    unwound: list[str] = []

    async def main(world: World) -> list[str]:
        async def worker() -> None:
            try:
                await asyncio.sleep(100)
            finally:
                unwound.append("finally ran")

        async def ticker() -> None:
            while True:
                await asyncio.sleep(1)
                unwound.append("tick after crash")

        node = world.host("node")
        node.spawn(worker)
        await world.sleep(1)
        node.crash()
        node.spawn  # noqa: B018 - still an attribute, but spawning now is refused
        with pytest.raises(SimloomUsageError):
            node.spawn(ticker)
        await world.sleep(200)
        return list(unwound)

    assert ok(main) == []


def test_a_crashed_hosts_timers_never_fire_and_its_tasks_never_resume() -> None:
    async def main(world: World) -> list[str]:
        events: list[str] = []
        node = world.host("node")

        async def work() -> None:
            loop = asyncio.get_running_loop()
            loop.call_later(5, events.append, "timer fired")
            await asyncio.sleep(2)
            events.append("woke")

        node.spawn(work)
        await world.sleep(1)
        node.crash()
        await world.sleep(10)
        return events

    assert ok(main) == []


def test_peers_of_a_crashed_host_see_connection_reset_and_its_listener_is_gone() -> None:
    async def main(world: World) -> str:
        node = world.host("node")
        node.spawn(serve_echo(7000))
        await world.sleep(0.01)
        reader, writer = await asyncio.open_connection("node", 7000)
        writer.write(b"hi")
        assert await reader.readexactly(2) == b"hi"
        node.crash()
        with pytest.raises(ConnectionResetError):
            await reader.read()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("node", 7000)
        return "ok"

    assert ok(main) == "ok"


def test_unsynced_writes_are_lost_on_crash_and_fsynced_ones_survive() -> None:
    async def main(world: World) -> tuple[bytes, bool]:
        node = world.host("node")
        disk = node.disk
        disk.write_bytes("durable", b"fsynced", fsync=True)
        disk.fsync_dir()
        with disk.open("volatile", "w") as f:
            f.write(b"never synced")
        node.crash()
        return disk.read_bytes("durable"), disk.exists("volatile")

    # FIFO: every crash choice canonical, the unsynced file is lost.
    assert ok(main, scheduler="fifo") == (b"fsynced", False)


def test_some_universes_tear_or_keep_unsynced_writes() -> None:
    async def main(world: World) -> bytes:
        node = world.host("node")
        with node.disk.open("log", "w") as f:
            f.write(b"synced;")
            f.fsync()
            f.write(b"unsynced-tail")
        node.disk.fsync_dir()
        node.crash()
        return node.disk.read_bytes("log")

    outcomes = {ok(main, seed) for seed in range(60)}
    assert b"synced;" in outcomes
    assert all(o.startswith(b"synced;") and b"synced;unsynced-tail".startswith(o) for o in outcomes)
    assert len(outcomes) > 2, outcomes  # lost, torn somewhere, or kept whole


def test_restart_reruns_the_spawned_factories_against_the_surviving_disk() -> None:
    async def main(world: World) -> list[int]:
        node = world.host("node")
        boots: list[int] = []

        async def service() -> None:
            disk = node.disk
            count = int(disk.read_bytes("boots")) if disk.exists("boots") else 0
            count += 1
            disk.write_bytes("boots", str(count).encode(), fsync=True)
            disk.fsync_dir()
            boots.append(count)
            await asyncio.Event().wait()

        node.spawn(service)
        await world.sleep(1)
        for _ in range(3):
            node.crash()
            assert not node.alive
            node.restart()
            await world.sleep(1)
        return boots

    assert ok(main) == [1, 2, 3, 4]


def test_crash_and_restart_misuse_is_refused() -> None:
    async def main(world: World) -> list[str]:
        refused = []
        node = world.host("node")
        for attempt in (node.restart, world.main.crash):
            try:
                attempt()
            except SimloomUsageError as exc:
                refused.append(str(exc).split(" ")[0])
        node.crash()
        try:
            node.crash()
        except SimloomUsageError:
            refused.append("twice")
        return refused

    assert len(ok(main)) == 3


def test_a_restarted_server_accepts_again_and_counts_coverage() -> None:
    async def main(world: World) -> bytes:
        node = world.host("node")
        node.spawn(serve_echo(7000))
        await world.sleep(0.01)
        node.crash()
        node.restart()
        await world.sleep(0.01)
        reader, writer = await asyncio.open_connection("node", 7000)
        writer.write(b"back")
        writer.write_eof()
        return await reader.read()

    result = run(main)
    result.raise_error()
    assert result.value == b"back"
    assert result.coverage["world.crash:node"] == 1
    assert result.coverage["world.restart:node"] == 1


# ------------------------------------------------------------------ determinism


async def faulty_cluster(world: World) -> list[Any]:
    nodes = [world.host(f"n{i}") for i in range(3)]
    for node in nodes:
        node.spawn(serve_echo(7000))
    world.net.set_latency(0.001, 0.02)
    world.net.set_loss(20)
    await world.sleep(0.05)
    answers: list[Any] = []

    async def client(name: str) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(name, 7000), 2)
            writer.write(name.encode())
            answers.append(await asyncio.wait_for(reader.readexactly(2), 2))
            writer.close()
        except (OSError, TimeoutError) as exc:
            answers.append(type(exc).__name__)

    if simloom.sometimes("partition", 50):
        world.net.partition(nodes[0], nodes[1:])
    if simloom.sometimes("crash", 50):
        nodes[1].crash()
    await asyncio.gather(*(client(f"n{i}") for i in range(3)))
    return answers


def test_a_world_with_faults_replays_byte_identically() -> None:
    for seed in range(30):
        first = run(faulty_cluster, seed)
        again = run(faulty_cluster, seed)
        replayed = simloom.replay(faulty_cluster, first.tape, strict=True)
        assert first.error is None, first.error
        assert first.digest == again.digest == replayed.digest
        assert first.event_log_bytes == replayed.event_log_bytes
        assert first.value == replayed.value


def test_per_link_latency_applies_to_one_direction_only() -> None:
    async def main(world: World) -> list[float]:
        far = world.host("far")
        far.spawn(serve_echo(7000))
        world.net.set_latency(0.001)
        world.net.set_latency(0.100, src=far, dst=world.main)  # only the replies are slow
        await world.sleep(0.1)
        reader, writer = await asyncio.open_connection("far", 7000)
        loop = asyncio.get_running_loop()
        start = loop.time()
        writer.write(b"x")
        await reader.readexactly(1)
        return [loop.time() - start]

    assert ok(main) == [pytest.approx(0.101)]


def test_clogging_a_node_holds_its_traffic_until_unclogged() -> None:
    async def main(world: World) -> float:
        node = world.host("node")
        node.spawn(serve_echo(7000))
        await world.sleep(0.01)
        reader, writer = await asyncio.open_connection("node", 7000)
        world.net.clog_node_out(node)
        writer.write(b"held")
        loop = asyncio.get_running_loop()
        loop.call_later(2, world.net.unclog_node_out, node)
        start = loop.time()
        assert await reader.readexactly(4) == b"held"
        return loop.time() - start

    assert ok(main) >= 2


def test_a_full_host_disk_raises_enospc() -> None:
    async def main(world: World) -> int:
        disk = world.host("small", disk_capacity=10).disk
        disk.write_bytes("a", b"0123456789")
        with pytest.raises(OSError) as info:
            disk.write_bytes("b", b"x")
        return info.value.errno

    import errno

    assert ok(main) == errno.ENOSPC


def test_sometimes_and_draw_work_from_any_hosts_code_and_count_coverage() -> None:
    async def main(world: World) -> list[int]:
        picks: list[int] = []

        async def node_code() -> None:
            if simloom.sometimes("node_fault", 100):
                picks.append(simloom.draw("shard", 4))
            simloom.reached("node_ran")

        for name in ("a", "b"):
            world.host(name).spawn(node_code)
        await world.sleep(1)
        return picks

    result = run(main, seed=3)
    result.raise_error()
    assert len(result.value) == 2
    assert result.coverage == {"node_fault": 2, "node_ran": 2}


def test_until_waits_in_virtual_time_and_times_out_even_without_a_timeout() -> None:
    async def main(world: World) -> list[float]:
        loop = asyncio.get_running_loop()
        flag: list[bool] = []
        loop.call_later(5, flag.append, True)
        await world.until(lambda: bool(flag), timeout=10)
        waited = [loop.time()]
        with pytest.raises(TimeoutError):
            await world.until(lambda: False, timeout=2)
        waited.append(loop.time())
        with pytest.raises(TimeoutError, match="no timeout was given"):
            await world.until(lambda: False, interval=60)
        waited.append(loop.time())
        return waited

    five, seven, after_limit = ok(main)
    assert five == pytest.approx(5, abs=0.011)
    assert seven == pytest.approx(five + 2, abs=0.011)
    assert after_limit >= seven + 3600
