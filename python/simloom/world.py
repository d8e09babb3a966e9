"""The simulated world of one universe: hosts, their network and disks, crashes.

Every universe has a :class:`World` (``world=False`` opts out). A program asks for it
by taking a parameter named ``world``; its network calls (``asyncio.open_connection``,
aiohttp, httpx, ...) go to the simulated network whether it asks or not.

The world's state is Rust (``_core.NetCore`` over ``rust/src/world/``): hosts and
their addresses and incarnations, DNS both ways, the Unix-path namespace, and which
host owns each transport, listener and socket. This module is its facade.

Owns: the ``World``/``Host`` API and the checks of its arguments (with their
``SimloomUsageError`` messages), the tasks spawned on hosts and what a crash
abandons, name syntax (literal addresses, case folding) before the table is asked,
and crash/restart as the program sees them. Must not: keep hosts, names, paths or
endpoints of its own (the core has them), model delivery or disk state (the Rust
models do), or decide anything itself (every nondeterministic choice is a tape
choice made by a model or the scheduler).

Which host is running: a context variable holds the host incarnation of the code
running (tasks inherit it from the task that created them, callbacks from the code
that scheduled them). Code outside any spawned task runs on the host ``"main"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any

from . import _causal, _core, _skew
from .errors import SimloomUsageError
from .net import Net, SimServer, _no_such_name

if TYPE_CHECKING:
    from ._hostfs import HostFiles
    from .disk import Disk
    from .loop import SimLoop

__all__ = ["Host", "World", "current_host"]

#: The host incarnation (an int the core numbers: ``NetCore.host_incarnation``) of
#: the running code; absent for the world's own code and the host ``"main"``.
_host_incarnation: contextvars.ContextVar[int] = contextvars.ContextVar("simloom_host_incarnation")
# The causal trace names each step's host through it.
_causal.host_var = _host_incarnation

#: The first host, made with the world, where the test runs. The core gives hosts
#: 10.0.0.1, 10.0.0.2, ... in creation order, so "main" is always 10.0.0.1.
MAIN_HOST = "main"
#: How long ``world.until`` waits without a timeout, in virtual seconds.
UNTIL_LIMIT = 3600.0

EntryFactory = Callable[[], Awaitable[Any]]


class Host:
    """A simulated machine: an address, a disk, and the tasks spawned on it.

    ``spawn(factory)`` starts ``factory()`` as a task on the host and remembers the
    factory; ``crash()`` is a power cut; ``restart()`` runs the remembered factories
    again against what survived on the disk.
    """

    def __init__(self, world: World, name: str, address: str, net_id: int) -> None:
        self.world = world
        self.name = name
        self.address = address
        #: The host's id in the core, which keeps its incarnation and state.
        self._net_id = net_id
        self._entries: list[tuple[EntryFactory, str | None]] = []
        self._disk: Disk | None = None
        self._disk_capacity: int | None = None
        #: The file system of this incarnation (cwd, open descriptors) over the
        #: disk, made on first file I/O (simloom._hostfs); a crash drops it.
        self._files: HostFiles | None = None
        #: Tasks started by spawn() and run(), kept alive as a supervisor would (a
        #: task nobody references can be garbage collected while it waits).
        self._tasks: list[asyncio.Task[Any]] = []
        self.crashes = 0
        self.restarts = 0

    @property
    def alive(self) -> bool:
        """False between ``crash()`` and ``restart()``."""
        return self.world._net.host_alive(self._net_id)

    @property
    def _incarnation(self) -> int:
        """The incarnation the host's code runs in (0 for "main")."""
        return self.world._net.host_incarnation(self._net_id)

    @property
    def disk(self) -> Disk:
        """The host's disk: it survives crashes, but only what was fsynced is sure to."""
        if self._disk is None:
            from .disk import Disk

            self._disk = Disk(capacity=self._disk_capacity)
        return self._disk

    def _context(self) -> contextvars.Context:
        context = self.world._context.copy()
        incarnation = self._incarnation
        if incarnation:
            context.run(_host_incarnation.set, incarnation)
        return context

    def spawn(self, factory: EntryFactory, *, name: str | None = None) -> asyncio.Task[Any]:
        """Start ``factory()`` (an async function or a lambda returning a coroutine)
        as a task on this host, and remember it: ``restart()`` calls it again."""
        if not callable(factory) or asyncio.iscoroutine(factory):
            if asyncio.iscoroutine(factory):
                factory.close()
            raise SimloomUsageError(
                "spawn() takes a factory (an async function or a lambda returning a "
                "coroutine), not a coroutine: restart() must be able to call it again"
            )
        self._check_alive("spawn")
        self._entries.append((factory, name))
        return self._start(factory, name)

    def run(
        self, coroutine: Coroutine[Any, Any, Any], *, name: str | None = None
    ) -> asyncio.Task[Any]:
        """Run a coroutine once as a task on this host (not restarted)."""
        if not asyncio.iscoroutine(coroutine):
            raise SimloomUsageError(f"run() takes a coroutine, got {type(coroutine).__name__}")
        self._check_alive("run")
        task = self.world.loop.create_task(coroutine, name=name, context=self._context())
        self._keep(task)
        return task

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(task)

    def _start(self, factory: EntryFactory, name: str | None) -> asyncio.Task[Any]:
        context = self._context()
        awaitable = context.run(factory)
        if not asyncio.iscoroutine(awaitable):
            raise SimloomUsageError(
                f"the factory given to spawn() must return a coroutine, got "
                f"{type(awaitable).__name__}"
            )
        task = self.world.loop.create_task(awaitable, name=name, context=context)
        self._keep(task)
        return task

    def _check_alive(self, what: str) -> None:
        self.world._check_running(f"{what}()")
        if not self.alive:
            raise SimloomUsageError(f"{what}() on host {self.name!r}, which has crashed")

    def crash(self) -> None:
        """Power cut. The host's tasks are never scheduled again in this universe (no
        ``finally``, no ``__aexit__``), its timers never fire, its listeners and
        sockets vanish, peers of its connections see ``ConnectionResetError``, and its
        disk keeps only what the disk model lets survive (unsynced writes are lost,
        torn or flushed, by tape choice). The abandoned coroutines are closed after
        the universe ends, in a fixed order."""
        self.world._check_running("crash()")
        if self.name == MAIN_HOST:
            raise SimloomUsageError(
                "the host 'main' runs the test itself and cannot crash; spawn the code "
                "to crash on a host of its own (world.host(name).spawn(...))"
            )
        if not self.alive:
            raise SimloomUsageError(f"host {self.name!r} has already crashed")
        self.world._crash(self)
        if _causal.recording is not None:
            _causal.recording.note_fault(self.world.loop, f"crash {self.name}")

    def restart(self) -> None:
        """Bring a crashed host back: a new incarnation runs every factory given to
        ``spawn`` again, in order, against what survived on its disk."""
        self.world._check_running("restart()")
        if self.alive:
            raise SimloomUsageError(f"host {self.name!r} is running; crash() it before restart()")
        self.world._restart(self)
        if _causal.recording is not None:
            _causal.recording.note_fault(self.world.loop, f"restart {self.name}")

    def __repr__(self) -> str:
        state = "up" if self.alive else "crashed"
        return f"<simloom.Host {self.name!r} {self.address} {state}>"


