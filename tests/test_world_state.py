"""The world's state lives in the core: hosts, incarnations, DNS both ways, Unix
paths and endpoint routing are ``_core.NetCore``'s, and ``World`` is its facade.

What the program sees is pinned here (reverse DNS after aliases, a Unix path freed
by a crash, many hosts), and so is the split itself: the core answers for the
state, and the facade keeps no registry of its own.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
from typing import Any

import pytest
import simloom
from simloom import _core
from simloom.world import World

# ------------------------------------------------------------------ the facade


class _Quiet(asyncio.Protocol):
    """A protocol that does nothing (``asyncio.Protocol`` itself has slots, and
    ``connected_pair`` wraps ``connection_made`` on the instance)."""


def test_reverse_dns_names_an_address_by_its_hosts_own_name_whatever_the_aliases() -> None:
    async def main(world: World) -> list[Any]:
        loop = asyncio.get_running_loop()
        web, db = world.host("Web"), world.host("db")
        world.register_name("www", web)
        world.register_name("Alias.Example", db)
        world.register_name("www", db)  # re-pointed: still ranked before "alias.example"
        answers: list[Any] = [
            await loop.getnameinfo((web.address, 80)),
            await loop.getnameinfo((db.address, 80)),
            await loop.getnameinfo((db.address, 80), socket.NI_NUMERICHOST),
            await loop.getnameinfo(("10.0.0.99", 80)),
            await loop.getnameinfo(("010.0.0.2", 80)),
        ]
        # The host's own name re-pointed: its old address is left with no name, and
        # db's first name is now "web" (registered before "db").
        world.register_name("web", db)
        answers.append(await loop.getnameinfo((web.address, 80)))
        answers.append(await loop.getnameinfo((db.address, 80)))
        answers.append((await loop.getaddrinfo("WWW.", 80))[0][4])
        return answers

    assert simloom.run(main).value == [
        ("web", "80"),  # the own name, folded as the table folds every name
        ("db", "80"),
        ("10.0.0.3", "80"),
        ("10.0.0.99", "80"),
        ("010.0.0.2", "80"),  # not the world's spelling of an address: no name
        ("10.0.0.2", "80"),
        ("web", "80"),
        ("10.0.0.3", 80),
    ]


def test_name_resolution_keeps_its_literal_and_local_rules() -> None:
    async def main(world: World) -> list[Any]:
        loop = asyncio.get_running_loop()
        world.host("a")
        world.register_name("localhost", "a")  # cannot shadow the loopback names
        out: list[Any] = []
        for name in ("A", "a.", "[::1]", "fe80::1%eth0", "10.0.0.2", "LOCALHOST.", "ip6-localhost"):
            out.append((await loop.getaddrinfo(name, 1))[0][4][0])
        for name in ("b", "localhost.example", "10.0.0.2.x"):
            with pytest.raises(socket.gaierror):
                await loop.getaddrinfo(name, 1)
        return out

    assert simloom.run(main).value == [
        "10.0.0.2",
        "10.0.0.2",
        "::1",
        "fe80::1",
        "10.0.0.2",
        "127.0.0.1",
        "127.0.0.1",
    ]


def test_many_hosts_get_their_own_address_and_answer_both_ways() -> None:
    async def main(world: World) -> list[tuple[str, str, str]]:
        loop = asyncio.get_running_loop()
        hosts = [world.host(f"node-{n}") for n in range(600)]
        out = []
        for host in hosts[::97]:
            info = await loop.getaddrinfo(host.name, 80, type=socket.SOCK_STREAM)
            name, _ = await loop.getnameinfo((host.address, 80))
            out.append((host.name, info[0][4][0], name))
        return out

    result = simloom.run(main)
    assert result.value == [
        (f"node-{n}", f"10.0.{(n + 2) // 256}.{(n + 2) % 256}", f"node-{n}")
        for n in range(0, 600, 97)
    ]


def test_a_unix_path_is_free_again_once_its_host_crashed() -> None:
    async def main(world: World) -> list[Any]:
        box = world.host("box")
        served: list[str] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            served.append((await reader.read(10)).decode())
            writer.close()

        async def serve() -> None:
            await asyncio.start_unix_server(handle, "/run/app.sock")
            await asyncio.sleep(3600)

        async def ask(text: str) -> None:
            _, writer = await asyncio.open_unix_connection("/run/app.sock")
            writer.write(text.encode())
            await writer.drain()
            await asyncio.sleep(0.1)

        box.spawn(serve)
        await asyncio.sleep(0.01)
        await box.run(ask("first"))
        box.crash()
        # The path went with the host's processes: the restarted serve() binds it
        # again (EADDRINUSE otherwise) and a client reaches the new server.
        box.restart()
        await asyncio.sleep(0.01)
        await box.run(ask("second"))
        return served

    assert simloom.run(main).value == ["first", "second"]


def test_a_crash_closes_the_crashed_hosts_transports_servers_and_sockets_only() -> None:
    async def main(world: World) -> list[bool]:
        loop = asyncio.get_running_loop()
        client, server = await world.connected_pair(_Quiet, _Quiet, server="b")

        async def open_endpoint() -> Any:
            return await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("0.0.0.0", 53)
            )

        async def listen() -> Any:
            return await asyncio.start_server(lambda r, w: None, "0.0.0.0", 80)

        b = world.host("b")
        (datagrams, _), listener = await b.run(open_endpoint()), await b.run(listen())
        own = await open_endpoint()
        b.crash()
        await asyncio.sleep(0.01)
        return [
            server[0].is_closing(),
            datagrams.is_closing(),
            listener.is_serving(),
            client[0].is_closing(),  # told by the reset, on main
            own[0].is_closing(),
        ]

    assert simloom.run(main).value == [True, True, False, True, False]


def test_the_world_keeps_no_registry_of_its_own() -> None:
    async def main(world: World) -> dict[str, Any]:
        await world.connected_pair(_Quiet, _Quiet, server="b")
        world.register_name("alias", "b")
        world.host("b").crash()
        return dict(vars(world))

    state = simloom.run(main).value
    mirrors = {
        name: value
        for name, value in state.items()
        if isinstance(value, dict | list) and name != "_abandoned"
    }
    assert mirrors == {}, "hosts, names, paths and endpoints are the core's"
    assert not hasattr(World, "_deliver"), "the core routes accepts and late events"


# -------------------------------------------------------------- the core's API


class _Loopless:
    """The core's state calls that need no loop."""

    def __init__(self) -> None:
        self.core = _core.NetCore(contextvars.Context())
        self.core.bind()

    def host(self, name: str) -> tuple[int, str]:
        net_id, address = self.core.add_host(name)
        self.core.set_host(net_id, f"<{name}>")
        self.core.register_name(name.lower(), net_id)
        return net_id, address


def test_the_core_numbers_hosts_addresses_and_incarnations() -> None:
    world = _Loopless()
    assert [world.host(name) for name in ("main", "a", "B")] == [
        (0, "10.0.0.1"),
        (1, "10.0.0.2"),
        (2, "10.0.0.3"),
    ]
    core = world.core
    assert core.hosts() == ["<main>", "<a>", "<B>"]
    assert core.host_named("B") == "<B>" and core.host_named("b") is None
    assert [core.host_incarnation(n) for n in range(3)] == [0, 1, 2]
    assert core.running_host(0) == "<main>" and core.running_host(2) == "<B>"
    assert core.resolve("b") == "10.0.0.3" and core.resolve("B") is None
    assert core.resolve("localhost") == "127.0.0.1"
    assert core.name_of("10.0.0.3") == "b" and core.name_of("not an ip") is None
    with pytest.raises(RuntimeError, match="is running"):
        core.restart_host(1)
    with pytest.raises(RuntimeError, match="no host has incarnation 7"):
        core.running_host(7)


def test_the_core_keeps_each_hosts_unix_namespace() -> None:
    world = _Loopless()
    for name in ("main", "a", "b"):
        world.host(name)
    core = world.core
    assert core.bind_unix(1, "/s", 49152)
    assert not core.bind_unix(1, "/s", 49153)
    assert core.bind_unix(2, "/s", 49152)
    assert core.unix_port(1, "/s") == 49152 and core.unix_port(0, "/s") is None
    core.unbind_unix(1, "/s")
    assert core.unix_port(1, "/s") is None and core.unix_port(2, "/s") == 49152


def test_the_core_tells_only_the_crashed_hosts_endpoints_and_ends_its_incarnation() -> None:
    told: list[str] = []

    async def main(world: World) -> list[Any]:
        loop = asyncio.get_running_loop()
        core = world._net
        a, b = world.host("a"), world.host("b")
        context = contextvars.copy_context()
        for host, port in ((a, 1), (b, 2), (a, 3)):
            core.listen(
                host._net_id,
                "0.0.0.0",
                port,
                1,
                lambda *event: None,
                context,
                lambda host=host, port=port: told.append(f"{host.name} listener {port}"),
            )
        socket_id, _ = core.bind_datagram(a._net_id, "0.0.0.0", 53)
        core.register_datagram(
            socket_id, a._net_id, lambda *e: None, context, lambda: told.append("a socket")
        )
        before = a._incarnation
        ended = core.crash_host(loop, a._net_id)
        after_crash = list(told)
        incarnation = core.restart_host(a._net_id)
        # Re-listening on a's ports works: the crash freed them.
        core.listen(a._net_id, "0.0.0.0", 1, 1, print, context, print)
        return [before, ended, after_crash, incarnation, core.host_alive(a._net_id)]

    before, ended, after_crash, incarnation, alive = simloom.run(main).value
    assert ended == before == 1
    assert after_crash == ["a listener 1", "a listener 3", "a socket"]
    assert incarnation == 3 and alive