class World:
    """The hosts, network and disks of one universe.

    ``world.host(name)`` makes (or returns) a host; ``world.net`` holds the network
    faults; ``world.sleep`` and ``world.until`` wait in virtual time.
    """

    def __init__(self, loop: SimLoop) -> None:
        self.loop = loop
        #: The context the world's own code (deliveries) runs in: no host.
        self._context = contextvars.Context()
        #: Hosts, names, Unix paths and endpoint routing (made on first use).
        self._core: _core.NetCore | None = None
        #: The network's stream window, mirrored for the transports' write fast
        #: path (kept in step by ``Net.set_stream_window``).
        self._stream_window = 0
        self.net = Net(self)
        self._abandoned: list[Any] = []
        self._ended = False
        loop._set_host_var(_host_incarnation)

    # ------------------------------------------------------------------ hosts

    @property
    def _net(self) -> _core.NetCore:
        if self._core is None:
            self._core = core = _core.NetCore(self._context)
            core.bind()
            self._stream_window = core.stream_window()
            self._add_host(MAIN_HOST)
        return self._core

    def _add_host(self, name: str, capacity: int | None = None) -> Host:
        """Every host is made here: the core gives it its id, address and first
        incarnation (none for "main", the first), and its name resolves from now on."""
        core = self._net
        net_id, address = core.add_host(name)
        host = Host(self, name, address, net_id)
        host._disk_capacity = capacity
        core.set_host(net_id, host)
        core.register_name(name.lower(), net_id)
        _skew.host_seen(self, host)
        return host

    def redis(
        self,
        name: str = "redis",
        *,
        port: int = 6379,
        appendonly: bool = True,
        appendfsync: str = "everysec",
        password: str | None = None,
    ) -> Any:
        """Start a Redis stand-in (RESP2/RESP3, persistence through the append-only
        file with ``appendfsync`` ``"always"``, ``"everysec"`` or ``"no"``) on host
        ``name``; unmodified clients connect to ``name:port``. See
        :mod:`simloom.standins.redis` and docs/standins.md."""
        from .standins import redis

        return redis(
            self,
            name,
            port=port,
            appendonly=appendonly,
            appendfsync=appendfsync,
            password=password,
        )

    def nats(
        self,
        name: str = "nats",
        *,
        port: int = 4222,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
    ) -> Any:
        """Start a NATS stand-in (the core client protocol of nats-server 2.9:
        subjects with wildcards, queue groups, headers, request/reply with no
        responders; no JetStream) on host ``name``; unmodified clients connect to
        ``nats://name:port``. ``user`` and ``password``, or ``token``, make clients
        authenticate. See :mod:`simloom.standins.nats` and docs/standins.md."""
        from .standins import nats

        return nats(self, name, port=port, user=user, password=password, token=token)

    def postgres(
        self,
        name: str = "postgres",
        *,
        port: int = 5432,
        user: str = "postgres",
        password: str | None = None,
        database: str = "postgres",
    ) -> Any:
        """Start a Postgres stand-in (protocol v3, SQL on DuckDB, a write-ahead log
        fsynced at every commit) on host ``name``; unmodified clients (asyncpg,
        SQLAlchemy over asyncpg) connect to ``name:port``. ``password=None`` is
        trust authentication, a password SCRAM-SHA-256. See
        :mod:`simloom.standins.postgres` and docs/standins.md."""
        from .standins import postgres

        return postgres(self, name, port=port, user=user, password=password, database=database)

    def host(self, name: str, *, disk_capacity: int | None = None) -> Host:
        """The host called ``name``, made on first use with the next free address
        (10.0.0.2, 10.0.0.3, ...; ``"main"``, where the test runs, is 10.0.0.1). Its
        name resolves to its address from then on. ``disk_capacity`` (bytes) makes
        its disk fail writes with ``OSError(ENOSPC)`` when full."""
        self._check_running("world.host()")
        if not isinstance(name, str) or not name or not _valid_hostname(name):
            raise SimloomUsageError(
                f"host name must be a non-empty hostname (letters, digits, '-', '.'), got {name!r}"
            )
        if disk_capacity is not None and (
            isinstance(disk_capacity, bool)
            or not isinstance(disk_capacity, int)
            or disk_capacity < 0
        ):
            raise SimloomUsageError(
                f"disk_capacity must be a non-negative int (bytes), got {disk_capacity!r}"
            )
        existing = self._net.host_named(name)  # the first use makes "main" first
        if existing is not None:
            return existing  # type: ignore[no-any-return]
        return self._add_host(name, disk_capacity)

    @property
    def hosts(self) -> dict[str, Host]:
        """Every host by name, in creation order ("main" first)."""
        return {host.name: host for host in self._net.hosts()}

    @property
    def main(self) -> Host:
        """The host the test itself runs on."""
        return self._net.running_host(0)  # type: ignore[no-any-return]

    def register_name(self, name: str, host: Host | str) -> None:
        """Make ``name`` resolve to ``host``'s address (an alias, or a service name)."""
        self._check_running("world.register_name()")
        target = self.host(host) if isinstance(host, str) else host
        if not isinstance(target, Host) or target.world is not self:
            raise SimloomUsageError(f"{host!r} is not a host of this world")
        if not isinstance(name, str) or not _valid_hostname(name):
            raise SimloomUsageError(f"not a hostname: {name!r}")
        self._net.register_name(name.lower(), target._net_id)

    def set_clock_skew(self, *, max_offset: float = 0.0, max_drift_ppm: float = 0.0) -> None:
        """Give every host's wall clock its own offset (up to ``max_offset`` seconds
        either way) and drift (up to ``max_drift_ppm`` either way), tape choices that
        shrink toward none (see ``simloom._skew``). Monotonic clocks stay shared."""
        self._check_running("world.set_clock_skew()")
        _skew.install(self, _host_incarnation, max_offset, max_drift_ppm)

    def _check_running(self, what: str) -> None:
        """A world belongs to one universe: once it ended, changing it would act on
        nothing (or on a closed loop), so it is a usage error, not a silent no-op."""
        if self._ended:
            raise SimloomUsageError(
                f"{what} on a world whose universe has ended; hosts, faults and the "
                "network can only be used while the universe runs"
            )

    def _current_host(self) -> Host:
        core = self._core if self._core is not None else self._net
        return core.running_host(_host_incarnation.get(0))  # type: ignore[no-any-return]

    def _resolve(self, name: Any, on: Host) -> str:
        """The IP ``name`` means on host ``on`` (strict: unknown names raise
        ``socket.gaierror``)."""
        if isinstance(name, bytes):
            name = name.decode("idna")
        if not isinstance(name, str):
            raise TypeError(f"host must be a str, got {type(name).__name__}")
        name = name.strip("[]")
        # Only a literal starting with a digit or holding a colon can be an address:
        # a host name skips the (costly, raising) parse.
        if name[:1].isdigit() or ":" in name:
            try:
                return str(ipaddress.ip_address(name.split("%", 1)[0]))
            except ValueError:
                pass
        # Names compare folded (Python's own lower(), no trailing dot); the core's
        # table answers, the loopback names included.
        address = self._net.resolve(name.lower().rstrip("."))
        if address is None:
            raise _no_such_name(name)
        return address

    def _name_of(self, ip: object) -> str | None:
        """Reverse DNS: the first name registered for ``ip`` (a host's own name)."""
        if not isinstance(ip, str):
            return None
        return self._net.name_of(ip)

    # --------------------------------------------------------- virtual time

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of virtual time (no wall time passes)."""
        await asyncio.sleep(seconds)

    async def until(
        self, predicate: Callable[[], bool], *, timeout: float | None = None, interval: float = 0.01
    ) -> None:
        """Wait until ``predicate()`` is true, checking every ``interval`` virtual
        seconds; ``TimeoutError`` after ``timeout`` virtual seconds. Without a
        timeout it gives up after one virtual hour (``UNTIL_LIMIT``), so a condition
        that never holds cannot make a universe run forever."""
        if not callable(predicate):
            raise SimloomUsageError(f"until() needs a callable predicate, got {predicate!r}")
        if not isinstance(interval, int | float) or interval <= 0:
            raise SimloomUsageError(f"interval must be positive seconds, got {interval!r}")
        if timeout is not None and (not isinstance(timeout, int | float) or timeout < 0):
            raise SimloomUsageError(f"timeout must be non-negative seconds, got {timeout!r}")
        limit = UNTIL_LIMIT if timeout is None else timeout
        deadline = self.loop.time() + limit
        while not predicate():
            if self.loop.time() >= deadline:
                raise TimeoutError(
                    f"world.until(): the condition did not hold within {limit} virtual seconds"
                    + (" (no timeout was given; that is the limit)" if timeout is None else "")
                )
            await asyncio.sleep(interval)

    async def connected_pair(
        self,
        client_factory: Callable[[], asyncio.BaseProtocol],
        server_factory: Callable[[], asyncio.BaseProtocol],
        *,
        client: Host | str | None = None,
        server: Host | str | None = None,
    ) -> tuple[tuple[asyncio.Transport, Any], tuple[asyncio.Transport, Any]]:
        """Connect a client protocol to a server protocol over the simulated network
        (from ``client`` to ``server``, both ``"main"`` by default) and return
        ``((client_transport, client_protocol), (server_transport, server_protocol))``
        once both sides are connected."""
        client_host = self._as_host(client)
        server_host = self._as_host(server)
        accepted: asyncio.Future[tuple[asyncio.Transport, Any]] = self.loop.create_future()

        def factory() -> asyncio.BaseProtocol:
            protocol = server_factory()
            made = protocol.connection_made

            def connection_made(transport: Any) -> None:
                made(transport)
                if not accepted.done():
                    accepted.set_result((transport, protocol))

            protocol.connection_made = connection_made  # type: ignore[method-assign]
            return protocol

        async def listen() -> Any:
            return await self.loop.create_server(factory, server_host.address, 0)

        server_object = await server_host._context().run(self.loop.create_task, listen())
        port = server_object._listeners[0][1][1]

        async def dial() -> tuple[asyncio.Transport, Any]:
            return await self.loop.create_connection(client_factory, server_host.address, port)

        client_side = await client_host._context().run(self.loop.create_task, dial())
        server_side = await accepted
        server_object.close()
        return client_side, server_side

    def _as_host(self, host: Host | str | None) -> Host:
        if host is None:
            return self.main
        if isinstance(host, str):
            return self.host(host)
        if isinstance(host, Host) and host.world is self:
            return host
        raise SimloomUsageError(f"{host!r} is not a host of this world")

    def _hosts_in(self, group: Any, argument: str) -> list[Host]:
        """The hosts ``group`` names for the fault control argument ``argument``: a
        host, a host name, or an iterable of them (``world.net`` asks)."""
        if isinstance(group, Host | str):
            group = [group]
        try:
            members = list(group)
        except TypeError:
            raise SimloomUsageError(
                f"{argument} must be a host, a host name, or an iterable of them; got {group!r}"
            ) from None
        out = []
        for member in members:
            if isinstance(member, str):
                named = self._net.host_named(member)
                if named is None:
                    raise SimloomUsageError(f"{argument}: no host named {member!r}")
                member = named
            if not isinstance(member, Host) or member.world is not self:
                raise SimloomUsageError(f"{argument}: {member!r} is not a host of this world")
            out.append(member)
        return out

    # -------------------------------------------------------- unix paths

    def _listen_unix(
        self, host: Host, path: str, backlog: int, server: SimServer
    ) -> tuple[int, tuple[str, int]]:
        """Listen for ``server`` on a loopback port of ``host`` that serves ``path``."""
        if self._net.unix_port(host._net_id, path) is not None:
            raise OSError(98, f"[Errno 98] Address already in use: {path!r}")
        listener, address = server._listen(host, "127.0.0.1", 0, backlog)
        self._net.bind_unix(host._net_id, path, address[1])
        return listener, address

    def _unbind_unix(self, host: Host, path: str) -> None:
        self._net.unbind_unix(host._net_id, path)

    def _unix_port(self, path: Any) -> int:
        host = self._current_host()
        port = self._net.unix_port(host._net_id, path) if isinstance(path, str) else None
        if port is None:
            raise FileNotFoundError(2, "No such file or directory", path)
        return port

    # ------------------------------------------------------- crash, restart

    def _crash(self, host: Host) -> None:
        loop = self.loop
        host.crashes += 1
        incarnation = host._incarnation
        # Nothing of the host runs again: pending callbacks and timers are dropped,
        # and any scheduled later is born cancelled.
        self._abandoned.extend(loop._kill_incarnation(incarnation))
        # The loop's record of its own tasks (task -> creation number) is much cheaper
        # to scan than asyncio.all_tasks(), which walks the tasks of every loop.
        order = loop._task_order
        doomed = [
            task
            for task in list(order)
            if not task.done() and task.get_context().get(_host_incarnation, 0) == incarnation
        ]
        for task in sorted(doomed, key=order.__getitem__):
            task._log_destroy_pending = False  # type: ignore[attr-defined]
            self._abandoned.append(task)
        # The core ends the incarnation, drops the host's listeners, sockets and
        # connections, frees its Unix paths and tells each of its transports,
        # servers and datagram endpoints (their ``_host_crashed``).
        self._net.crash_host(loop, host._net_id)
        if host._files is not None:  # its files, descriptors and working directory end
            host._files.crashed()
            host._files = None
        if host._disk is not None:
            host._disk._crash(loop)
        loop._mark(f"crash:{host.name}")
        loop._cover(f"world.crash:{host.name}")

    def _restart(self, host: Host) -> None:
        self._net.restart_host(host._net_id)
        _skew.host_seen(self, host)
        host.restarts += 1
        self.loop._mark(f"restart:{host.name}")
        self.loop._cover(f"world.restart:{host.name}")
        for factory, name in host._entries:
            host._start(factory, name)

    def _tasks_of_dead_hosts(self) -> set[Any]:
        return {item for item in self._abandoned if isinstance(item, asyncio.Task)}

    def _end(self) -> None:
        """The universe is over: close the coroutines abandoned by crashes, in the
        order they were abandoned (their ``finally`` blocks run now, outside the
        universe, and cannot affect its outcome)."""
        self._ended = True
        abandoned, self._abandoned = self._abandoned, []
        for item in abandoned:
            if isinstance(item, asyncio.Task):
                coroutine = item.get_coro()
                # Outside the universe: an error here has nothing to report to.
                with contextlib.suppress(BaseException):
                    coroutine.close()  # type: ignore[union-attr]
        abandoned.clear()

    def __iter__(self) -> Iterator[Host]:
        return iter(self.hosts.values())

    def __repr__(self) -> str:
        return f"<simloom.World hosts={list(self.hosts)}>"


def _valid_hostname(name: str) -> bool:
    return all(part and all(c.isalnum() or c in "-_" for c in part) for part in name.split("."))


def current_host() -> Host | None:
    """The host the calling code runs on, inside a universe with a world (else None)."""
    loop = asyncio.events._get_running_loop()
    world = getattr(loop, "_world", None)
    if world is None:
        return None
    return world._current_host()  # type: ignore[no-any-return]
